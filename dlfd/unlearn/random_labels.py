"""Random Labels (Graves et al., 2021, as used by Fan et al., 2024): train the forget set
towards wrong labels, redrawn every step, and the retain set towards its own.

    loss = CE(f(x_f), ỹ_f) + retain_weight · CE(f(x_r), y_r),   ỹ_f uniform over the wrong classes

SalUn (:mod:`dlfd.unlearn.salun`) takes the same loss through a saliency mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import UnlearnConfig, UnlearnData, UnlearnResult, optimize, paired, register, result, sgd


@dataclass
class RandomLabelsConfig(UnlearnConfig):
    """Random Labels settings."""

    retain_weight: float = 1.0  # weight of the CE-on-R term; 0 relabels F alone


def wrong_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A uniformly random label different from the true one (global RNG, seeded by unlearn())."""
    shift = torch.randint(1, num_classes, y.shape, device=y.device)
    return (y + shift) % num_classes


def relabel_loss(model: nn.Module, num_classes: int, retain_weight: float) -> Callable:
    """CE on F with wrong labels + ``retain_weight``·CE on R, in one forward pass."""
    def loss_fn(x_r, y_r, x_f, y_f):
        logits = model(torch.cat([x_r, x_f]))
        ce_retain = F.cross_entropy(logits[: len(x_r)], y_r)
        ce_random = F.cross_entropy(logits[len(x_r):], wrong_labels(y_f, num_classes))
        return (ce_random + retain_weight * ce_retain,
                {"ce_retain": ce_retain.detach(), "ce_random": ce_random.detach()})

    return loss_fn


@register("random_labels", RandomLabelsConfig)
def random_labels(model: nn.Module, data: UnlearnData, config: RandomLabelsConfig) -> UnlearnResult:
    """Random Labels (Graves et al., 2021, as used by Fan et al., 2024; docs/method.md#baselines):
    train F towards labels drawn uniformly from the *wrong* classes, redrawn every step, plus
    CE on R to keep utility.

    Knobs: ``lr``, ``epochs`` and ``retain_weight``.
    """
    trace: list[dict] = []
    optimize(model, sgd(model.parameters(), config), paired(data, config.epochs, config.device),
             relabel_loss(model, data.num_classes, config.retain_weight), trace,
             progress=config.progress, selector=data.selector)
    return result("random_labels", model, trace)
