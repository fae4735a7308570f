"""Bad Teacher (Chundawat et al., 2023): distil the original on the retain set and a
randomly initialised network on the forget set, over one mixed batch.

    loss = mean over [x_r; x_f] of KL(teacher(x) ‖ f(x)) at temperature T,
           teacher = the original on x_r, a random network on x_f
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from .base import (UnlearnConfig, UnlearnData, UnlearnResult, distill_kl, frozen, optimize,
                   paired, register, reinit, result, sgd, teacher)


@dataclass
class BadTeacherConfig(UnlearnConfig):
    """Bad Teacher settings."""

    temperature: float = 1.0  # distillation temperature (1 in Chundawat et al.)


@register("bad_teacher", BadTeacherConfig)
def bad_teacher(model: nn.Module, data: UnlearnData, config: BadTeacherConfig) -> UnlearnResult:
    """Bad Teacher (Chundawat et al., 2023; docs/method.md#baselines): the student (the model)
    minimises KL(competent teacher ‖ student) on R, where the competent teacher is
    ``data.original``, and KL(incompetent teacher ‖ student) on F, where the incompetent one
    is a randomly initialised network of the same architecture. Both terms are averaged over
    the combined batch, as in their mixed retain/forget dataset.

    Knobs: ``lr``, ``epochs`` and ``temperature``. Error-maximising in effect: F's outputs are
    pulled towards a random network's near-uniform ones.
    """
    device = config.device
    competent = teacher(data, "bad_teacher", device)
    incompetent = copy.deepcopy(competent)
    reinit(incompetent)  # seeded by unlearn(), so the same seed gives the same bad teacher

    def loss_fn(x_r, y_r, x_f, y_f):
        with torch.no_grad():
            targets = torch.cat([competent(x_r), incompetent(x_f)])
        rows = distill_kl(model(torch.cat([x_r, x_f])), targets, config.temperature)
        n = len(x_r)
        return rows.mean(), {"kl_retain": rows[:n].mean().detach(),
                             "kl_forget": rows[n:].mean().detach()}

    trace: list[dict] = []
    with frozen(competent, incompetent):
        optimize(model, sgd(model.parameters(), config), paired(data, config.epochs, device),
                 loss_fn, trace, progress=config.progress, selector=data.selector)
    return result("bad_teacher", model, trace)
