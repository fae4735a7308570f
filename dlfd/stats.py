"""Paired comparisons over seeds: is method A really better than method B?

Every method in a benchmark is run on the same seeds (same split, same original model per
seed), so the per-seed differences A − B cancel the seed-to-seed variation that both share.
A paired bootstrap of those differences gives a confidence interval for the mean
difference; when it excludes 0 the comparison is *resolved* at that level, otherwise the
seeds do not tell the two apart (docs/method.md §5 D6 "single runs", §6 P2 "MIA noise").

References
----------
.. [1] B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall,
   1993 (percentile intervals, ch. 13).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .checks import check_int, check_number, require

__all__ = ["PairedCI", "paired_bootstrap_ci", "paired_table", "paired_comparisons",
           "render_paired"]


@dataclass
class PairedCI:
    """Mean of the paired differences a − b and its bootstrap confidence interval.

    ``resolved`` is True when the interval excludes 0; ``half_width`` = (high − low) / 2.
    """

    mean: float
    low: float
    high: float
    n: int
    level: float
    n_boot: int
    # Derived, but stored as fields so that asdict() and save_json() keep them.
    resolved: bool = field(init=False)
    half_width: float = field(init=False)

    def __post_init__(self):
        self.resolved = bool(self.low > 0.0 or self.high < 0.0)
        self.half_width = 0.5 * (self.high - self.low)

    def as_dict(self) -> dict:
        return asdict(self)


def _series(name: str, values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    require(a.ndim == 1, f"{name} has shape {a.shape}; expected a flat list of per-seed values.")
    bad = np.flatnonzero(~np.isfinite(a))
    require(len(bad) == 0, f"{name} has non-finite values at seed index(es) {bad.tolist()}; "
                           "expected finite per-seed values.")
    return a


def _pair(a, b, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    x = _series(name_a, a)
    y = _series(name_b, b)
    require(len(x) == len(y), f"{name_a} has {len(x)} values and {name_b} has {len(y)}; a "
                              "paired comparison needs one value per seed on both sides.")
    require(len(x) >= 2, f"got {len(x)} pair(s); a paired bootstrap needs at least 2 seeds.")
    return x, y


def paired_bootstrap_ci(a, b, n_boot: int = 10000, level: float = 0.95,
                        seed: int = 0) -> PairedCI:
    """Percentile-bootstrap CI of the mean paired difference a − b over seeds.

    Seed indices are resampled with replacement, jointly for ``a`` and ``b`` (the pairing),
    and the mean difference of each resample gives the bootstrap distribution; its
    (1 − level)/2 and (1 + level)/2 quantiles are the interval. With a handful of seeds the
    percentile interval is too narrow (it cannot be wider than the range of the
    differences), so an unresolved comparison at 3 seeds means "not enough seeds", and a
    resolved one is worth re-checking with more.

    Parameters
    ----------
    a, b : array-like of float, shape (n,)
        Per-seed values of the two methods, index i = seed i for both; n ≥ 2, all finite.
    n_boot : int
        Bootstrap resamples (≥ 1).
    level : float
        Confidence level in (0, 1).
    seed : int
        Seed of the resampling.

    Returns
    -------
    PairedCI
        ``mean`` (of a − b), ``low``, ``high``, ``n``, ``resolved``, ``half_width``.

    Raises
    ------
    ValueError
        For different lengths, fewer than 2 pairs, non-finite values or bad settings.

    Examples
    --------
    >>> ci = paired_bootstrap_ci([0.9, 0.8, 0.7], [0.7, 0.6, 0.5])
    >>> round(ci.mean, 6), round(ci.low, 6), round(ci.high, 6), ci.resolved
    (0.2, 0.2, 0.2, True)

    References
    ----------
    Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993; docs/method.md §5 D6
    "single runs".
    """
    x, y = _pair(a, b, "a", "b")
    n_boot = check_int("n_boot", n_boot, low=1)
    level = check_number("level", level, low=0.0, strict=True, high=1.0)
    require(level < 1.0, f"level={level!r}; expected a value in (0, 1).")
    seed = check_int("seed", seed, low=0)

    d = x - y
    mean = float(d.mean())
    # Resampling the centred differences and adding the mean back makes a constant
    # difference give exactly [mean, mean]; resampling d itself would leave rounding noise.
    centred = d - mean
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    boot = mean + centred[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return PairedCI(mean, float(low), float(high), len(d), level, n_boot)


def paired_table(per_seed: dict[str, list[float]], against: str, n_boot: int = 10000,
                 level: float = 0.95, seed: int = 0) -> dict[str, PairedCI]:
    """Paired CI of every method minus the reference method ``against``.

    Parameters
    ----------
    per_seed : dict of str to list of float
        Method label → per-seed values of one metric, all in the same seed order.
    against : str
        The label every other method is compared with (e.g. "dlfd" or "retrained").
    n_boot, level, seed
        As for :func:`paired_bootstrap_ci`.

    Returns
    -------
    dict of str to PairedCI
        One entry per method other than ``against``, in the order of ``per_seed``;
        Δ = method − ``against``.

    Examples
    --------
    >>> t = paired_table({"dlfd": [0.5, 0.6], "ft": [0.7, 0.8]}, against="dlfd")
    >>> round(t["ft"].mean, 6)
    0.2
    """
    require(isinstance(per_seed, dict) and len(per_seed) >= 2,
            f"per_seed has {len(per_seed) if isinstance(per_seed, dict) else type(per_seed)}"
            " entries; expected a dict with the reference and at least one other method.")
    require(against in per_seed,
            f"against={against!r}; expected one of {tuple(per_seed)}.")
    out = {}
    for label, values in per_seed.items():
        if label == against:
            continue
        # Checked here first so that the error names the methods, not "a" and "b".
        x, y = _pair(values, per_seed[against], repr(label), repr(against))
        out[label] = paired_bootstrap_ci(x, y, n_boot, level, seed)
    return out


def render_paired(table: dict[str, PairedCI], metric_name: str, fmt: str = "+.3f",
                  against: str | None = None) -> str:
    """A Markdown table of paired comparisons: method | mean Δ | CI | resolved.

    Parameters
    ----------
    table : dict of str to PairedCI
        As returned by :func:`paired_table`.
    metric_name : str
        Shown in the Δ header, e.g. "test_acc".
    fmt : str
        Format spec of the numbers.
    against : str, optional
        The reference label, shown in the header as "Δ metric vs against".

    Returns
    -------
    str

    Examples
    --------
    >>> print(render_paired({"ft": PairedCI(0.2, 0.1, 0.3, 3, 0.95, 100)}, "mia"))
    | method | mean Δ mia | 95% CI | resolved |
    |---|---:|---:|:---:|
    | ft | +0.200 | [+0.100, +0.300] | yes |
    """
    require(isinstance(table, dict), f"table is a {type(table).__name__}; expected a dict "
                                     "label → PairedCI.")
    levels = {ci.level for ci in table.values()}
    # One level in the header when all rows share it (the usual case); else one per cell.
    shared = len(levels) <= 1
    head = f"{100 * next(iter(levels)):g}% CI" if len(levels) == 1 else "CI"
    vs = f" vs {against}" if against else ""
    lines = [f"| method | mean Δ {metric_name}{vs} | {head} | resolved |",
             "|---|---:|---:|:---:|"]
    for label, ci in table.items():
        cell = f"[{format(ci.low, fmt)}, {format(ci.high, fmt)}]"
        if not shared:
            cell += f" ({100 * ci.level:g}%)"
        lines.append(f"| {label} | {format(ci.mean, fmt)} | {cell} | "
                     f"{'yes' if ci.resolved else 'no'} |")
    return "\n".join(lines)


def paired_comparisons(per_seed: dict[str, dict[int, dict]], key: str = "nomus") -> dict:
    """The benchmark's and notebook 04's paired comparisons of one metric, 95% bootstrap CIs.

    Parameters
    ----------
    per_seed : dict
        Label → {seed: record}. A label ``"<method> [<selection>]"`` is a run of ``method``
        that kept the step selected on the test set (docs/method.md §5 D3); ``"[test-half]"``
        runs were scored on half B of the test split, and their records' ``<key>_half_b``
        holds the same method's last step on that half.
    key : str
        The metric compared (a record key).

    Returns
    -------
    dict
        ``vs_dlfd`` and ``vs_retrained`` (when those labels exist): every plain label minus
        that reference; ``selection_vs_last``: every selected run minus the same method's
        last step (``dlfd_public`` minus the project's ``dlfd``). Each maps a label to a
        :class:`PairedCI` over the seeds both sides have; a pair with fewer than 2 common
        seeds is left out (a CI needs 2).
    """
    def ci(label: str, against: str, against_key: str = key):
        common = sorted(s for s in set(per_seed[label]) & set(per_seed[against])
                        if against_key in per_seed[against][s])
        if len(common) < 2:
            return None
        return paired_bootstrap_ci([per_seed[label][s][key] for s in common],
                                   [per_seed[against][s][against_key] for s in common])

    out = {}
    for against in ("dlfd", "retrained"):
        if against in per_seed:
            rows = {k: ci(k, against) for k in per_seed if "[" not in k and k != against}
            out[f"vs_{against}"] = {k: v for k, v in rows.items() if v is not None}
    inflation = {}
    for label in per_seed:
        if "[" in label:
            method = label.split(" [")[0]
            base = "dlfd" if method == "dlfd_public" else method
            # test-half is scored on half B: compare it with the last step on half B
            against_key = f"{key}_half_b" if label.endswith("[test-half]") else key
            row = ci(label, base, against_key) if base in per_seed else None
            if row is not None:
                inflation[label] = row
    out["selection_vs_last"] = inflation
    return out
