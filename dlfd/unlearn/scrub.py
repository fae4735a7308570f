"""SCRUB (Kurmanji et al., 2023): alternate a max pass that pushes the forget set away from
the original (the teacher) and a min pass that keeps the retain set close to it.

    max pass over F (first msteps epochs):  loss = −KL(teacher(x_f) ‖ f(x_f))
    min pass over R (every epoch):          loss = α·KL(teacher(x_r) ‖ f(x_r)) + γ·CE(f(x_r), y_r)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import require, require_nonempty
from .base import (UnlearnConfig, UnlearnData, UnlearnResult, distill_kl, frozen, optimize, passes,
                   register, result, sgd, teacher)


@dataclass
class ScrubConfig(UnlearnConfig):
    """SCRUB settings (defaults: Kurmanji et al.'s small-scale setup)."""

    lr: float = 5e-4          # shared by the max and the min passes
    epochs: int = 3           # min passes over R
    msteps: int = 2           # how many of the epochs start with a max pass over F
    temperature: float = 4.0  # T of the KL
    alpha: float = 0.001      # weight of the KL in the min pass
    gamma: float = 0.99       # weight of the CE in the min pass

    def __post_init__(self):
        super().__post_init__()
        require(0 <= self.msteps <= self.epochs,
                f"msteps={self.msteps!r}; expected 0..epochs ({self.epochs}).")


@register("scrub", ScrubConfig)
def scrub(model: nn.Module, data: UnlearnData, config: ScrubConfig) -> UnlearnResult:
    """SCRUB (Kurmanji et al., 2023; docs/method.md#baselines), teacher = ``data.original``.

    Per epoch: if ``epoch < msteps``, a *max* pass over F that maximises
    KL(teacher ‖ student) (moves F away from what the original predicts); then a *min* pass
    over R that minimises ``alpha``·KL + ``gamma``·CE (stays close to the original on R).
    At the start the student *is* the teacher, where ∇KL = 0: the first max pass moves the
    model only through weight decay and momentum, so forgetting needs ``msteps`` ≥ 2 or a
    larger ``lr``. With the defaults SCRUB forgets little, as in the authors' table
    (docs/method.md §4: MIA .664 vs the original's .692). Knobs: ``msteps`` (how long it
    pushes F away; the max step is unbounded and collapses the model if ``lr`` is too high —
    seen at lr 0.01 on the toy test task), ``lr`` and ``epochs``.
    """
    device = config.device
    original = teacher(data, "scrub", device)

    def max_loss(x_f, y_f):
        with torch.no_grad():
            target = original(x_f)
        kl = distill_kl(model(x_f), target, config.temperature).mean()
        return -kl, {"kl_forget": kl.detach()}

    def min_loss(x_r, y_r):
        with torch.no_grad():
            target = original(x_r)
        logits = model(x_r)
        kl = distill_kl(logits, target, config.temperature).mean()
        ce = F.cross_entropy(logits, y_r)
        return config.alpha * kl + config.gamma * ce, {"kl_retain": kl.detach(), "ce": ce.detach()}

    if config.msteps:
        require_nonempty(data.forget, "forget")
    opt = sgd(model.parameters(), config)
    trace: list[dict] = []
    with frozen(original):
        for epoch in range(config.epochs):
            if epoch < config.msteps:
                optimize(model, opt, passes(data.forget, 1, device), max_loss, trace, phase="max",
                         progress=config.progress, selector=data.selector)
            optimize(model, opt, passes(data.retain, 1, device), min_loss, trace, phase="min",
                     progress=config.progress, selector=data.selector)
    return result("scrub", model, trace)
