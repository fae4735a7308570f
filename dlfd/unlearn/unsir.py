"""UNSIR (Tarun et al., 2023), per forget batch rather than per class: impair the model on
error-maximising noise, then repair it on the retain set.

    noise N = argmax_N CE(f(N), y_f) − noise_l2 · mean(N²)          (Adam, noise_steps)
    impair:  loss = CE(f([x_r; N]), [y_r; y_f])                      (one step per forget batch)
    repair:  loss = CE(f(x_r), y_r)                                  (repair_epochs passes)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checks import require_nonempty
from .base import (UnlearnConfig, UnlearnData, UnlearnResult, ce_epochs, cycle, optimize, passes,
                   register, result, sgd)


@dataclass
class UnsirConfig(UnlearnConfig):
    """UNSIR settings: impair at ``lr``, repair at ``repair_lr``, and the noise search's."""

    lr: float = 0.02          # impair step size: how hard one step on the noise hits
    repair_lr: float = 0.01   # learning rate of the repair passes on R
    repair_epochs: int = 1    # repair passes on R
    noise_steps: int = 5      # Adam steps of the noise search per forget batch
    noise_lr: float = 0.1     # Adam learning rate of the noise search
    noise_l2: float = 0.1     # λ of the per-pixel mean penalty on N² (keeps the noise bounded)


def error_max_noise(model: nn.Module, like: torch.Tensor, y: torch.Tensor,
                    config: UnsirConfig) -> tuple[torch.Tensor, float]:
    """Noise N (input units) that maximises CE(f(N), y) − λ·mean(N²), by Adam.

    The penalty is a per-pixel mean (Tarun et al. sum over pixels) so that ``noise_l2`` does
    not depend on the image size. Eval mode: the search must not move BatchNorm statistics.
    """
    model.eval()
    noise = torch.randn_like(like).requires_grad_(True)
    opt = torch.optim.Adam([noise], lr=config.noise_lr)
    for _ in range(config.noise_steps):
        objective = F.cross_entropy(model(noise), y) - config.noise_l2 * noise.pow(2).mean()
        (grad,) = torch.autograd.grad(-objective, noise)  # only the noise: no stray parameter grads
        noise.grad = grad
        opt.step()
    with torch.no_grad():
        ce = float(F.cross_entropy(model(noise), y))
    return noise.detach(), ce


@register("unsir", UnsirConfig)
def unsir(model: nn.Module, data: UnlearnData, config: UnsirConfig) -> UnlearnResult:
    """UNSIR (Tarun et al., 2023; docs/method.md#baselines), per forget batch rather than per class
    (random-sample forgetting).

    *Impair*: for every forget batch, search error-maximising noise for that batch's labels
    (:func:`error_max_noise`), then take one step of CE on [retain batch; noise] with
    [retain labels; forget labels] at ``lr`` — the large step on label-consistent but
    loss-maximising inputs damages what the model knows about those samples. *Repair*:
    ``repair_epochs`` passes of CE on R at ``repair_lr``.

    The noise is tied to the forget *labels*, not to the forget samples: under random-sample
    forgetting (every class in F) it impairs R almost as much as F.

    Knobs: ``lr`` (impair strength), ``noise_steps``/``noise_lr``/``noise_l2`` (how
    adversarial the noise is), ``repair_epochs``/``repair_lr`` (how much utility comes back).
    """
    require_nonempty(data.forget, "forget")
    require_nonempty(data.retain, "retain")
    device = config.device
    retain = cycle(data.retain, "retain")

    def impair_batches():
        for x_f, y_f in passes(data.forget, config.epochs, device):
            noise, noise_ce = error_max_noise(model, x_f, y_f, config)
            x_r, y_r = next(retain)
            yield torch.cat([x_r.to(device), noise]), torch.cat([y_r.to(device), y_f]), noise_ce

    def impair_loss(x, y, noise_ce):
        return F.cross_entropy(model(x), y), {"noise_ce": noise_ce}

    trace: list[dict] = []
    optimize(model, sgd(model.parameters(), config), impair_batches(), impair_loss, trace,
             phase="impair", progress=config.progress, selector=data.selector)
    repair_opt = sgd(model.parameters(), replace(config, lr=config.repair_lr))
    ce_epochs(model, repair_opt, data.retain, config.repair_epochs, trace, config, phase="repair",
              selector=data.selector)
    return result("unsir", model, trace)
