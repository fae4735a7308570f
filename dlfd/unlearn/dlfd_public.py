"""DLFD as the authors' public code actually ran it, to measure what the paper's numbers
measured. **Not a method to use**: every switch below is a defect (docs/method.md §5).

Registered as ``"dlfd_public"``. It is :mod:`.feature_distancing`'s loop with the public
code's settings and departures switched on, nothing copied:

* **D1 "OT gradient"**: ``ot_on_clean=True``, the OT term on the clean retain outputs, so
  ∇_δ OT = 0 and only −CE steers δ.
* **D2 "normalised clamp"**: ``clamp="normalised"``, the normalised tensor clamped to [0, 1]
  (every pixel darker than the mean becomes mid-grey), and ``step_unit="normalised"``: δ
  and α = 0.4 live on the normalised tensor, as in the authors' MUFAC row.
* **D4 "BatchNorm mode"**: ``bn_updates="eval"``, the model updated in eval mode.
* **D3 "test-set selection"**: ``selection="test"``, the checkpoint with the best test
  NoMUS after every step (needs ``UnlearnData.selection_test``; it leaks the test set).

The settings are the authors' MUFAC row (docs/method.md §4): lr 0.008, w_ot 3, w_cls 0 → 1,
K 15, α 0.4 (normalised units), τ 0.15. The forgetting-score monitor of the dynamic
forgetting is this project's (validation split); only the selection reads the test set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from .base import UnlearnData, UnlearnResult, register
from .feature_distancing import DLFDConfig, run


@dataclass
class DLFDPublicConfig(DLFDConfig):
    """The public code's DLFD settings (docs/method.md §4, MUFAC row, and §5 D1–D4)."""

    lr: float = 0.008
    w_ot: float = 3.0
    w_cls_start: float = 0.0
    w_cls_end: float = 1.0
    steps: int = 15
    step_size: float = 0.4          # normalised units (step_unit below)
    tau: float = 0.15
    ot_on_clean: bool = True        # D1
    clamp: str = "normalised"       # D2
    step_unit: str = "normalised"   # D2: α on the normalised tensor
    bn_updates: str = "eval"        # D4
    selection: str = "test"         # D3: leaks the test set


@register("dlfd_public", DLFDPublicConfig)
def dlfd_public(model: nn.Module, data: UnlearnData, cfg: DLFDPublicConfig) -> UnlearnResult:
    """DLFD as the public code ran it (docs/method.md §5 D1 "OT gradient", D2 "normalised
    clamp", D3 "test-set selection", D4 "BatchNorm mode"), with the authors' MUFAC settings
    (§4). It exists to measure what the paper's numbers measured, not to be used: the
    default ``selection="test"`` chooses the checkpoint on ``data.selection_test``."""
    return run("dlfd_public", model, data, cfg)
