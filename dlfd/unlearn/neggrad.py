"""NegGrad: gradient ascent on the forget set, nothing else.

    loss = −CE(f(x_f), y_f)

Error-maximising, and unbounded: it forgets by making F wrong, which is what causes
correlation collapse (docs/method.md §1; :mod:`dlfd.collapse` measures it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from ..checks import require_nonempty
from .base import UnlearnConfig, UnlearnData, UnlearnResult, ce_epochs, register, result, sgd


@dataclass
class NegGradConfig(UnlearnConfig):
    """NegGrad: ``epochs`` passes of gradient ascent on F at ``lr`` (the shared settings)."""


@register("neggrad", NegGradConfig)
def neggrad(model: nn.Module, data: UnlearnData, config: NegGradConfig) -> UnlearnResult:
    """NegGrad (Golatkar et al., 2020; docs/method.md#baselines): gradient *ascent* on CE
    over F, nothing else.

    Unbounded, so ``lr`` × ``epochs`` is the knob that decides between "forgets" and
    "destroys the model" (the authors' table, docs/method.md §4: test accuracy .633 → .412).
    """
    require_nonempty(data.forget, "forget")
    trace: list[dict] = []
    ce_epochs(model, sgd(model.parameters(), config), data.forget, config.epochs, trace, config,
              sign=-1.0, selector=data.selector)
    return result("neggrad", model, trace)
