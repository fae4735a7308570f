"""Evaluation metrics (PAPER.md, "Evaluation protocol").

Accuracies, per-sample losses and the balanced loss-based membership-inference attack (MIA),
the forgetting score FS = |MIA − 0.5| and NoMUS = λ·TA + (1 − λ)·(1 − 2·FS).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

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


def top1(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of a batch of logits against labels (nan for an empty batch)."""
    return float((logits.argmax(1) == y).float().mean()) if len(y) else float("nan")


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
    signal (NOTES.md, item 2); 0.5 means no signal.
    """

    mean: float
    std: float
    n_per_side: int
    auc: float

    def as_dict(self) -> dict:
        return asdict(self)


def mia_from_losses(member_losses, nonmember_losses, seed: int = 0, n_splits: int = 10,
                    test_size: float = 0.3) -> MIAResult:
    """Balanced loss-MIA: logistic regression on per-sample losses, scored by stratified
    shuffled cross-validation (PAPER.md protocol; defect 5 fixed by balancing).

    The larger side is subsampled with ``seed`` so that chance is exactly 0.5.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

    m = np.asarray(member_losses, dtype=np.float64).ravel()
    u = np.asarray(nonmember_losses, dtype=np.float64).ravel()
    if len(m) < 2 or len(u) < 2:
        raise ValueError(f"MIA needs at least 2 samples per side; got {len(m)} members and "
                         f"{len(u)} non-members.")
    if not (np.isfinite(m).all() and np.isfinite(u).all()):
        raise ValueError("MIA got non-finite losses.")
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
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam={lam!r}; expected a value in [0, 1].")
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
    unlearning (PAPER.md, "Reference models"). Computed in float64 so that identical
    models give exactly 0. Equals ``scipy.spatial.distance.jensenshannon(p, q) ** 2``.
    """
    def fn(a, b, x):
        return _js_rows(F.softmax(a(x).double(), 1), F.softmax(b(x).double(), 1))

    return _paired_pass(model_a, model_b, loader, device, fn)


def activation_distance(model_a: nn.Module, model_b: nn.Module, loader: DataLoader,
                        device="cpu") -> float:
    """Mean L2 distance between the two models' penultimate embeddings (``model.embed``).

    This is the feature space in which DLFD works (PAPER.md, "OT distance"), so it shows
    how far a method moved the representation, not only the decision.
    """
    return _paired_pass(model_a, model_b, loader, device,
                        lambda a, b, x: (a.embed(x).double() - b.embed(x).double()).norm(dim=1))


# --------------------------------------------------------------------------- one record per run


def evaluate(model: nn.Module, loaders, *, retrained: nn.Module | None = None, seed: int = 0,
             device="cpu", seconds: float | None = None, retrain_seconds: float | None = None,
             mia_splits: int = 10) -> dict:
    """The full PAPER.md "Evaluation protocol" for one model, as a flat dict of floats.

    ``loaders`` is a :class:`dlfd.data.Loaders`. Keys: ``retain_acc``, ``forget_acc``,
    ``val_acc``, ``test_acc``; ``mia`` (mean balanced CV accuracy), ``mia_std``, ``mia_auc``,
    ``mia_n`` (samples per side) with forget_eval as members and test as non-members;
    ``fs`` = |mia − 0.5|; ``nomus`` (λ = 0.5, on test accuracy). With ``retrained``:
    ``js_to_retrained`` and ``act_dist_to_retrained``, both on forget_eval, where a perfect
    unlearner matches the retrained model. With ``seconds``: ``seconds``, and ``rte`` =
    retrain_seconds / seconds when ``retrain_seconds`` is also given.
    """
    out: dict = {}
    losses = {}
    for key, loader in (("retain", loaders.retain_eval), ("forget", loaders.forget_eval),
                        ("val", loaders.val), ("test", loaders.test)):
        # One pass per split gives both the accuracy and the losses the MIA needs.
        logits, y = predict(model, loader, device)
        hits = (logits.argmax(1) == y).float()
        out[f"{key}_acc"] = float(hits.mean()) if len(y) else float("nan")
        if key in ("forget", "test"):
            losses[key] = F.cross_entropy(logits, y, reduction="none").numpy()
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


# --------------------------------------------------------------------------- over seeds, and tables


def _is_number(v) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating))
            and not isinstance(v, (bool, np.bool_)))


def aggregate(records: list[dict]) -> dict:
    """Mean and spread over seeds (PAPER.md defect 6: report means, not single runs).

    Flat output: for every numeric key ``x`` it holds ``x_mean`` and ``x_std``, plus ``n``
    (the number of records). The std is the sample std (ddof = 1), the spread a reader
    expects from a handful of seeds; with one record it is NaN, not a misleading 0. A key
    missing from some records, or NaN in some, is averaged over the records that have a
    value. Non-numeric keys are kept when all records agree (e.g. a method name) and dropped
    otherwise.
    """
    if not records:
        raise ValueError("aggregate() needs at least one record.")
    out: dict = {"n": len(records)}
    keys = list(dict.fromkeys(k for r in records for k in r))
    for k in keys:
        vals = [r[k] for r in records if k in r]
        if all(_is_number(v) for v in vals):
            a = np.asarray(vals, dtype=np.float64)
            a = a[~np.isnan(a)]
            out[f"{k}_mean"] = float(a.mean()) if len(a) else float("nan")
            out[f"{k}_std"] = float(a.std(ddof=1)) if len(a) > 1 else float("nan")
        elif len(vals) == len(records) and all(v == vals[0] for v in vals[1:]):
            out[k] = vals[0]
    return out


def _cell(row: dict, col: str, spec: str) -> str:
    """``mean ± std`` for an aggregated key, the value for a plain key, ``—`` when absent."""
    if f"{col}_mean" in row:
        m, s = row[f"{col}_mean"], row.get(f"{col}_std", float("nan"))
        if s is None or (isinstance(s, float) and np.isnan(s)):
            return format(m, spec)
        return f"{format(m, spec)} ± {format(s, spec)}"
    if col in row and row[col] is not None:
        v = row[col]
        return format(v, spec) if _is_number(v) else str(v)
    return "—"


def _grid(rows: dict, columns, fmt, name: str) -> tuple[list[str], list[list[str]]]:
    cols = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
    specs = fmt if isinstance(fmt, dict) else {}
    header = [name, *cols.values()]
    body = [[str(label), *(_cell(row, c, specs.get(c, fmt if isinstance(fmt, str) else ".3f"))
                           for c in cols)]
            for label, row in rows.items()]
    return header, body


def render_table(rows: dict[str, dict], columns, fmt=".3f", name: str = "method") -> str:
    """A markdown table: one row per entry of ``rows`` (label → record or aggregate).

    ``columns`` is a list of keys, or a dict key → header. ``fmt`` is a format spec for every
    column, or a dict key → spec (missing keys use ".3f"). Aggregated keys (``x_mean`` /
    ``x_std`` from :func:`aggregate`) render as "mean ± std".
    """
    header, body = _grid(rows, columns, fmt, name)
    rule = "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def render_plain(rows: dict[str, dict], columns, fmt=".3f", name: str = "method") -> str:
    """The same table as :func:`render_table`, as fixed-width text for logs and terminals."""
    header, body = _grid(rows, columns, fmt, name)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(r):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, body)])


def _jsonable(obj):
    """Plain JSON types; NaN/inf become null so the file is strict JSON that any reader parses."""
    import math
    from dataclasses import is_dataclass
    from pathlib import PurePath

    if is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, PurePath):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"save_json cannot store a {type(obj).__name__}.")


def save_json(obj, path, overwrite: bool = False):
    """Write ``obj`` as indented, strict JSON, atomically (temporary file, then rename).

    An existing file is an error unless ``overwrite=True``, so a rerun never silently
    replaces earlier results. Returns the path.
    """
    import json
    import os
    import tempfile
    from pathlib import Path

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it. Pass overwrite=True "
                              "or choose another path.")
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
