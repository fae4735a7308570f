"""The one signature every unlearning method shares, its result type, the registry, and the
update loop the baselines are built from.

A method is ``fn(model, data, config) -> UnlearnResult``. It is registered with its config
dataclass, and callers go through :func:`unlearn`, which hands the method a deep copy: the
model a caller passes in is never mutated (and a test checks every registered method).

Conventions the loop helpers below enforce for every baseline:

* **Pairing**: methods that use R and F together walk one pass of R per epoch and draw the
  next F batch each step (F cycles), like DLFD, so their step budgets are comparable
  (:func:`paired`).
* **Modes**: updates run in train mode (BatchNorm and dropout as in training); anything that
  is not an update (a teacher, the noise search, the saliency) runs in eval mode so it does
  not move BatchNorm statistics (docs/method.md, §5 D4 "BatchNorm mode").
* **Steps** count optimiser steps on the model; ``trace`` holds one dict per step.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..checks import check_choice, is_int, require, require_nonempty
from ..data import Normalization
from ..metrics import nomus
from ..models import eval_mode
from ..train import make_sgd, seed_everything, select_device
from .monitor import ForgettingMonitor

SELECTIONS = ("last", "val", "test")


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
    # Non-members for ``selection="test"`` only (the test split, or half of it for a held-out
    # check): the public code's protocol, which leaks the test set (docs/method.md §5 D3).
    selection_test: DataLoader | None = None
    # Set by unlearn() from ``config.selection`` unless the caller passes a fresh one (a
    # subclass that selects on more than one split); methods hand it to optimize() (or call
    # its after_step themselves) and never build one.
    selector: "StepSelector | None" = None


@dataclass
class UnlearnConfig:
    """Settings shared by all methods; each method subclasses it with its own."""

    lr: float = 0.01            # SGD learning rate
    epochs: int = 1             # passes over the method's main loader (DLFD's budget is one)
    momentum: float = 0.9       # SGD momentum
    weight_decay: float = 5e-4  # SGD weight decay
    seed: int = 0               # seeds torch, NumPy, Python and the loaders' shuffles
    device: str = "cpu"         # "auto", "cpu", "cuda[:N]" or "mps"
    progress: bool = False      # a tqdm bar per loop
    selection: str = "last"     # "last", "val" or "test" (leaks the test set): see StepSelector

    def __post_init__(self):
        check_choice(f"{type(self).__name__}.selection", self.selection, SELECTIONS)


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
    """Run a registered unlearning method on a deep copy of ``model`` and time it.

    Parameters
    ----------
    name : str
        A registered method: ``"dlfd"`` or one of the baselines (``sorted(REGISTRY)``).
    model : torch.nn.Module
        The original model. It is copied, never changed, and its mode is left as it was.
    data : UnlearnData
        The retain, forget and validation loaders (never the test split).
    config : UnlearnConfig or dict or None
        The method's config object, or overrides of its defaults (see :func:`make_config`).

    Returns
    -------
    UnlearnResult
        The unlearnt model in eval mode, the wall time of the method alone, the number of
        optimiser steps, a per-step trace and method-specific ``info`` (with the config).

    Examples
    --------
    >>> res = unlearn("finetune", original, data, {"lr": 1e-3, "seed": 0})  # doctest: +SKIP
    >>> res.steps == len(data.retain)                                       # doctest: +SKIP
    True

    References
    ----------
    docs/method.md §3 (evaluation protocol: the run-time cost is ``seconds``) and §5 D6
    "single runs" (the same seed gives the same model, so runs can be averaged over seeds).
    """
    method = get_method(name)
    if config is None or isinstance(config, dict):
        config = make_config(name, **(config or {}))
    elif not isinstance(config, method.config_cls):
        raise TypeError(f"{name} expects a {method.config_cls.__name__}, "
                        f"got {type(config).__name__}.")
    device = select_device(config.device)
    config = replace(config, device=str(device))
    work = copy.deepcopy(model).to(device)
    seed_everything(config.seed)
    # Shuffled loaders keep their own generator, which advances on every pass; reseeding it
    # makes each run reproducible however often the same loaders were used before.
    for offset, loader in enumerate((data.retain, data.forget), start=1):
        if getattr(loader, "generator", None) is not None:
            loader.generator.manual_seed(config.seed * 1000 + offset)
    selector = data.selector
    if selector is None:
        selector = StepSelector(data, config, device)
    else:
        require(isinstance(selector, StepSelector) and selector.n_steps == 0
                and selector.mode == config.selection,
                f"UnlearnData.selector: expected a fresh StepSelector with mode "
                f"{config.selection!r} (the config's selection); got {selector!r}.")
    data = replace(data, selector=selector)
    t0 = time.perf_counter()
    result = method.fn(work, data, config)
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.info.update(selector.finish(result.model))
    # The method's own cost: selection is the caller's protocol, timed apart (§5 D3).
    result.seconds = time.perf_counter() - t0 - selector.seconds
    result.name = name
    result.info.setdefault("config", asdict(config))
    result.model.eval()
    return result


# CV splits of the per-step attack, not the protocol's 10: selection runs after every step and
# only has to rank steps, not report a number.
SELECTION_CV_SPLITS = 3
# Input pixels per forward chunk when selection scores on CPU: 32 images of 3×32×32, or 8 of
# 3×64×64, keep the first convolutions' activations in cache (benchmarks/attack_cost.py).
CPU_CHUNK_PIXELS = 32 * 3 * 32 * 32


class StepSelector:
    """Checkpoint selection over a run's optimiser steps, shared by every method.

    ``selection="last"`` keeps the final model and costs nothing. ``"val"`` scores the model
    after every optimiser step with the validation NoMUS, 0.5·acc + 0.5·(1 − 2·FS), where
    acc is the accuracy on ``data.val`` and FS the forget-vs-validation forgetting score
    (:class:`dlfd.unlearn.monitor.ForgettingMonitor`), and keeps the best step's weights.
    ``"test"`` does the same with ``data.selection_test`` in the validation split's place:
    the public code's protocol, which **leaks the test set** into the method and is here
    only to measure what the paper's numbers measured (docs/method.md §5 D3 "test-set
    selection").

    Parameters
    ----------
    data : UnlearnData
        ``forget_eval`` (members), and ``val`` or ``selection_test`` (non-members).
    config : UnlearnConfig
        ``selection`` and ``seed`` (the attack's seed).
    device : torch.device or str

    Attributes
    ----------
    seconds : float
        Time spent scoring; :func:`unlearn` subtracts it from the method's ``seconds`` and
        reports it as ``info["selection_seconds"]``.

    Examples
    --------
    >>> res = unlearn("finetune", original, data, {"selection": "val"})  # doctest: +SKIP
    >>> res.info["selected_step"] < res.info["n_steps"]                   # doctest: +SKIP
    True

    References
    ----------
    docs/method.md §3 (NoMUS, FS) and §5 D3 "test-set selection".
    """

    def __init__(self, data: UnlearnData, config: UnlearnConfig, device):
        self.mode = config.selection
        nonmembers = None
        if self.mode == "val":
            nonmembers = data.val
        elif self.mode == "test":
            require(data.selection_test is not None,
                    "selection='test' needs UnlearnData.selection_test (a non-member loader, the "
                    "test split or half of it); got None. Use selection='val' to select on the "
                    "validation split instead.")
            nonmembers = data.selection_test
        on_cpu = torch.device(device).type == "cpu"
        self.monitor = (None if nonmembers is None else
                        ForgettingMonitor(data.forget_eval, nonmembers, device, seed=config.seed,
                                          n_splits=SELECTION_CV_SPLITS, channels_last=on_cpu,
                                          chunk_pixels=CPU_CHUNK_PIXELS if on_cpu else None))
        self.n_steps = 0
        self.seconds = 0.0
        self.best: tuple | None = None  # (score, step, state_dict, record)

    def after_step(self, model: nn.Module) -> None:
        """Call once after every optimiser step on ``model``."""
        step = self.n_steps
        self.n_steps += 1
        if self.monitor is None:
            return
        t0 = time.perf_counter()
        self.score_step(model, step)
        self.seconds += time.perf_counter() - t0

    def score_step(self, model: nn.Module, step: int) -> None:
        """Score the model after ``step`` and keep it if it is the best so far; a subclass
        that selects on more than one split overrides this (benchmarks/unlearning.py)."""
        self.best = self.keep_best(self.best, self.monitor(model), step, model)

    @staticmethod
    def keep_best(best: tuple | None, attack: dict, step: int, model: nn.Module) -> tuple | None:
        """``(score, step, weights, attack)`` of whichever is better: ``best`` or this step,
        scored by its NoMUS. A step whose outputs are not finite has diverged: it can never
        be the one kept."""
        score = nomus(attack["val_acc"], attack["score"], 0.5)
        if attack["finite"] and (best is None or score > best[0]):
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return score, step, state, attack
        return best

    def finish(self, model: nn.Module) -> dict:
        """Load the selected step's weights into ``model``; returns what goes into ``info``."""
        info = {"selection": self.mode, "n_steps": self.n_steps,
                "selected_step": self.n_steps - 1 if self.n_steps else None,
                "selection_seconds": self.seconds}
        if self.mode == "test":
            info["selection_note"] = ("selected on the test set: leaks it (docs/method.md §5 D3 "
                                      "\"test-set selection\")")
        if self.best is not None:
            score, step, state, attack = self.best
            model.load_state_dict(state)
            info.update(selected_step=step, selection_score=score,
                        selection_acc=attack["val_acc"], selection_fs=attack["score"])
        return info


# --------------------------------------------------------------------------- loop helpers


def sgd(params, config: UnlearnConfig) -> torch.optim.SGD:
    """The optimiser every method uses unless its paper says otherwise."""
    return make_sgd(params, config.lr, config.momentum, config.weight_decay)


def cycle(loader: DataLoader, what: str = "forget"):
    """Endless iteration over a loader, reshuffling each pass (pairs forget with retain)."""
    require_nonempty(loader, what)  # an empty loader would make this loop forever
    while True:
        yield from loader


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def passes(loader: DataLoader, epochs: int, device) -> Iterable[tuple]:
    """(x, y) on ``device`` for ``epochs`` passes over ``loader``."""
    for _ in range(epochs):
        for x, y in loader:
            yield x.to(device), y.to(device)


def paired(data: UnlearnData, epochs: int, device) -> Iterable[tuple]:
    """(x_r, y_r, x_f, y_f): each retain batch with the next forget batch (F cycles)."""
    require_nonempty(data.forget, "forget")
    forget = cycle(data.forget)
    for x_r, y_r in passes(data.retain, epochs, device):
        x_f, y_f = next(forget)
        yield x_r, y_r, x_f.to(device), y_f.to(device)


def optimize(model: nn.Module, opt: torch.optim.Optimizer, batches: Iterable[tuple],
             loss_fn: Callable, trace: list[dict], *, phase: str | None = None,
             train_mode: Callable[[], None] | None = None,
             post_backward: Callable[[], None] | None = None, progress: bool = False,
             selector: StepSelector | None = None) -> None:
    """The one update loop: per batch, train mode → loss → backward → step → trace.

    ``loss_fn(*batch)`` returns a scalar loss, or ``(loss, logs)`` with extra floats for the
    trace. The mode is set *after* the batch is produced because a batch generator may run
    the model in eval mode (UNSIR's noise search). ``selector`` (``data.selector``) sees the
    model after every step.
    """
    if progress:
        batches = tqdm(batches, desc=phase or "unlearn", leave=False)
    start = len(trace)
    for batch in batches:
        (train_mode or model.train)()
        out = loss_fn(*batch)
        loss, logs = out if isinstance(out, tuple) else (out, {})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if post_backward is not None:
            post_backward()
        opt.step()
        if selector is not None:
            selector.after_step(model)
        row = {"step": len(trace), "loss": loss.detach(), **logs}
        if phase:
            row["phase"] = phase
        trace.append(row)
    # Converted at the end, not per step: float() on a GPU tensor would wait for the device
    # every step and inflate the method's wall time (docs/method.md §3).
    for row in trace[start:]:
        row.update({k: float(v) for k, v in row.items() if isinstance(v, torch.Tensor)})


def result(name: str, model: nn.Module, trace: list[dict], **info) -> UnlearnResult:
    return UnlearnResult(name, model, seconds=0.0, steps=len(trace), trace=trace, info=info)


def ce_loss(model: nn.Module, sign: float = 1.0) -> Callable:
    """``sign``·CE(f(x), y): +1 descends (fine-tuning, repair), −1 ascends (NegGrad)."""
    def loss_fn(x, y):
        ce = F.cross_entropy(model(x), y)
        return sign * ce, {"ce": ce.detach()}

    return loss_fn


def ce_epochs(model, opt, loader, epochs, trace, config, *, sign=1.0, phase=None, **kw) -> None:
    """``epochs`` passes of ±CE over one loader (fine-tune, NegGrad, CF-k, EU-k, repair)."""
    optimize(model, opt, passes(loader, epochs, config.device), ce_loss(model, sign), trace,
             phase=phase, progress=config.progress, **kw)


def distill_kl(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """Per-sample KL(teacher ‖ student) at ``temperature`` T, times T² (Hinton et al.) so that
    the gradient scale does not depend on T."""
    log_s = F.log_softmax(student_logits / temperature, 1)
    log_t = F.log_softmax(teacher_logits / temperature, 1)
    return (log_t.exp() * (log_t - log_s)).sum(1) * (temperature * temperature)


def reinit(module: nn.Module) -> None:
    """Fresh initialisation of every sub-layer (BatchNorm also resets its running stats)."""
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()


def teacher(data: UnlearnData, name: str, device) -> nn.Module:
    """``data.original`` on ``device``; copied only if it lives elsewhere, never moved, so the
    caller's object is left where it was."""
    if data.original is None:
        raise ValueError(f"{name} distils from the original model: set UnlearnData.original.")
    original = data.original
    want = torch.empty(0, device=device).device  # "cuda" → "cuda:0", comparable to a param's
    return original if device_of(original) == want else copy.deepcopy(original).to(want)


@contextlib.contextmanager
def frozen(*teachers: nn.Module):
    """Eval mode for teachers while a method runs (no BatchNorm updates), restored after,
    because the teacher may be the caller's own model."""
    with contextlib.ExitStack() as stack:
        for t in teachers:
            stack.enter_context(eval_mode(t))
        yield


# --------------------------------------------------------------------------- CF-k and EU-k


@dataclass
class LastKConfig(UnlearnConfig):
    """CF-k / EU-k settings."""

    k: int = 3  # how many of model.blocks(), counted from the output, train


def train_last_k(name: str, model: nn.Module, data: UnlearnData, config: LastKConfig,
                 reinitialise: bool) -> UnlearnResult:
    """Train only the last ``k`` blocks on R with CE (CF-k), after re-initialising them
    if ``reinitialise`` (EU-k); the trunk keeps its weights and BatchNorm statistics."""
    blocks = model.blocks()
    require(is_int(config.k) and 1 <= config.k <= len(blocks),
            f"{name}: k={config.k!r}; expected 1..{len(blocks)} (the model's block count).")
    live, trunk = blocks[-config.k:], blocks[:-config.k]
    if reinitialise:
        for block in live:
            reinit(block)
    params = [p for block in live for p in block.parameters()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for block in trunk:
        block.requires_grad_(False)  # no gradients through the frozen trunk: cheaper, same update

    def train_mode():
        # The trunk stays in eval mode: otherwise its BatchNorm statistics would still
        # drift and the "frozen" trunk would change after all.
        model.train()
        for block in trunk:
            block.eval()

    trace: list[dict] = []
    try:
        ce_epochs(model, sgd(params, config), data.retain, config.epochs, trace, config,
                  train_mode=train_mode, selector=data.selector)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return result(name, model, trace, trained_blocks=len(live), reinitialised=reinitialise)
