"""EU-k, exact unlearning of the last k layers (Goel et al., 2022): re-initialise the last
k blocks, freeze the rest and train the new blocks on the retain set.

    re-initialise blocks[-k:]; loss = CE(f(x_r), y_r), gradients only into blocks[-k:]

The last k blocks then never saw F; the frozen trunk did. The training loop is shared with
CF-k (:func:`dlfd.unlearn.base.train_last_k`).
"""

from __future__ import annotations

import torch.nn as nn

from .base import LastKConfig, UnlearnData, UnlearnResult, register, train_last_k


@register("eu_k", LastKConfig)
def eu_k(model: nn.Module, data: UnlearnData, config: LastKConfig) -> UnlearnResult:
    """EU-k, exact unlearning of the last k layers (Goel et al., 2022; docs/method.md#baselines):
    re-initialise the last ``k`` blocks (``reset_parameters``), freeze the rest and train the
    new blocks on R with CE.

    Knobs: ``k`` (default 3), ``epochs`` (re-initialised layers need more than one pass to
    recover utility; ``epochs=0`` returns the re-initialised model) and ``lr``.
    """
    return train_last_k("eu_k", model, data, config, reinitialise=True)
