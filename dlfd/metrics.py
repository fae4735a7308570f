"""Evaluation metrics (docs/method.md §3, the paper's evaluation protocol).

Accuracies, per-sample losses and the balanced loss-based membership-inference attack (MIA),
the forgetting score FS = |MIA − 0.5| and NoMUS = λ·TA + (1 − λ)·(1 − 2·FS). Averaging over
seeds, tables and JSON files are in :mod:`dlfd.reporting`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .checks import check_number, require
from .models import eval_mode


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels over a loader, in eval mode (the model's mode is restored)."""
    outs, ys = [], []
    with eval_mode(model):
        for x, y in loader:
            outs.append(model(x.to(device)).float().cpu())
            ys.append(y)
    if not outs:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(outs), torch.cat(ys)


def _hits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per sample, whether the arg-max class is the label."""
    return logits.argmax(1) == y


def top1(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of a batch of logits against labels (nan for an empty batch)."""
    return float(_hits(logits, y).float().mean()) if len(y) else float("nan")


def top1_count(logits: torch.Tensor, y: torch.Tensor) -> int:
    """Number of samples whose arg-max class is the label (for running sums over batches)."""
    return int(_hits(logits, y).sum())


def accuracy(model: nn.Module, loader: DataLoader, device="cpu") -> float:
    """Top-1 accuracy on a loader."""
    return top1(*predict(model, loader, device))


def per_sample_losses(model: nn.Module, loader: DataLoader, device="cpu") -> np.ndarray:
    """Cross-entropy of every sample (no reduction)."""
    logits, y = predict(model, loader, device)
    return F.cross_entropy(logits, y, reduction="none").numpy()


@dataclass
class MIAResult:
    """Mean and std of the attack's CV accuracy, the samples per side, and the loss AUC.

    ``auc`` is the ROC AUC of "lower loss ⇒ member": a lower-variance view of the same
    signal (docs/method.md, §6 P2 "MIA noise"); 0.5 means no signal.
    """

    mean: float
    std: float
    n_per_side: int
    auc: float

    def as_dict(self) -> dict:
        return asdict(self)


def mia_from_losses(member_losses, nonmember_losses, seed: int = 0, n_splits: int = 10,
                    test_size: float = 0.3) -> MIAResult:
    """Balanced loss-based membership-inference attack.

    A logistic regression on the per-sample cross-entropy tells members from non-members; its
    accuracy is the mean over stratified shuffled cross-validation splits. The larger side is
    subsampled with ``seed`` first, so that chance is exactly 0.5 (the public code's attack
    was unbalanced).

    Parameters
    ----------
    member_losses : array_like
        Losses of the members (the forget samples), at least 2.
    nonmember_losses : array_like
        Losses of the non-members (unseen test samples), at least 2.
    seed : int, default 0
        Seeds the subsampling and the cross-validation splits.
    n_splits : int, default 10
        Cross-validation splits (the authors use 10).
    test_size : float, default 0.3
        Fraction of the balanced set held out in each split.

    Returns
    -------
    MIAResult
        ``mean`` and ``std`` of the attack's accuracy over the splits (0.5 = the attacker
        cannot tell forgotten from never-seen data), ``n_per_side`` and ``auc``, the ROC AUC of
        "lower loss ⇒ member" on the balanced set.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> res = mia_from_losses(rng.uniform(0.0, 0.1, 100), rng.uniform(1.0, 2.0, 300))
    >>> res.mean, res.n_per_side, res.auc
    (1.0, 100, 1.0)

    References
    ----------
    Choi & Na, "Distribution-Level Feature Distancing for Machine Unlearning", AAAI 2025,
    arXiv:2409.14747. docs/method.md §3 (the MIA) and §5 D5 "unbalanced MIA".
    """
    # sklearn takes about a second to import; most users of this module never run an MIA.
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

    m = np.asarray(member_losses, dtype=np.float64).ravel()
    u = np.asarray(nonmember_losses, dtype=np.float64).ravel()
    require(len(m) >= 2 and len(u) >= 2, f"MIA needs at least 2 samples per side; got {len(m)} "
            f"members and {len(u)} non-members.")
    require(bool(np.isfinite(m).all() and np.isfinite(u).all()), "MIA got non-finite losses.")
    rng = np.random.default_rng(seed)
    n = min(len(m), len(u))
    m = m[rng.choice(len(m), n, replace=False)] if len(m) > n else m
    u = u[rng.choice(len(u), n, replace=False)] if len(u) > n else u
    x = np.concatenate([m, u])[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    cv = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=seed)
    scores = cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="accuracy")
    auc = roc_auc_score(y, -x[:, 0])
    return MIAResult(float(scores.mean()), float(scores.std()), n, float(auc))


def mia(model: nn.Module, forget: DataLoader, unseen: DataLoader, seed: int = 0,
        n_splits: int = 10, device="cpu") -> MIAResult:
    """Loss-MIA with forget samples as members and unseen (test) samples as non-members;
    both loaders must use eval transforms."""
    return mia_from_losses(per_sample_losses(model, forget, device),
                           per_sample_losses(model, unseen, device), seed, n_splits)


def forgetting_score(mia_value: float) -> float:
    """FS = |MIA − 0.5|; 0 is best."""
    return abs(float(mia_value) - 0.5)


def nomus(test_acc: float, fs: float, lam: float = 0.5) -> float:
    """NoMUS = λ·TA + (1 − λ)·(1 − 2·FS), in [0, 1], higher is better."""
    check_number("lam", lam, low=0.0, high=1.0)
    return lam * float(test_acc) + (1.0 - lam) * (1.0 - 2.0 * float(fs))


# --------------------------------------------------------------------------- model-to-model


@torch.no_grad()
def _paired_pass(model_a: nn.Module, model_b: nn.Module, loader: DataLoader, device, fn) -> float:
    """Mean over samples of ``fn(model_a, model_b, x)`` (a per-sample vector), in eval mode.

    Both models' modes are restored afterwards, so a caller in the middle of training is not
    left with BatchNorm frozen.
    """
    total, n = 0.0, 0
    with eval_mode(model_a), eval_mode(model_b):
        for x, _ in loader:
            v = fn(model_a, model_b, x.to(device)).double()
            total += float(v.sum())
            n += len(v)
    return total / n if n else float("nan")


def _js_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Per-row JS divergence in nats. ``xlogy`` makes 0·log 0 = 0 for saturated softmaxes."""
    m = 0.5 * (p + q)
    kl_pm = torch.special.xlogy(p, p).sum(1) - torch.special.xlogy(p, m).sum(1)
    kl_qm = torch.special.xlogy(q, q).sum(1) - torch.special.xlogy(q, m).sum(1)
    # Rounding can make a tiny negative; JS is non-negative by definition.
    return (0.5 * (kl_pm + kl_qm)).clamp_min(0.0)


def js_divergence(model_a: nn.Module, model_b: nn.Module, loader: DataLoader,
                  device="cpu") -> float:
    """Mean Jensen–Shannon divergence (natural log, so in [0, ln 2]) between the two models'
    softmax outputs, sample by sample.

    Against the retrained model this is the "distance to the gold standard" view of
    unlearning (docs/method.md §3, reference models). Computed in float64 so that identical
    models give exactly 0. Equals ``scipy.spatial.distance.jensenshannon(p, q) ** 2``.
    """
    def fn(a, b, x):
        return _js_rows(F.softmax(a(x).double(), 1), F.softmax(b(x).double(), 1))

    return _paired_pass(model_a, model_b, loader, device, fn)


def activation_distance(model_a: nn.Module, model_b: nn.Module, loader: DataLoader,
                        device="cpu") -> float:
    """Mean L2 distance between the two models' penultimate embeddings (``model.embed``).

    This is the feature space in which DLFD works (docs/method.md §2.3), so it shows
    how far a method moved the representation, not only the decision.
    """
    return _paired_pass(model_a, model_b, loader, device,
                        lambda a, b, x: (a.embed(x).double() - b.embed(x).double()).norm(dim=1))


# --------------------------------------------------------------------------- one record per run


def _accuracies_and_losses(model: nn.Module, loaders, device) -> tuple[dict, dict]:
    """``{split}_acc`` for the four evaluation splits, and the per-sample losses the MIA needs.

    One pass per split gives both.
    """
    accs, losses = {}, {}
    for key, loader in (("retain", loaders.retain_eval), ("forget", loaders.forget_eval),
                        ("val", loaders.val), ("test", loaders.test)):
        logits, y = predict(model, loader, device)
        accs[f"{key}_acc"] = top1(logits, y)
        if key in ("forget", "test"):
            losses[key] = F.cross_entropy(logits, y, reduction="none").numpy()
    return accs, losses


def evaluate(model: nn.Module, loaders, *, retrained: nn.Module | None = None, seed: int = 0,
             device="cpu", seconds: float | None = None, retrain_seconds: float | None = None,
             mia_splits: int = 10) -> dict:
    """The full evaluation protocol for one model, as a flat dict of floats.

    Parameters
    ----------
    model : nn.Module
        The model to evaluate (its train/eval mode is restored afterwards).
    loaders : dlfd.data.Loaders
        Uses ``retain_eval``, ``forget_eval``, ``val`` and ``test``.
    retrained : nn.Module, optional
        The retrained reference; adds the distances to it on forget_eval.
    seed : int, default 0
        Seed of the MIA (subsampling and cross-validation splits).
    device : str or torch.device, default "cpu"
    seconds : float, optional
        Wall time of the method that produced ``model``.
    retrain_seconds : float, optional
        Wall time of retraining; with ``seconds`` gives the RTE.
    mia_splits : int, default 10
        Cross-validation splits of the MIA.

    Returns
    -------
    dict
        ``retain_acc``, ``forget_acc``, ``val_acc``, ``test_acc``; ``mia`` (mean balanced CV
        accuracy), ``mia_std``, ``mia_auc``, ``mia_n`` (samples per side) with forget_eval as
        members and test as non-members (:func:`mia_from_losses`); ``fs`` = |mia − 0.5|;
        ``nomus`` (λ = 0.5, on test accuracy). With ``retrained``: ``js_to_retrained`` and
        ``act_dist_to_retrained``, both on forget_eval, where a perfect unlearner matches the
        retrained model. With ``seconds``: ``seconds``, and ``rte`` = retrain_seconds /
        seconds when ``retrain_seconds`` is also given.

    Examples
    --------
    >>> rec = evaluate(model, loaders, retrained=retrained, seed=0)  # doctest: +SKIP
    >>> rec["test_acc"], rec["fs"], rec["nomus"]  # doctest: +SKIP

    References
    ----------
    Choi & Na, "Distribution-Level Feature Distancing for Machine Unlearning", AAAI 2025,
    arXiv:2409.14747. docs/method.md §3 (MIA, FS, NoMUS, RTE, reference models).
    """
    out, losses = _accuracies_and_losses(model, loaders, device)
    res = mia_from_losses(losses["forget"], losses["test"], seed=seed, n_splits=mia_splits)
    out.update(mia=res.mean, mia_std=res.std, mia_auc=res.auc, mia_n=res.n_per_side)
    out["fs"] = forgetting_score(res.mean)
    out["nomus"] = nomus(out["test_acc"], out["fs"])
    if retrained is not None:
        out["js_to_retrained"] = js_divergence(model, retrained, loaders.forget_eval, device)
        out["act_dist_to_retrained"] = activation_distance(model, retrained, loaders.forget_eval,
                                                           device)
    if seconds is not None:
        out["seconds"] = float(seconds)
        if retrain_seconds is not None:
            out["rte"] = float(retrain_seconds) / float(seconds) if seconds > 0 else float("inf")
    return out
