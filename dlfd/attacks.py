"""Membership-inference attacks with less noise or more power than the single loss-MIA.

Two tools for answering "does the unlearned model still remember the forget set?" with
statistical power (docs/method.md §3 and §6 P2 "MIA noise"):

* :func:`dlfd.metrics.averaged_mia` — the balanced loss-MIA of :func:`dlfd.metrics.mia_from_losses`,
  averaged over many fresh balanced subsamples and CV splits, so that the answer for one
  model no longer depends on which non-members happened to be drawn.
* :func:`offline_lira` / :func:`lira_for_model` — an offline likelihood-ratio attack in the
  spirit of LiRA (Carlini et al., 2022) and U-LiRA (Hayes et al., 2024), which calibrates
  every example against reference models that never trained on it, instead of one global
  loss threshold.

References
----------
.. [1] N. Carlini, S. Chien, M. Nasr, S. Song, A. Terzis and F. Tramèr, "Membership Inference
   Attacks From First Principles", IEEE Symposium on Security and Privacy, 2022.
.. [2] J. Hayes, I. Shumailov, E. Triantafillou, A. Khalifa and N. Papernot, "Inexact
   Unlearning Needs More Careful Evaluations to Avoid a False Sense of Privacy", 2024.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from .checks import check_choice, check_int, check_number, require, require_nonempty
from .metrics import DIVERGED_LOSS
from .models import eval_mode

__all__ = ["LiRAResult", "logit_confidence", "offline_lira", "lira_for_model", "tpr_at_fpr"]


# --------------------------------------------------------------------------- offline LiRA


def logit_confidence(logits, labels) -> np.ndarray:
    """Logit-scaled confidence φ = log p_y − log(1 − p_y) of the true class, in float64.

    Computed as ``z_y − logsumexp(z_{j≠y})``, which equals log(p_y / (1 − p_y)) for the
    softmax p of the logits z but never forms p: a confident model's p_y rounds to 1 in float32, and
    log(1 − p_y) would be −inf. This scaling makes the confidence approximately Gaussian over
    training runs, which the likelihood-ratio test assumes (Carlini et al., 2022, [1]_).

    Parameters
    ----------
    logits : torch.Tensor or array-like, shape (n, C), C ≥ 2
    labels : torch.Tensor or array-like of int, shape (n,)

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
        Non-finite values (a diverged model) become ``-DIVERGED_LOSS``.

    Examples
    --------
    >>> float(logit_confidence([[2.0, 0.0]], [0])[0])
    2.0

    References
    ----------
    .. [1] Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022.
    """
    z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits)
    y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
    require(z.ndim == 2 and z.shape[1] >= 2,
            f"logits have shape {tuple(z.shape)}; expected (n, C) with C ≥ 2 classes.")
    require(y.ndim == 1 and len(y) == len(z),
            f"labels have shape {tuple(y.shape)}; expected ({len(z)},) to match the logits.")
    z = z.detach().cpu().double()
    y = y.detach().cpu().long()
    require(bool(((y >= 0) & (y < z.shape[1])).all()),
            f"labels must lie in [0, {z.shape[1] - 1}]; got min {int(y.min()) if len(y) else 0}"
            f", max {int(y.max()) if len(y) else 0}.")
    true = z.gather(1, y[:, None]).squeeze(1)
    others = z.scatter(1, y[:, None], float("-inf"))
    conf = (true - torch.logsumexp(others, dim=1)).numpy()
    # a diverged model's outputs are maximally wrong, as in the loss-MIA: φ ≈ −loss when
    # p_y is tiny, so −DIVERGED_LOSS matches the loss it gets there
    return np.where(np.isfinite(conf), conf, -DIVERGED_LOSS)


@dataclass
class LiRAResult:
    """Outcome of :func:`offline_lira`.

    ``scores`` (higher ⇒ more member-like) are −log of the one-sided p-value of each target
    confidence under its reference (OUT) Gaussian; ``z`` the matching z-scores. ``variance``
    says whether a global or per-example variance was used, ``global_std`` the pooled
    within-example std of the references.
    """

    auc: float
    tpr_at_fpr: float
    fpr: float
    n_references: int
    n_members: int
    n_nonmembers: int
    variance: str
    global_std: float
    scores: np.ndarray = field(repr=False)
    z: np.ndarray = field(repr=False)

    def as_dict(self, per_example: bool = False) -> dict:
        """The scalars; with ``per_example`` also ``scores`` and ``z`` as lists."""
        d = asdict(self)
        if per_example:
            d["scores"], d["z"] = self.scores.tolist(), self.z.tolist()
        else:
            del d["scores"], d["z"]
        return d


def tpr_at_fpr(labels, scores, fpr: float) -> float:
    """TPR of the ROC curve at false-positive rate ``fpr``, interpolated linearly.

    The ROC curve of ``sklearn.metrics.roc_curve`` is piecewise linear; at an ``fpr`` where
    it has a vertical step the highest TPR of that step is returned (the best threshold with
    that false-positive rate).

    Parameters
    ----------
    labels : array-like of {0, 1}
    scores : array-like of float, higher ⇒ label 1
    fpr : float in [0, 1]

    Returns
    -------
    float
    """
    from sklearn.metrics import roc_curve

    fpr = check_number("fpr", fpr, low=0.0, high=1.0)
    fp, tp, _ = roc_curve(np.asarray(labels), np.asarray(scores))
    i = int(np.searchsorted(fp, fpr, side="right")) - 1  # last point with fp ≤ fpr
    if fp[i] == fpr or i == len(fp) - 1:
        return float(tp[i])
    w = (fpr - fp[i]) / (fp[i + 1] - fp[i])
    return float(tp[i] + w * (tp[i + 1] - tp[i]))


# Carlini et al. report that per-example variances pay off only with many shadow models
# (they use 64 and more); with fewer, one variance shared by all examples is the more
# reliable estimate, and with the handful of retrained seeds here it is the only usable one.
_PER_EXAMPLE_MIN_REFS = 64
# A reference std of exactly 0 (identical reference models) would make every z infinite.
_STD_FLOOR = 1e-6


def offline_lira(target_conf, reference_confs, is_member, fpr: float = 0.05,
                 variance: str = "auto") -> LiRAResult:
    """Offline likelihood-ratio membership test against reference (OUT) models.

    For every example i the reference confidences ``reference_confs[:, i]`` come from models
    that never trained on it, so they sample the OUT distribution N(μ_i, σ_i²) of its
    logit-scaled confidence. The target model is suspected of still remembering example i
    when its confidence is unusually *high* under that distribution: the score is
    −log(1 − Φ((φ_i − μ_i)/σ_i)), the −log of the one-sided p-value of Carlini et al.'s
    offline test [1]_. A perfect unlearner looks like one more OUT model on every example,
    so members and non-members get the same score distribution and the AUC is ≈ 0.5; a model
    that still remembers the forget set gives its members high scores, AUC → 1. Using the
    models retrained without the forget set as references is the offline form of U-LiRA's
    evaluation, which asks whether the unlearned model is distinguishable from retraining
    per example [2]_.

    Nothing is fitted on the examples being scored except μ_i and σ, which come from the
    reference models alone; ``is_member`` is used only to compute the AUC and the TPR.

    Parameters
    ----------
    target_conf : array-like, shape (n,)
        Logit-scaled confidences (:func:`logit_confidence`) of the target (unlearned) model on
        the forget (member) and test (non-member) examples.
    reference_confs : array-like, shape (R, n), R ≥ 2
        The same examples' confidences under R reference models trained without the forget
        set. In this project they are the retrained models of the other seeds (same split,
        different initialisation): with k seeds each target has k − 1 references.
    is_member : array-like of bool, shape (n,)
        True for forget examples; both classes must be present.
    fpr : float
        False-positive rate at which the TPR is read (0 < fpr < 1).
    variance : {"auto", "global", "per_example"}
        "global" uses one pooled within-example std σ for every example (mean of the
        per-example variances, ddof = 1): with few references a per-example std from 2–4
        values is too noisy, and Carlini et al. use a global variance for few shadow models.
        "per_example" uses each example's own std; "auto" picks "per_example" from 64
        references on, "global" below.

    Returns
    -------
    LiRAResult
        ``auc``, ``tpr_at_fpr``, ``n_references``, per-example ``scores`` and ``z``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> refs = rng.normal(0, 1, (3, 200))
    >>> target = np.r_[rng.normal(4, 1, 100), rng.normal(0, 1, 100)]
    >>> offline_lira(target, refs, np.arange(200) < 100).auc > 0.95
    True

    References
    ----------
    .. [1] N. Carlini, S. Chien, M. Nasr, S. Song, A. Terzis and F. Tramèr, "Membership
       Inference Attacks From First Principles", IEEE S&P 2022.
    .. [2] J. Hayes, I. Shumailov, E. Triantafillou, A. Khalifa and N. Papernot, "Inexact
       Unlearning Needs More Careful Evaluations to Avoid a False Sense of Privacy", 2024.
    """
    from scipy.stats import norm
    from sklearn.metrics import roc_auc_score

    t = np.asarray(target_conf, dtype=np.float64)
    ref = np.asarray(reference_confs, dtype=np.float64)
    mem = np.asarray(is_member)
    require(t.ndim == 1 and len(t) >= 2,
            f"target_conf has shape {t.shape}; expected (n,) with n ≥ 2.")
    require(ref.ndim == 2 and ref.shape[1] == len(t),
            f"reference_confs has shape {ref.shape}; expected (R, {len(t)}).")
    require(ref.shape[0] >= 2,
            f"reference_confs has {ref.shape[0]} reference model(s); expected at least 2 "
            "(a variance needs two OUT samples; with k seeds there are k − 1 references).")
    require(mem.shape == t.shape and (mem.dtype == bool or np.isin(mem, (0, 1)).all()),
            f"is_member has shape {mem.shape}; expected ({len(t)},) booleans.")
    mem = mem.astype(bool)
    require(bool(mem.any() and (~mem).any()),
            "is_member must contain both members and non-members.")
    require(bool(np.isfinite(t).all() and np.isfinite(ref).all()),
            "target_conf and reference_confs must be finite.")
    fpr = check_number("fpr", fpr, low=0.0, strict=True, high=1.0)
    require(fpr < 1.0, f"fpr={fpr!r}; expected a value in (0, 1).")
    variance = check_choice("variance", variance, ("auto", "global", "per_example"))
    if variance == "auto":
        variance = "per_example" if ref.shape[0] >= _PER_EXAMPLE_MIN_REFS else "global"

    mu = ref.mean(0)
    per_var = ref.var(0, ddof=1)
    global_std = float(np.sqrt(per_var.mean()))
    sigma = np.sqrt(per_var) if variance == "per_example" else np.full_like(mu, global_std)
    z = (t - mu) / np.maximum(sigma, _STD_FLOOR)
    # logsf stays finite far into the tail, where 1 − cdf would round to 0.
    scores = -norm.logsf(z)
    auc = float(roc_auc_score(mem, scores))
    return LiRAResult(auc, tpr_at_fpr(mem, scores, fpr), fpr, int(ref.shape[0]),
                      int(mem.sum()), int((~mem).sum()), variance, global_std, scores, z)


@torch.no_grad()
def _confidences(models, loader: DataLoader, device) -> np.ndarray:
    """(len(models), n) confidences, every model seeing the same batch: one pass over the
    loader keeps the examples aligned across models even if the loader shuffles."""
    rows = [[] for _ in models]
    for x, y in loader:
        x = x.to(device)
        for row, model in zip(rows, models):
            row.append(logit_confidence(model(x).float().cpu(), y))
    return np.stack([np.concatenate(r) for r in rows])


def confidences(models, forget_loader: DataLoader, test_loader: DataLoader,
                device="cpu") -> np.ndarray:
    """(len(models), n_forget + n_test) logit-scaled confidences, forget examples first, in
    eval mode (each model's mode restored): what :func:`lira_for_model` scores, and, for the
    reference models, what a caller attacking many targets can compute once and pass on as
    its ``reference_confs``."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        for m in models:
            stack.enter_context(eval_mode(m))
        forget = _confidences(models, forget_loader, device)
        test = _confidences(models, test_loader, device)
    return np.concatenate([forget, test], axis=1)


def lira_for_model(model: nn.Module, reference_models, forget_loader: DataLoader,
                   test_loader: DataLoader, device="cpu", fpr: float = 0.05,
                   variance: str = "auto", fit_on: str = "references",
                   reference_confs: np.ndarray | None = None) -> LiRAResult:
    """Offline LiRA of an unlearned model: forget examples as members, test as non-members.

    Runs the target and every reference model on both loaders (in eval mode, each model's
    mode restored afterwards), turns logits into :func:`logit_confidence` and calls
    :func:`offline_lira`.

    The attack fits nothing on the examples it scores except the per-example reference
    statistics (mean, and the pooled variance), and those come from the reference models,
    which never trained on the forget or the test examples. No threshold or classifier is
    fitted on the target's outputs, unlike the CV loss-MIA. ``fit_on="references"`` is the
    only accepted value, so that this contract is explicit at the call site.

    How many references: the retrained models of the other seeds (same split, so the same
    forget set, but a different initialisation and data order); with k seeds each target
    has k − 1 references, so at least 3 seeds are needed. With so few references a
    per-example variance cannot be estimated, which is why ``variance="auto"`` uses the
    global variance below 64 references (Carlini et al. do the same for few shadow models).

    Parameters
    ----------
    model : nn.Module
        The target (unlearned) model.
    reference_models : sequence of nn.Module
        At least 2 models trained without the forget set.
    forget_loader, test_loader : DataLoader
        Members and non-members, with eval transforms.
    device : str or torch.device
    fpr : float
        False-positive rate for the TPR.
    variance : {"auto", "global", "per_example"}
        See :func:`offline_lira`.
    fit_on : {"references"}
        What the attack's statistics are fitted on; anything else raises.
    reference_confs : ndarray, optional
        ``confidences(reference_models, forget_loader, test_loader, device)``, computed once
        by a caller that attacks many targets with the same references on the same
        (unshuffled) loaders; the reference models are then not run again.

    Returns
    -------
    LiRAResult
        Scores are ordered forget examples first, then test examples.

    References
    ----------
    .. [1] N. Carlini et al., "Membership Inference Attacks From First Principles",
       IEEE S&P 2022.
    .. [2] J. Hayes et al., "Inexact Unlearning Needs More Careful Evaluations to Avoid a
       False Sense of Privacy", 2024.

    docs/method.md §3 (evaluation protocol, reference models).
    """
    check_choice("fit_on", fit_on, ("references",))
    refs = list(reference_models)
    require(len(refs) >= 2, f"got {len(refs)} reference model(s); expected at least 2 "
                            "(k seeds give k − 1 references per target).")
    require(all(r is not model for r in refs),
            "the target model is among the reference models; references must be models "
            "trained without the forget set, other than the target.")
    require_nonempty(forget_loader, "forget")
    require_nonempty(test_loader, "test")
    if reference_confs is None:
        conf = confidences([model, *refs], forget_loader, test_loader, device)
        target, reference_confs = conf[0], conf[1:]
    else:
        require(reference_confs.shape[0] == len(refs), f"reference_confs has "
                f"{reference_confs.shape[0]} rows for {len(refs)} reference models.")
        target = confidences([model], forget_loader, test_loader, device)[0]
    n_forget = len(forget_loader.dataset)
    is_member = np.r_[np.ones(n_forget, bool), np.zeros(len(target) - n_forget, bool)]
    return offline_lira(target, reference_confs, is_member, fpr=fpr, variance=variance)
