"""Fine-tuning: keep training on the retain set and hope F is forgotten.

    loss = CE(f(x_r), y_r)

Forgetting comes only from catastrophic forgetting of F as the model keeps training, so
with a budget of one epoch it barely forgets (docs/method.md §4, the authors' reference
table: MIA .688 vs the original's .692). It is the utility-only end of the baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

from .base import UnlearnConfig, UnlearnData, UnlearnResult, ce_epochs, register, result, sgd


@dataclass
class FinetuneConfig(UnlearnConfig):
    """Fine-tune: ``epochs`` passes of CE on R at ``lr`` (the shared settings only)."""


@register("finetune", FinetuneConfig)
def finetune(model: nn.Module, data: UnlearnData, config: FinetuneConfig) -> UnlearnResult:
    """Fine-tune (Golatkar et al., 2020; docs/method.md#baselines): minimise CE on R only.

    Knobs: ``epochs`` and ``lr``.
    """
    trace: list[dict] = []
    ce_epochs(model, sgd(model.parameters(), config), data.retain, config.epochs, trace, config,
              selector=data.selector)
    return result("finetune", model, trace)
