"""Unlearning methods behind one signature; importing this package registers them all.

One module per method, each with its config and its loss in plain sight: the baselines
(``finetune``, ``neggrad``, ``neggrad_plus``, ``cf_k``, ``eu_k``, ``random_labels``, ``unsir``,
``bad_teacher``, ``scrub``, ``salun``) and DLFD (:mod:`.feature_distancing`, registered as
``"dlfd"``), and :mod:`.dlfd_public`, DLFD as the public code ran it (``"dlfd_public"``,
for measurement only). The loop they share, and the checkpoint selection
(:class:`~.base.StepSelector`), are in :mod:`.base`.
"""

from .base import (REGISTRY, SELECTIONS, Method, StepSelector, UnlearnConfig, UnlearnData,
                   UnlearnResult, get_method, make_config, register, unlearn)
# Imported for their side effect: each module registers its method, in this order (the
# registry's order, which listings follow).
from . import finetune, cf_k, eu_k, neggrad, neggrad_plus, random_labels  # noqa: F401,I001
from . import unsir, bad_teacher, scrub, salun, feature_distancing  # noqa: F401,I001
from . import dlfd_public  # noqa: F401,I001

__all__ = ["REGISTRY", "SELECTIONS", "Method", "StepSelector", "UnlearnConfig", "UnlearnData",
           "UnlearnResult", "get_method",
           "make_config", "register", "unlearn"]
