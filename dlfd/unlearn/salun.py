"""SalUn (Fan et al., 2024): Random Labels, but only the weights most salient for the forget
loss may change.

    mask  = top mask_ratio of weights by |∂CE(f(x_f), y_f)/∂w|       (once, before training)
    loss  = CE(f(x_f), ỹ_f) + retain_weight · CE(f(x_r), y_r)         (as Random Labels)
    update: w ← w − lr · mask ⊙ (∇loss + weight_decay · w)            (SGD with momentum)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..checks import check_number, require_nonempty
from ..models import eval_mode
from .base import UnlearnConfig, UnlearnData, UnlearnResult, optimize, paired, register, result, sgd
from .random_labels import relabel_loss


@dataclass
class SalUnConfig(UnlearnConfig):
    """SalUn settings."""

    mask_ratio: float = 0.5     # fraction of weights that may change (Fan et al.: 0.5)
    retain_weight: float = 1.0  # weight of the CE-on-R term, as in Random Labels

    def __post_init__(self):
        super().__post_init__()
        check_number("mask_ratio", self.mask_ratio, low=0, strict=True, high=1)


def saliency_mask(model: nn.Module, loader: DataLoader, ratio: float, device) -> list[torch.Tensor]:
    """One 0/1 tensor per parameter: the ``ratio`` of all weights (ranked globally) with the
    largest |∂ CE_F / ∂w|, the gradient of the mean forget loss (Fan et al., 2024).

    Eval mode and the eval-transform loader: the saliency must not move BatchNorm
    statistics, and should not depend on a random flip.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p) for p in params]
    n = 0
    with eval_mode(model):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y, reduction="sum")
            for total, grad in zip(grads, torch.autograd.grad(loss, params, allow_unused=True)):
                if grad is not None:
                    total += grad
            n += len(y)
    flat = torch.cat([g.abs().flatten() for g in grads]) / max(n, 1)
    keep = max(1, int(round(ratio * flat.numel())))
    mask = torch.zeros_like(flat)
    mask[torch.topk(flat, keep, sorted=False).indices] = 1.0  # exact count, even with ties
    return [m.view_as(p) for m, p in zip(torch.split(mask, [p.numel() for p in params]), params)]


@register("salun", SalUnConfig)
def salun(model: nn.Module, data: UnlearnData, config: SalUnConfig) -> UnlearnResult:
    """SalUn (Fan et al., 2024; docs/method.md#baselines): Random Labels, but only the weights in
    a gradient-saliency mask of the forget loss may change.

    The mask keeps the top ``mask_ratio`` (0.5) of weights by |∂CE_F/∂w|. Weight decay and
    momentum are applied through the mask too, so masked-out weights stay bit-identical.
    Knobs: ``mask_ratio``, ``lr``, ``epochs``, ``retain_weight``.
    """
    device = config.device
    require_nonempty(data.forget_eval, "forget_eval")
    params = [p for p in model.parameters() if p.requires_grad]
    masks = saliency_mask(model, data.forget_eval, config.mask_ratio, device)
    weight_decay = config.weight_decay

    def mask_grads():
        # Weight decay is folded into the gradient before masking: SGD's own decay would
        # otherwise shrink the weights SalUn promises not to touch.
        for p, mask in zip(params, masks):
            if p.grad is not None:
                p.grad.add_(p.detach(), alpha=weight_decay).mul_(mask)

    opt = sgd(params, replace(config, weight_decay=0.0))
    trace: list[dict] = []
    optimize(model, opt, paired(data, config.epochs, device),
             relabel_loss(model, data.num_classes, config.retain_weight), trace,
             post_backward=mask_grads, progress=config.progress, selector=data.selector)
    kept = float(sum(m.sum() for m in masks) / sum(m.numel() for m in masks))
    return result("salun", model, trace, mask_fraction=kept)
