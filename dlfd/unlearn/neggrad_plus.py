"""NegGrad+ (Kurmanji et al., 2023): descend on the retain set and ascend on the forget set
in one objective, one retain batch and one forget batch per step.

    loss = CE(f(x_r), y_r) − β · CE(f(x_f), y_f)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import check_number
from .base import UnlearnConfig, UnlearnData, UnlearnResult, optimize, paired, register, result, sgd


@dataclass
class NegGradPlusConfig(UnlearnConfig):
    """NegGrad+ settings."""

    beta: float = 0.5  # weight of the ascent term on F against CE on R; 0 is fine-tuning

    def __post_init__(self):
        super().__post_init__()
        check_number("beta", self.beta, low=0)


@register("neggrad_plus", NegGradPlusConfig)
def neggrad_plus(model: nn.Module, data: UnlearnData, config: NegGradPlusConfig) -> UnlearnResult:
    """NegGrad+ (Kurmanji et al., 2023; docs/method.md#baselines): minimise CE_R − β·CE_F in one
    objective, each step on a retain batch and a forget batch.

    Kurmanji et al. write it as the convex combination α·CE_R − (1 − α)·CE_F and tune α; this
    is the same family with β = (1 − α)/α and the scale folded into ``lr``. ``beta`` is the
    knob: larger forgets faster and risks the collapse NegGrad shows; 0 is fine-tuning.
    """
    def loss_fn(x_r, y_r, x_f, y_f):
        logits = model(torch.cat([x_r, x_f]))
        ce_retain = F.cross_entropy(logits[: len(x_r)], y_r)
        ce_forget = F.cross_entropy(logits[len(x_r):], y_f)
        return (ce_retain - config.beta * ce_forget,
                {"ce_retain": ce_retain.detach(), "ce_forget": ce_forget.detach()})

    trace: list[dict] = []
    optimize(model, sgd(model.parameters(), config), paired(data, config.epochs, config.device),
             loss_fn, trace, progress=config.progress, selector=data.selector)
    return result("neggrad_plus", model, trace)
