"""Unlearning methods behind one signature; importing this package registers them all."""

from .base import (REGISTRY, Method, UnlearnConfig, UnlearnData, UnlearnResult, get_method,
                   make_config, register, unlearn)
from . import baselines  # noqa: F401  (registers the baselines)
from . import dlfd  # noqa: F401  (registers DLFD)

__all__ = ["REGISTRY", "Method", "UnlearnConfig", "UnlearnData", "UnlearnResult", "get_method",
           "make_config", "register", "unlearn"]
