"""Hyperparameter selection on the validation split only (PAPER.md, defect 3).

The selection score mirrors NoMUS with the validation split in the test split's place:
``val_nomus = λ·val_acc + (1 − λ)·(1 − 2·|MIA(forget vs val) − 0.5|)``. The test split is never
touched, so the numbers the notebooks report on test stay honest.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch.nn.functional as F
from tqdm.auto import tqdm

from .metrics import forgetting_score, mia_from_losses, nomus, per_sample_losses, predict
from .unlearn import unlearn


def val_record(model, prep, lam: float = 0.5) -> dict:
    """Validation accuracy, the forget-vs-val MIA and the validation NoMUS of one model."""
    logits, y = predict(model, prep.loaders.val, prep.device)
    val_losses = F.cross_entropy(logits, y, reduction="none").numpy()
    val_acc = float((logits.argmax(1) == y).float().mean())
    m = mia_from_losses(per_sample_losses(model, prep.loaders.forget_eval, prep.device),
                        val_losses, seed=prep.seed)
    fs = forgetting_score(m.mean)
    return dict(val_acc=val_acc, mia_val=m.mean, fs_val=fs, val_nomus=nomus(val_acc, fs, lam))


def grid(space: dict[str, list]) -> list[dict]:
    """Every combination of a {knob: [values]} space."""
    keys = list(space)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(space[k] for k in keys))]


def tune(preps, method: str, space: dict[str, list], base: dict | None = None,
         progress: bool = True) -> tuple[dict, list[dict]]:
    """Run ``method`` for every config of ``space`` on every prepared seed; pick the config
    with the best mean validation NoMUS. Returns (best overrides, all rows)."""
    from .experiment import method_config

    rows = []
    for cfg in tqdm(grid(space), desc=f"tune {method}", disable=not progress, leave=False):
        recs = []
        for prep in preps:
            overrides = {**(base or {}), **cfg}
            res = unlearn(method, prep.original, prep.unlearn_data(),
                          method_config(prep, method, overrides))
            recs.append(val_record(res.model, prep))
        row = dict(cfg)
        for k in recs[0]:
            row[k] = float(np.mean([r[k] for r in recs]))
        rows.append(row)
    best = max(rows, key=lambda r: r["val_nomus"])
    return {k: best[k] for k in space}, rows
