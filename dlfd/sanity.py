"""Warnings that say when a run's numbers cannot rank unlearning methods.

Methods are ranked by how close they come to the retrained model (docs/method.md §3). That
needs two things of the reference models: an original that learned something (else every
method "forgets" trivially), and a measurable membership gap between the original and the
retrained model on the forget set (else the MIA target is noise, docs/method.md, §6 P2
"MIA noise"). :func:`rank_warnings` checks both from the two models' evaluation records.
"""

from __future__ import annotations

import math

from .checks import check_int, require

__all__ = ["NEAR_CHANCE", "NOISE_SIGMAS", "rank_warnings"]

# An original whose test accuracy is within 1.5× chance has learned almost nothing: every
# unlearning method then looks like a perfect forgetter.
NEAR_CHANCE = 1.5
# A gap below two combined standard errors is indistinguishable from zero at ~95%.
NOISE_SIGMAS = 2.0

WARN_CHANCE = "the original model is near chance: these numbers cannot rank methods"
WARN_MIA = ("the original-vs-retrained MIA gap is within its noise: these numbers cannot rank "
            "methods")


def _mia_se(rec: dict, n_forget: int | None, which: str) -> float:
    """The MIA's standard error: the larger of the binomial error 0.5/√n of a balanced attack
    on n forget samples and the record's ``mia_se``. ``mia_se`` measures only the evaluation
    noise (which non-members were drawn); the finite forget set itself adds 0.5/√n, and that
    is usually the larger part."""
    n = n_forget if n_forget is not None else rec.get("mia_n")
    binomial = 0.5 / math.sqrt(n) if n is not None and n >= 1 else None
    measured = rec.get("mia_se")
    measured = float(measured) if measured is not None and math.isfinite(measured) else None
    require(binomial is not None or measured is not None,
            f"The {which} record has neither mia_se nor mia_n; pass n_forget= (the forget-set "
            "size) for the binomial approximation 0.5/sqrt(n_forget).")
    return max(v for v in (binomial, measured) if v is not None)


def rank_warnings(original: dict, retrained: dict, num_classes: int | None = None,
                  n_forget: int | None = None) -> list[str]:
    """Warnings that the original and retrained models cannot rank methods.

    Parameters
    ----------
    original, retrained : dict
        Evaluation records (:func:`dlfd.metrics.evaluate`): ``test_acc`` and ``mia``, and
        ``mia_se`` when present.
    num_classes : int, optional
        Chance is ``1 / num_classes``; default the records' ``num_classes``. Without either,
        the near-chance check is skipped.
    n_forget : int, optional
        Forget-set size n for the binomial standard error 0.5/√n (default the record's
        ``mia_n``); each record's error is the larger of that and its ``mia_se``.

    Returns
    -------
    list of str
        Empty when the numbers can rank methods. The original's test accuracy within
        1.5× chance gives "the original model is near chance: ..."; an original-vs-retrained
        MIA gap below 2 × the combined standard error √(se_o² + se_r²) gives "the
        original-vs-retrained MIA gap is within its noise: ...".

    Examples
    --------
    >>> rank_warnings({"test_acc": 0.9, "mia": 0.75, "mia_se": 0.02},
    ...               {"test_acc": 0.9, "mia": 0.5, "mia_se": 0.02}, num_classes=10)
    []
    >>> rank_warnings({"test_acc": 0.12, "mia": 0.52, "mia_se": 0.05},
    ...               {"test_acc": 0.11, "mia": 0.5, "mia_se": 0.05}, num_classes=10)[0]
    'the original model is near chance: these numbers cannot rank methods'

    References
    ----------
    docs/method.md §3 (reference models) and §6 P2 "MIA noise".
    """
    out = []
    classes = num_classes if num_classes is not None else original.get("num_classes")
    if classes is not None:
        classes = check_int("num_classes", classes, low=2)
        if float(original["test_acc"]) <= NEAR_CHANCE / classes:
            out.append(WARN_CHANCE)
    se = math.hypot(_mia_se(original, n_forget, "original"),
                    _mia_se(retrained, n_forget, "retrained"))
    if abs(float(original["mia"]) - float(retrained["mia"])) < NOISE_SIGMAS * se:
        out.append(WARN_MIA)
    return out
