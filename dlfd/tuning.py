"""Hyperparameter selection on the validation split only
(docs/method.md, §5 D3 "test-set selection").

The selection score mirrors NoMUS with the validation split in the test split's place:
``val_nomus = λ·val_acc + (1 − λ)·(1 − 2·|MIA(forget vs val) − 0.5|)``. The test split is never
touched, so the numbers the notebooks report on test stay honest.
"""

from __future__ import annotations

import itertools

import numpy as np
from tqdm.auto import tqdm

from .experiment import method_config
from .metrics import nomus
from .unlearn import unlearn
from .unlearn.monitor import forget_vs_val


def val_record(model, prep, lam: float = 0.5) -> dict:
    """Validation accuracy, the forget-vs-val MIA and the validation NoMUS of one model."""
    attack = forget_vs_val(model, prep.loaders.forget_eval, prep.loaders.val, prep.device,
                           seed=prep.seed)
    return dict(val_acc=attack["val_acc"], mia_val=attack["mia"], fs_val=attack["score"],
                val_nomus=nomus(attack["val_acc"], attack["score"], lam))


def grid(space: dict[str, list]) -> list[dict]:
    """Every combination of a {knob: [values]} space."""
    keys = list(space)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(space[k] for k in keys))]


def tune(preps, method: str, space: dict[str, list], base: dict | None = None,
         progress: bool = True) -> tuple[dict, list[dict]]:
    """Run ``method`` for every config of ``space`` on every prepared seed; pick the config
    with the best mean validation NoMUS. Returns (best overrides, all rows)."""
    rows = []
    for cfg in tqdm(grid(space), desc=f"tune {method}", disable=not progress, leave=False):
        records = []
        for prep in preps:
            overrides = {**(base or {}), **cfg}
            res = unlearn(method, prep.original, prep.unlearn_data(),
                          method_config(prep, method, overrides))
            records.append(val_record(res.model, prep))
        row = dict(cfg)
        for k in records[0]:
            row[k] = float(np.mean([r[k] for r in records]))
        rows.append(row)
    best = max(rows, key=lambda r: r["val_nomus"])
    return {k: best[k] for k in space}, rows
