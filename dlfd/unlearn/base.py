"""The one signature every unlearning method shares, its result type and the registry.

A method is ``fn(model, data, config) -> UnlearnResult``. It is registered with its config
dataclass, and callers go through :func:`unlearn`, which hands the method a deep copy: the
model a caller passes in is never mutated (and a test checks every registered method).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..data import Normalization


@dataclass
class UnlearnData:
    """What a method may use. ``retain``/``forget`` are shuffled, train-transform loaders;
    the ``*_eval`` ones are ordered, eval-transform loaders. ``val`` is the only held-out
    split a method may look at (for monitoring or selection); the test split is never here.
    """

    retain: DataLoader
    forget: DataLoader
    retain_eval: DataLoader
    forget_eval: DataLoader
    val: DataLoader
    num_classes: int
    norm: Normalization = field(default_factory=Normalization)
    original: nn.Module | None = None  # the trained model, for teacher-based methods


@dataclass
class UnlearnConfig:
    """Knobs shared by all methods; each method subclasses it with its own."""

    lr: float = 0.01
    epochs: int = 1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "cpu"
    progress: bool = False


@dataclass
class UnlearnResult:
    """The new model, its cost and a per-step trace (a list of flat dicts)."""

    name: str
    model: nn.Module
    seconds: float
    steps: int
    trace: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[[nn.Module, UnlearnData, UnlearnConfig], UnlearnResult]
    config_cls: type
    doc: str = ""


REGISTRY: dict[str, Method] = {}


def register(name: str, config_cls: type = UnlearnConfig):
    """Decorator: add ``fn`` to the registry under ``name``."""

    def wrap(fn):
        if name in REGISTRY:
            raise ValueError(f"Method {name!r} is registered twice.")
        REGISTRY[name] = Method(name, fn, config_cls, (fn.__doc__ or "").strip())
        return fn

    return wrap


def make_config(name: str, **overrides) -> UnlearnConfig:
    """The method's default config with ``overrides``; unknown keys are an error."""
    method = get_method(name)
    known = {f.name for f in fields(method.config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"{name}: unknown config key(s) {unknown}; known: {sorted(known)}.")
    return method.config_cls(**overrides)


def get_method(name: str) -> Method:
    if name not in REGISTRY:
        raise KeyError(f"No unlearning method {name!r}; registered: {sorted(REGISTRY)}.")
    return REGISTRY[name]


def unlearn(name: str, model: nn.Module, data: UnlearnData,
            config: UnlearnConfig | dict | None = None) -> UnlearnResult:
    """Run a registered method on a deep copy of ``model`` and time it."""
    method = get_method(name)
    if config is None or isinstance(config, dict):
        config = make_config(name, **(config or {}))
    elif not isinstance(config, method.config_cls):
        raise TypeError(f"{name} expects a {method.config_cls.__name__}, got {type(config).__name__}.")
    from ..train import seed_everything, select_device

    device = select_device(config.device)
    config = replace(config, device=str(device))
    work = copy.deepcopy(model).to(device)
    seed_everything(config.seed)
    # Shuffled loaders keep their own generator, which advances on every pass; reseeding it
    # makes each run reproducible however often the same loaders were used before.
    for offset, loader in enumerate((data.retain, data.forget), start=1):
        if getattr(loader, "generator", None) is not None:
            loader.generator.manual_seed(config.seed * 1000 + offset)
    t0 = time.perf_counter()
    result = method.fn(work, data, config)
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.seconds = time.perf_counter() - t0
    result.name = name
    result.info.setdefault("config", asdict(config))
    result.model.eval()
    return result


def sgd(model: nn.Module, config: UnlearnConfig, params=None) -> torch.optim.SGD:
    """The optimiser every method uses unless its paper says otherwise."""
    return torch.optim.SGD(params if params is not None else model.parameters(), lr=config.lr,
                           momentum=config.momentum, weight_decay=config.weight_decay)


def cycle(loader: DataLoader):
    """Endless iteration over a loader, reshuffling each pass (pairs forget with retain)."""
    if len(loader) == 0:
        raise ValueError("cycle() got an empty loader; the forget set must not be empty.")
    while True:
        yield from loader
