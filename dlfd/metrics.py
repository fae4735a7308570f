"""Evaluation metrics (docs/method.md §3, the paper's evaluation protocol).

Accuracies, per-sample losses and the balanced loss-based membership-inference attack (MIA),
the forgetting score FS = |MIA − 0.5| and NoMUS = λ·TA + (1 − λ)·(1 − 2·FS). Averaging over
seeds, tables and JSON files are in :mod:`dlfd.reporting`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .checks import check_int, check_number, require
from .logistic import cv_accuracy
from .models import eval_mode


@dataclass
class SplitOutputs:
    """One eval-mode pass of a model over one split: what every evaluation needs from it.

    ``embeddings`` (the penultimate features, ``model.embed``) is None for a model without
    ``embed``; ``logits`` is then ``model(x)``, otherwise ``model.head(embeddings)``, which is
    the same computation (docs/method.md §2.3).
    """

    logits: torch.Tensor
    labels: torch.Tensor
    embeddings: torch.Tensor | None = None


@torch.no_grad()
def split_outputs(model: nn.Module, loader: DataLoader, device="cpu") -> SplitOutputs:
    """Logits, labels and (when the model has ``embed``) embeddings in one pass, eval mode.

    One pass instead of one per metric: the forward passes are most of an evaluation's cost
    on a CPU, and the accuracies, the MIA, the distances to the retrained model and the
    collapse measures all read the same outputs.
    """
    has_embed = hasattr(model, "embed") and hasattr(model, "head")
    zs, outs, ys = [], [], []
    with eval_mode(model):
        for x, y in loader:
            x = x.to(device)
            if has_embed:
                z = model.embed(x)
                zs.append(z.float().cpu())
                outs.append(model.head(z).float().cpu())
            else:
                outs.append(model(x).float().cpu())
            ys.append(torch.as_tensor(y))
    if not outs:
        return SplitOutputs(torch.empty(0), torch.empty(0, dtype=torch.long),
                            torch.empty(0) if has_embed else None)
    return SplitOutputs(torch.cat(outs), torch.cat(ys).long(),
                        torch.cat(zs) if has_embed else None)


def predict(model: nn.Module, loader: DataLoader, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels over a loader, in eval mode (the model's mode is restored)."""
    out = split_outputs(model, loader, device)
    return out.logits, out.labels


EVAL_SPLITS = {"retain": "retain_eval", "forget": "forget_eval", "val": "val", "test": "test"}


def all_outputs(model: nn.Module, loaders, device="cpu") -> dict[str, SplitOutputs]:
    """:func:`split_outputs` for the four evaluation splits of a :class:`dlfd.data.Loaders`,
    keyed ``retain``, ``forget``, ``val``, ``test``."""
    return {key: split_outputs(model, getattr(loaders, attr), device)
            for key, attr in EVAL_SPLITS.items()}


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


# The loss given to a sample whose logits are not finite: a diverged model (the public DLFD
# sometimes diverges, docs/method.md §5 D6) is maximally wrong, not a crash of the evaluation.
DIVERGED_LOSS = 1e4


def losses_from_logits(logits: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-sample cross-entropy; non-finite values become :data:`DIVERGED_LOSS`."""
    losses = F.cross_entropy(logits.float(), y, reduction="none").cpu().numpy()
    return np.where(np.isfinite(losses), losses, DIVERGED_LOSS)


def per_sample_losses(model: nn.Module, loader: DataLoader, device="cpu") -> np.ndarray:
    """Cross-entropy of every sample (no reduction); see :func:`losses_from_logits`."""
    return losses_from_logits(*predict(model, loader, device))


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


def membership_auc(member_losses, nonmember_losses) -> float:
    """ROC AUC of "lower loss ⇒ member": the probability that a random member's loss is below
    a random non-member's, ties counting one half (the Mann–Whitney form of scikit-learn's
    ``roc_auc_score``, which the MIA runs tens of times per evaluation)."""
    from scipy.stats import rankdata

    m = np.asarray(member_losses, dtype=np.float64).ravel()
    u = np.asarray(nonmember_losses, dtype=np.float64).ravel()
    ranks = rankdata(-np.concatenate([m, u]))[: len(m)]
    return float((ranks.sum() - len(m) * (len(m) + 1) / 2) / (len(m) * len(u)))


def mia_from_losses(member_losses, nonmember_losses, seed: int = 0, n_splits: int = 10,
                    test_size: float = 0.3) -> MIAResult:
    """Balanced loss-based membership-inference attack.

    A logistic regression on the per-sample cross-entropy (:mod:`dlfd.logistic`, scikit-learn's
    objective solved exactly) tells members from non-members; its accuracy is the mean over
    stratified shuffled cross-validation splits. The larger side is subsampled with ``seed``
    first, so that chance is exactly 0.5 (the public code's attack was unbalanced).

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
    from sklearn.model_selection import StratifiedShuffleSplit

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
    scores = cv_accuracy(x[:, 0], y, cv.split(x, y))
    return MIAResult(float(scores.mean()), float(scores.std()), n, membership_auc(m, u))


def mia(model: nn.Module, forget: DataLoader, unseen: DataLoader, seed: int = 0,
        n_splits: int = 10, device="cpu") -> MIAResult:
    """Loss-MIA with forget samples as members and unseen (test) samples as non-members;
    both loaders must use eval transforms."""
    return mia_from_losses(per_sample_losses(model, forget, device),
                           per_sample_losses(model, unseen, device), seed, n_splits)


# --------------------------------------------------------------------------- averaged loss-MIA


@dataclass
class AveragedMIA:
    """The loss-MIA averaged over ``repeats`` balanced subsamples (see :func:`averaged_mia`).

    ``mia`` is the mean CV accuracy over repeats, ``mia_se`` its standard error over repeats
    (NaN for one repeat), ``auc`` the loss AUC on all members and all non-members ("lower loss
    ⇒ member", as :class:`MIAResult`), ``values`` the per-repeat accuracies.
    """

    mia: float
    mia_se: float
    repeats: int
    auc: float
    n_members: int
    n_nonmembers: int
    values: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return asdict(self)


def repeat_seeds(seed: int, repeats: int) -> list[int]:
    """The seeds that :func:`averaged_mia` hands to each repeat.

    Repeat 0 uses ``seed`` itself, so ``repeats=1`` reproduces
    ``mia_from_losses(..., seed=seed)`` exactly. Later repeats draw their seeds from
    ``numpy.random.SeedSequence([seed, r])``: evaluation seeds 0, 1, 2, … must not share
    repeats (``seed + r`` would make seed 0's repeats 1–9 equal seed 1's repeats 0–8, and the
    spread over evaluation seeds would look smaller than it is).

    Parameters
    ----------
    seed : int
        The evaluation seed (≥ 0).
    repeats : int
        Number of repeats (≥ 1).

    Returns
    -------
    list of int

    Examples
    --------
    >>> repeat_seeds(3, 1)
    [3]
    """
    seed = check_int("seed", seed, low=0)
    repeats = check_int("repeats", repeats, low=1)
    return [seed] + [int(np.random.SeedSequence([seed, r]).generate_state(1)[0])
                     for r in range(1, repeats)]


def _losses(name: str, values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    require(len(a) >= 2, f"{name} has {len(a)} value(s); the MIA needs at least 2 per side.")
    require(bool(np.isfinite(a).all()), f"{name} contains non-finite losses; expected finite "
                                        "per-sample losses.")
    return a


def averaged_mia(member_losses, nonmember_losses, repeats: int = 10, seed: int = 0,
                 n_splits: int = 10) -> AveragedMIA:
    """Balanced loss-MIA averaged over fresh balanced subsamples.

    The single balanced MIA (:func:`mia_from_losses`) subsamples the larger side
    once and scores one set of CV splits; with tens of forget samples its value moves by
    ≈ 0.5/√n from one draw to the next (docs/method.md §6 P2 "MIA noise"). Here every repeat
    draws a fresh balanced subsample (of the non-members, or of the members when they are
    the larger side) and its own CV splits, by calling ``mia_from_losses`` with the seed
    :func:`repeat_seeds` gives it; the mean over repeats removes the subsampling and split
    noise, though not the noise of the finite forget set itself.

    Parameters
    ----------
    member_losses, nonmember_losses : array-like
        Per-sample losses of the members (forget set) and non-members (test set).
    repeats : int
        Number of subsamples (≥ 1).
    seed : int
        Evaluation seed; ``repeats=1`` gives exactly ``mia_from_losses(..., seed=seed)``.
    n_splits : int
        CV splits per repeat, passed to ``mia_from_losses``.

    Returns
    -------
    AveragedMIA
        ``mia`` (mean CV accuracy), ``mia_se`` (std over repeats, ddof = 1, / √repeats; NaN
        for one repeat), ``auc`` (loss AUC on all samples, no subsampling), sample counts.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> r = averaged_mia(rng.normal(0, 1, 50), rng.normal(3, 1, 200), repeats=3)
    >>> r.mia > 0.9
    True

    References
    ----------
    docs/method.md §3 (the MIA) and §5 D5 "unbalanced MIA".
    """
    m = _losses("member_losses", member_losses)
    u = _losses("nonmember_losses", nonmember_losses)
    n_splits = check_int("n_splits", n_splits, low=2)
    values = [mia_from_losses(m, u, seed=s, n_splits=n_splits).mean
              for s in repeat_seeds(seed, repeats)]
    v = np.asarray(values)
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
    return AveragedMIA(float(v.mean()), se, len(v), membership_auc(m, u), len(m), len(u),
                       [float(x) for x in v])


@dataclass
class MIASpread:
    """Spread over evaluation seeds of the single and the averaged MIA (:func:`mia_spread`)."""

    single_std: float
    averaged_std: float
    repeats: int
    eval_seeds: list[int]
    single: list[float] = field(repr=False)
    averaged: list[float] = field(repr=False)

    def as_dict(self) -> dict:
        return asdict(self)


def mia_spread(member_losses, nonmember_losses, eval_seeds, repeats: int = 10,
               n_splits: int = 10) -> MIASpread:
    """How much the MIA of one fixed set of losses moves with the evaluation seed alone.

    For every evaluation seed it computes the single MIA (``repeats=1``) and the averaged MIA
    (``repeats`` repeats) of the same losses; the sample std (ddof = 1) of each over the
    seeds is pure evaluation noise, since the model did not change. The ratio shows what
    averaging buys (docs/method.md §6 P2 "MIA noise").

    Parameters
    ----------
    member_losses, nonmember_losses : array-like
        Per-sample losses, as for :func:`averaged_mia`.
    eval_seeds : iterable of int
        At least 2 distinct evaluation seeds.
    repeats : int
        Repeats of the averaged MIA (≥ 2).
    n_splits : int
        CV splits per repeat.

    Returns
    -------
    MIASpread
        ``single_std``, ``averaged_std`` and the per-seed values.

    References
    ----------
    docs/method.md §6 P2 "MIA noise".
    """
    seeds = [check_int("eval_seeds[i]", s, low=0) for s in eval_seeds]
    require(len(set(seeds)) >= 2 and len(set(seeds)) == len(seeds),
            f"eval_seeds={seeds!r}; expected at least 2 distinct seeds.")
    repeats = check_int("repeats", repeats, low=2)
    single = [averaged_mia(member_losses, nonmember_losses, 1, s, n_splits).mia for s in seeds]
    avg = [averaged_mia(member_losses, nonmember_losses, repeats, s, n_splits).mia
           for s in seeds]
    return MIASpread(float(np.std(single, ddof=1)), float(np.std(avg, ddof=1)), repeats, seeds,
                     single, avg)


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
    return _paired_pass(model_a, model_b, loader, device, lambda a, b, x: _js_logits(a(x), b(x)))


def _js_logits(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Per-row JS divergence between the softmaxes of two logit tensors, in float64."""
    return _js_rows(F.softmax(logits_a.double(), 1), F.softmax(logits_b.double(), 1))


def _embedding_rows(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """Per-row L2 distance between two embedding tensors, in float64."""
    return (z_a.double() - z_b.double()).norm(dim=1)


def activation_distance(model_a: nn.Module, model_b: nn.Module, loader: DataLoader,
                        device="cpu") -> float:
    """Mean L2 distance between the two models' penultimate embeddings (``model.embed``).

    This is the feature space in which DLFD works (docs/method.md §2.3), so it shows
    how far a method moved the representation, not only the decision.
    """
    return _paired_pass(model_a, model_b, loader, device,
                        lambda a, b, x: _embedding_rows(a.embed(x), b.embed(x)))


# --------------------------------------------------------------------------- one record per run


def _accuracies_and_losses(outs: dict[str, SplitOutputs]) -> tuple[dict, dict]:
    """``{split}_acc`` for the four evaluation splits, and the per-sample losses the MIA needs."""
    accs, losses = {"nonfinite_outputs": 0}, {}
    for key, o in outs.items():
        accs[f"{key}_acc"] = top1(o.logits, o.labels)
        accs["nonfinite_outputs"] += int((~torch.isfinite(o.logits)).any(1).sum())
        if key in ("forget", "test"):
            losses[key] = losses_from_logits(o.logits, o.labels)
    return accs, losses


def distances(outs: SplitOutputs, reference: SplitOutputs) -> dict:
    """``js_to_retrained`` and ``act_dist_to_retrained`` from two models' outputs on the same
    samples in the same order (see :func:`js_divergence` and :func:`activation_distance`)."""
    require(len(outs.labels) == len(reference.labels),
            f"distances need outputs on the same samples; got {len(outs.labels)} and "
            f"{len(reference.labels)}.")
    if len(outs.labels) == 0:
        return {"js_to_retrained": float("nan"), "act_dist_to_retrained": float("nan")}
    js = _js_logits(outs.logits, reference.logits)
    out = {"js_to_retrained": float(js.sum()) / len(js)}
    if outs.embeddings is not None and reference.embeddings is not None:
        act = _embedding_rows(outs.embeddings, reference.embeddings)
        out["act_dist_to_retrained"] = float(act.sum()) / len(act)
    return out


def evaluate(model: nn.Module, loaders, *, retrained: nn.Module | None = None, seed: int = 0,
             device="cpu", seconds: float | None = None, retrain_seconds: float | None = None,
             mia_splits: int = 10, mia_repeats: int = 10,
             outputs: dict[str, SplitOutputs] | None = None,
             retrained_forget: SplitOutputs | None = None) -> dict:
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
    mia_repeats : int, default 10
        Balanced subsamples of the non-members that the MIA is averaged over
        (:func:`averaged_mia`); 1 gives the single-subsample MIA of earlier versions.
    outputs : dict of SplitOutputs, optional
        ``model``'s outputs from :func:`all_outputs`, when the caller already has them (it
        then reads no loader for ``model``).
    retrained_forget : SplitOutputs, optional
        ``retrained``'s outputs on forget_eval (:func:`split_outputs`), for a caller that
        evaluates many models against the same retrained model.

    Returns
    -------
    dict
        ``retain_acc``, ``forget_acc``, ``val_acc``, ``test_acc``; ``mia`` (balanced loss-MIA
        averaged over ``mia_repeats`` subsamples, :func:`averaged_mia`), ``mia_se`` (its
        standard error), ``mia_single`` (the first subsample alone), ``mia_auc`` (loss AUC on
        all non-members), ``mia_n`` (samples per side), with forget_eval as members and test
        as non-members; ``fs`` = |mia − 0.5|;
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
    outs = outputs if outputs is not None else all_outputs(model, loaders, device)
    out, losses = _accuracies_and_losses(outs)
    res = averaged_mia(losses["forget"], losses["test"], repeats=mia_repeats, seed=seed,
                       n_splits=mia_splits)
    out.update(mia=res.mia, mia_se=res.mia_se, mia_single=res.values[0], mia_auc=res.auc,
               mia_n=min(res.n_members, res.n_nonmembers), mia_repeats=res.repeats)
    out["fs"] = forgetting_score(res.mia)
    out["nomus"] = nomus(out["test_acc"], out["fs"])
    if retrained is not None or retrained_forget is not None:
        ref = (retrained_forget if retrained_forget is not None
               else split_outputs(retrained, loaders.forget_eval, device))
        out.update(distances(outs["forget"], ref))
    if seconds is not None:
        out["seconds"] = float(seconds)
        if retrain_seconds is not None:
            out["rte"] = float(retrain_seconds) / float(seconds) if seconds > 0 else float("inf")
    return out
