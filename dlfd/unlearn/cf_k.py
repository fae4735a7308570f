"""CF-k, catastrophic forgetting of the last k layers (Goel et al., 2022): freeze all but
the last k blocks and fine-tune those on the retain set.

    loss = CE(f(x_r), y_r), gradients only into the last k blocks

The training loop is shared with EU-k (:func:`dlfd.unlearn.base.train_last_k`).
"""

from __future__ import annotations

import torch.nn as nn

from .base import LastKConfig, UnlearnData, UnlearnResult, register, train_last_k


@register("cf_k", LastKConfig)
def cf_k(model: nn.Module, data: UnlearnData, config: LastKConfig) -> UnlearnResult:
    """CF-k, catastrophic forgetting of the last k layers (Goel et al., 2022;
    docs/method.md#baselines): freeze all but the last ``k`` blocks and train those on R
    with CE.

    Knobs: ``k`` (default 3: on both models here, the two MLP layers and the classifier),
    ``epochs`` and ``lr``.
    """
    return train_last_k("cf_k", model, data, config, reinitialise=False)
