"""Baseline unlearning methods (PAPER.md, "Baselines the paper compares against").

Every method is ``fn(model, data, config) -> UnlearnResult`` on a private copy of the model
(see :func:`dlfd.unlearn.base.unlearn`). They differ only in *which batches* they see and
*which loss* they take on them, so they all share one update loop, :func:`_optimize`:

========================  ==================================================================
name                      objective
========================  ==================================================================
``finetune``              min CE on R                                  (utility only)
``neggrad``               max CE on F                                  (error-maximising)
``neggrad_plus``          min CE_R − β·CE_F                            (error-maximising)
``cf_k``                  min CE on R, only the last k blocks trainable
``eu_k``                  re-initialise the last k blocks, then ``cf_k``
``random_labels``         min CE(F, wrong labels) + CE on R
``unsir``                 impair on error-maximising noise, then repair on R
``bad_teacher``           KL to the original on R, KL to a random network on F
``scrub``                 max KL to the original on F, min KL + CE on R, alternating
``salun``                 ``random_labels`` restricted to the weights most salient for F
========================  ==================================================================

The error-maximising ones are those PAPER.md ("The problem") says cause *correlation
collapse*; :mod:`dlfd.collapse` measures it. Conventions shared by all methods:

* **Defaults** follow each method's paper where it gives a transferable value; learning
  rates are for the shared SGD (momentum 0.9, weight decay 5e-4, :func:`base.sgd`), and a
  single pass (``epochs=1``) matches DLFD's one-epoch budget. Select anything else on
  ``data.val`` only; the test split never reaches a method.
* **Pairing**: methods that use R and F together walk one pass of R per epoch and draw the
  next F batch each step (F cycles), like DLFD, so their step budgets are comparable.
* **Modes**: updates run in train mode (BatchNorm and dropout as in training); anything that
  is not an update (a teacher, the noise search, the saliency) runs in eval mode so it does
  not move BatchNorm statistics (PAPER.md, defect 4).
* **Steps** count optimiser steps on the model; ``trace`` holds one dict per step.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..models import eval_mode
from .base import UnlearnConfig, UnlearnData, UnlearnResult, cycle, register, sgd

# --------------------------------------------------------------------------- shared machinery


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _nonempty(loader: DataLoader, what: str) -> None:
    # base.cycle() spins forever on an empty loader; fail loudly instead.
    if len(loader) == 0:
        raise ValueError(f"The {what} loader is empty.")


def _passes(loader: DataLoader, epochs: int, device) -> Iterable[tuple]:
    for _ in range(epochs):
        for x, y in loader:
            yield x.to(device), y.to(device)


def _paired(data: UnlearnData, epochs: int, device) -> Iterable[tuple]:
    """(x_r, y_r, x_f, y_f): each retain batch with the next forget batch (F cycles)."""
    _nonempty(data.forget, "forget")
    forget = cycle(data.forget)
    for xr, yr in _passes(data.retain, epochs, device):
        xf, yf = next(forget)
        yield xr, yr, xf.to(device), yf.to(device)


def _optimize(model: nn.Module, opt: torch.optim.Optimizer, batches: Iterable[tuple],
              loss_fn: Callable, trace: list[dict], *, phase: str | None = None,
              train_mode: Callable[[], None] | None = None,
              post_backward: Callable[[], None] | None = None, progress: bool = False) -> None:
    """The one update loop: per batch, train mode → loss → backward → step → trace.

    ``loss_fn(*batch)`` returns a scalar loss, or ``(loss, logs)`` with extra floats for the
    trace. The mode is set *after* the batch is produced because a batch generator may run
    the model in eval mode (UNSIR's noise search).
    """
    if progress:
        from tqdm.auto import tqdm

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
        rec = {"step": len(trace), "loss": loss.detach(), **logs}
        if phase:
            rec["phase"] = phase
        trace.append(rec)
    # Converted at the end, not per step: float() on a GPU tensor would wait for the device
    # every step and inflate the method's wall time (PAPER.md, "Cost").
    for rec in trace[start:]:
        rec.update({k: float(v) for k, v in rec.items() if isinstance(v, torch.Tensor)})


def _result(name: str, model: nn.Module, trace: list[dict], **info) -> UnlearnResult:
    return UnlearnResult(name, model, seconds=0.0, steps=len(trace), trace=trace, info=info)


def _ce_loss(model: nn.Module, sign: float = 1.0) -> Callable:
    def fn(x, y):
        ce = F.cross_entropy(model(x), y)
        return sign * ce, {"ce": ce.detach()}

    return fn


def _ce_epochs(model, opt, loader, epochs, trace, config, *, sign=1.0, phase=None, **kw) -> None:
    """``epochs`` passes of ±CE over one loader (fine-tune, NegGrad, CF-k, EU-k, repair)."""
    _optimize(model, opt, _passes(loader, epochs, config.device), _ce_loss(model, sign), trace,
              phase=phase, progress=config.progress, **kw)


def _wrong_labels(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A uniformly random label different from the true one (global RNG, seeded by unlearn())."""
    shift = torch.randint(1, num_classes, y.shape, device=y.device)
    return (y + shift) % num_classes


def _kl_rows(student_logits, teacher_logits, T: float) -> torch.Tensor:
    """Per-sample KL(teacher ‖ student) at temperature T, times T² (Hinton et al.) so that the
    gradient scale does not depend on T."""
    log_s = F.log_softmax(student_logits / T, 1)
    log_t = F.log_softmax(teacher_logits / T, 1)
    return (log_t.exp() * (log_t - log_s)).sum(1) * (T * T)


def _reinit(module: nn.Module) -> None:
    """Fresh initialisation of every sub-layer (BatchNorm also resets its running stats)."""
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()


def _teacher(data: UnlearnData, name: str, device) -> nn.Module:
    """``data.original`` on ``device``; copied only if it lives elsewhere, never moved, so the
    caller's object is left where it was."""
    if data.original is None:
        raise ValueError(f"{name} distils from the original model: set UnlearnData.original.")
    t = data.original
    want = torch.empty(0, device=device).device  # "cuda" → "cuda:0", comparable to a param's
    return t if _device(t) == want else copy.deepcopy(t).to(want)


@contextlib.contextmanager
def _frozen(*teachers: nn.Module):
    """Eval mode for teachers while a method runs (no BatchNorm updates), restored after,
    because the teacher may be the caller's own model."""
    with contextlib.ExitStack() as stack:
        for t in teachers:
            stack.enter_context(eval_mode(t))
        yield


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


# --------------------------------------------------------------------------- retain-only


@dataclass
class FinetuneConfig(UnlearnConfig):
    """Fine-tune: ``epochs`` passes of CE on R at ``lr``."""


@register("finetune", FinetuneConfig)
def finetune(model: nn.Module, data: UnlearnData, config: FinetuneConfig) -> UnlearnResult:
    """Fine-tune (PAPER.md, "Baselines"): minimise CE on R only.

    Forgetting comes only from catastrophic forgetting of F as the model keeps training, so
    with a budget of one epoch it barely forgets (PAPER.md reference table: MIA .688 vs
    .692). Knobs: ``epochs`` and ``lr``.
    """
    opt = sgd(model, config)
    trace: list[dict] = []
    _ce_epochs(model, opt, data.retain, config.epochs, trace, config)
    return _result("finetune", model, trace)


@dataclass
class LastKConfig(UnlearnConfig):
    """CF-k / EU-k: ``k`` = how many of ``model.blocks()`` (counted from the output) train."""

    k: int = 3


def _train_last_k(name: str, model: nn.Module, data: UnlearnData, config: LastKConfig,
                  reinit: bool) -> UnlearnResult:
    blocks = model.blocks()
    _check(isinstance(config.k, int) and 1 <= config.k <= len(blocks),
           f"{name}: k={config.k!r}; expected 1..{len(blocks)} (the model's block count).")
    live, frozen = blocks[-config.k:], blocks[:-config.k]
    if reinit:
        for b in live:
            _reinit(b)
    params = [p for b in live for p in b.parameters()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for b in frozen:
        b.requires_grad_(False)  # no gradients through the frozen trunk: cheaper, same update

    def train_mode():
        # Frozen blocks stay in eval mode: otherwise their BatchNorm statistics would still
        # drift and the "frozen" trunk would change after all.
        model.train()
        for b in frozen:
            b.eval()

    trace: list[dict] = []
    try:
        _ce_epochs(model, sgd(model, config, params), data.retain, config.epochs, trace, config,
                   train_mode=train_mode)
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    return _result(name, model, trace, trained_blocks=len(live), reinitialised=reinit)


@register("cf_k", LastKConfig)
def cf_k(model: nn.Module, data: UnlearnData, config: LastKConfig) -> UnlearnResult:
    """CF-k, catastrophic forgetting of the last k layers (Goel et al., 2022; PAPER.md,
    "Baselines"): freeze all but the last ``k`` blocks and train those on R with CE.

    Knobs: ``k`` (default 3: on both models here, the two MLP layers and the classifier),
    ``epochs`` and ``lr``.
    """
    return _train_last_k("cf_k", model, data, config, reinit=False)


@register("eu_k", LastKConfig)
def eu_k(model: nn.Module, data: UnlearnData, config: LastKConfig) -> UnlearnResult:
    """EU-k, exact unlearning of the last k layers (Goel et al., 2022; PAPER.md,
    "Baselines"): re-initialise the last ``k`` blocks (``reset_parameters``), freeze the rest
    and train the new blocks on R with CE.

    The last k blocks then never saw F; the frozen trunk did. Knobs: ``k`` (default 3),
    ``epochs`` (re-initialised layers need more than one pass to recover utility; ``epochs=0``
    returns the re-initialised model) and ``lr``.
    """
    return _train_last_k("eu_k", model, data, config, reinit=True)


# --------------------------------------------------------------------------- error-maximising


@dataclass
class NegGradConfig(UnlearnConfig):
    """NegGrad: ``epochs`` passes of gradient ascent on F at ``lr``."""


@register("neggrad", NegGradConfig)
def neggrad(model: nn.Module, data: UnlearnData, config: NegGradConfig) -> UnlearnResult:
    """NegGrad (PAPER.md, "Baselines"): gradient *ascent* on CE over F, nothing else.

    Unbounded, so ``lr`` × ``epochs`` is the knob that decides between "forgets" and
    "destroys the model" (the paper's table: test accuracy .633 → .412).
    """
    _nonempty(data.forget, "forget")
    trace: list[dict] = []
    _ce_epochs(model, sgd(model, config), data.forget, config.epochs, trace, config, sign=-1.0)
    return _result("neggrad", model, trace)


@dataclass
class NegGradPlusConfig(UnlearnConfig):
    """NegGrad+: ``beta`` weighs the ascent term on F against CE on R."""

    beta: float = 0.5

    def __post_init__(self):
        _check(self.beta >= 0, f"beta={self.beta!r}; expected ≥ 0.")


@register("neggrad_plus", NegGradPlusConfig)
def neggrad_plus(model: nn.Module, data: UnlearnData, config: NegGradPlusConfig) -> UnlearnResult:
    """NegGrad+ (Kurmanji et al., 2023; PAPER.md, "Baselines"): minimise CE_R − β·CE_F in one
    objective, each step on a retain batch and a forget batch.

    Kurmanji et al. write it as the convex combination α·CE_R − (1 − α)·CE_F and tune α; this
    is the same family with β = (1 − α)/α and the scale folded into ``lr``. ``beta`` is the
    knob: larger forgets faster and risks the collapse NegGrad shows; 0 is fine-tuning.
    """
    def loss_fn(xr, yr, xf, yf):
        logits = model(torch.cat([xr, xf]))
        ce_r = F.cross_entropy(logits[: len(xr)], yr)
        ce_f = F.cross_entropy(logits[len(xr):], yf)
        return ce_r - config.beta * ce_f, {"ce_retain": ce_r.detach(), "ce_forget": ce_f.detach()}

    trace: list[dict] = []
    _optimize(model, sgd(model, config), _paired(data, config.epochs, config.device), loss_fn,
              trace, progress=config.progress)
    return _result("neggrad_plus", model, trace)


@dataclass
class RandomLabelsConfig(UnlearnConfig):
    """Random labels: ``retain_weight`` on the CE-on-R term (0 = relabelling F alone)."""

    retain_weight: float = 1.0


def _relabel_loss(model: nn.Module, num_classes: int, retain_weight: float) -> Callable:
    """CE on F with wrong labels + ``retain_weight``·CE on R, in one forward (shared by
    Random Labels and SalUn)."""
    def fn(xr, yr, xf, yf):
        logits = model(torch.cat([xr, xf]))
        ce_r = F.cross_entropy(logits[: len(xr)], yr)
        ce_rand = F.cross_entropy(logits[len(xr):], _wrong_labels(yf, num_classes))
        return ce_rand + retain_weight * ce_r, {"ce_retain": ce_r.detach(),
                                                 "ce_random": ce_rand.detach()}

    return fn


@register("random_labels", RandomLabelsConfig)
def random_labels(model: nn.Module, data: UnlearnData, config: RandomLabelsConfig) -> UnlearnResult:
    """Random Labels (Graves et al., 2021, as used by Fan et al., 2024; PAPER.md, "Baselines"):
    train F towards labels drawn uniformly from the *wrong* classes, redrawn every step, plus
    CE on R to keep utility.

    Knobs: ``lr``, ``epochs`` and ``retain_weight``.
    """
    trace: list[dict] = []
    _optimize(model, sgd(model, config), _paired(data, config.epochs, config.device),
              _relabel_loss(model, data.num_classes, config.retain_weight), trace,
              progress=config.progress)
    return _result("random_labels", model, trace)


@dataclass
class UnsirConfig(UnlearnConfig):
    """UNSIR: impair at ``lr``, repair at ``repair_lr``; the noise search's own knobs."""

    lr: float = 0.02
    repair_lr: float = 0.01
    repair_epochs: int = 1
    noise_steps: int = 5
    noise_lr: float = 0.1
    noise_l2: float = 0.1


def _error_max_noise(model: nn.Module, like: torch.Tensor, y: torch.Tensor,
                     config: UnsirConfig) -> tuple[torch.Tensor, float]:
    """Noise N (input units) that maximises CE(f(N), y) − λ·mean(N²), by Adam.

    The penalty is a per-pixel mean (Tarun et al. sum over pixels) so that ``noise_l2`` does
    not depend on the image size. Eval mode: the search must not move BatchNorm statistics.
    """
    model.eval()
    noise = torch.randn_like(like).requires_grad_(True)
    opt = torch.optim.Adam([noise], lr=config.noise_lr)
    for _ in range(config.noise_steps):
        obj = F.cross_entropy(model(noise), y) - config.noise_l2 * noise.pow(2).mean()
        (g,) = torch.autograd.grad(-obj, noise)  # only the noise: no stray parameter grads
        noise.grad = g
        opt.step()
    with torch.no_grad():
        ce = float(F.cross_entropy(model(noise), y))
    return noise.detach(), ce


@register("unsir", UnsirConfig)
def unsir(model: nn.Module, data: UnlearnData, config: UnsirConfig) -> UnlearnResult:
    """UNSIR (Tarun et al., 2023; PAPER.md, "Baselines"), per forget batch rather than per
    class (random-sample forgetting).

    *Impair*: for every forget batch, search error-maximising noise for that batch's labels
    (:func:`_error_max_noise`), then take one step of CE on [retain batch; noise] with
    [retain labels; forget labels] at ``lr`` — the large step on label-consistent but
    loss-maximising inputs damages what the model knows about those samples. *Repair*:
    ``repair_epochs`` passes of CE on R at ``repair_lr``.

    The noise is tied to the forget *labels*, not to the forget samples: under random-sample
    forgetting (every class in F) it impairs R almost as much as F.

    Knobs: ``lr`` (impair strength), ``noise_steps``/``noise_lr``/``noise_l2`` (how
    adversarial the noise is), ``repair_epochs``/``repair_lr`` (how much utility comes back).
    """
    _nonempty(data.forget, "forget")
    _nonempty(data.retain, "retain")
    dev = config.device
    retain = cycle(data.retain)

    def impair_batches():
        for xf, yf in _passes(data.forget, config.epochs, dev):
            noise, noise_ce = _error_max_noise(model, xf, yf, config)
            xr, yr = next(retain)
            yield torch.cat([xr.to(dev), noise]), torch.cat([yr.to(dev), yf]), noise_ce

    def impair_loss(x, y, noise_ce):
        ce = F.cross_entropy(model(x), y)
        return ce, {"noise_ce": noise_ce}

    trace: list[dict] = []
    _optimize(model, sgd(model, config), impair_batches(), impair_loss, trace, phase="impair",
              progress=config.progress)
    repair_opt = sgd(model, replace(config, lr=config.repair_lr))
    _ce_epochs(model, repair_opt, data.retain, config.repair_epochs, trace, config, phase="repair")
    return _result("unsir", model, trace)


# --------------------------------------------------------------------------- teachers


@dataclass
class BadTeacherConfig(UnlearnConfig):
    """Bad Teacher: distillation ``temperature`` (1 in Chundawat et al.)."""

    temperature: float = 1.0


@register("bad_teacher", BadTeacherConfig)
def bad_teacher(model: nn.Module, data: UnlearnData, config: BadTeacherConfig) -> UnlearnResult:
    """Bad Teacher (Chundawat et al., 2023; PAPER.md, "Baselines"): the student (the model)
    minimises KL(competent teacher ‖ student) on R, where the competent teacher is
    ``data.original``, and KL(incompetent teacher ‖ student) on F, where the incompetent one
    is a randomly initialised network of the same architecture. Both terms are averaged over
    the combined batch, as in their mixed retain/forget dataset.

    Knobs: ``lr``, ``epochs`` and ``temperature``. Error-maximising in effect: F's outputs are
    pulled towards a random network's near-uniform ones.
    """
    dev = config.device
    good = _teacher(data, "bad_teacher", dev)
    bad = copy.deepcopy(good)
    _reinit(bad)  # seeded by unlearn(), so the same seed gives the same bad teacher

    def loss_fn(xr, yr, xf, yf):
        with torch.no_grad():
            t = torch.cat([good(xr), bad(xf)])
        rows = _kl_rows(model(torch.cat([xr, xf])), t, config.temperature)
        n = len(xr)
        return rows.mean(), {"kl_retain": rows[:n].mean().detach(),
                             "kl_forget": rows[n:].mean().detach()}

    trace: list[dict] = []
    with _frozen(good, bad):
        _optimize(model, sgd(model, config), _paired(data, config.epochs, dev), loss_fn, trace,
                  progress=config.progress)
    return _result("bad_teacher", model, trace)


@dataclass
class ScrubConfig(UnlearnConfig):
    """SCRUB: ``epochs`` min-passes over R, the first ``msteps`` preceded by a max-pass
    over F; ``temperature`` for the KL; ``alpha``·KL + ``gamma``·CE on R."""

    lr: float = 5e-4
    epochs: int = 3
    msteps: int = 2
    temperature: float = 4.0
    alpha: float = 0.001
    gamma: float = 0.99

    def __post_init__(self):
        _check(0 <= self.msteps <= self.epochs,
               f"msteps={self.msteps!r}; expected 0..epochs ({self.epochs}).")


@register("scrub", ScrubConfig)
def scrub(model: nn.Module, data: UnlearnData, config: ScrubConfig) -> UnlearnResult:
    """SCRUB (Kurmanji et al., 2023; PAPER.md, "Baselines"), teacher = ``data.original``.

    Per epoch: if ``epoch < msteps``, a *max* pass over F that maximises
    KL(teacher ‖ student) (moves F away from what the original predicts); then a *min* pass
    over R that minimises ``alpha``·KL + ``gamma``·CE (stays close to the original on R).
    At the start the student *is* the teacher, where ∇KL = 0: the first max pass moves the
    model only through weight decay and momentum, so forgetting needs ``msteps`` ≥ 2 or a
    larger ``lr``. Defaults (lr 5e-4, T = 4, α = 0.001, γ = 0.99, 3 epochs of which 2 with
    a max pass) follow their small-scale setup; with them SCRUB forgets little, as in
    PAPER.md's table (MIA .664 vs the original's .692). Knobs: ``msteps`` (how long it pushes
    F away; the max step is unbounded and collapses the model if ``lr`` is too high — seen
    at lr 0.01 on the toy test task), ``lr`` and ``epochs``.
    """
    dev = config.device
    teacher = _teacher(data, "scrub", dev)
    T = config.temperature

    def max_loss(x, y):
        with torch.no_grad():
            t = teacher(x)
        kl = _kl_rows(model(x), t, T).mean()
        return -kl, {"kl_forget": kl.detach()}

    def min_loss(x, y):
        with torch.no_grad():
            t = teacher(x)
        s = model(x)
        kl = _kl_rows(s, t, T).mean()
        ce = F.cross_entropy(s, y)
        return config.alpha * kl + config.gamma * ce, {"kl_retain": kl.detach(), "ce": ce.detach()}

    if config.msteps:
        _nonempty(data.forget, "forget")
    opt = sgd(model, config)
    trace: list[dict] = []
    with _frozen(teacher):
        for epoch in range(config.epochs):
            if epoch < config.msteps:
                _optimize(model, opt, _passes(data.forget, 1, dev), max_loss, trace, phase="max",
                          progress=config.progress)
            _optimize(model, opt, _passes(data.retain, 1, dev), min_loss, trace, phase="min",
                      progress=config.progress)
    return _result("scrub", model, trace)


# --------------------------------------------------------------------------- saliency


@dataclass
class SalUnConfig(UnlearnConfig):
    """SalUn: ``mask_ratio`` = fraction of weights that may change (Fan et al.: 0.5)."""

    mask_ratio: float = 0.5
    retain_weight: float = 1.0

    def __post_init__(self):
        _check(0 < self.mask_ratio <= 1, f"mask_ratio={self.mask_ratio!r}; expected (0, 1].")


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
            for g, d in zip(grads, torch.autograd.grad(loss, params, allow_unused=True)):
                if d is not None:
                    g += d
            n += len(y)
    flat = torch.cat([g.abs().flatten() for g in grads]) / max(n, 1)
    keep = max(1, int(round(ratio * flat.numel())))
    mask = torch.zeros_like(flat)
    mask[torch.topk(flat, keep, sorted=False).indices] = 1.0  # exact count, even with ties
    return [m.view_as(p) for m, p in zip(torch.split(mask, [p.numel() for p in params]), params)]


@register("salun", SalUnConfig)
def salun(model: nn.Module, data: UnlearnData, config: SalUnConfig) -> UnlearnResult:
    """SalUn (Fan et al., 2024; PAPER.md, "Baselines"): Random Labels, but only the weights in
    a gradient-saliency mask of the forget loss may change.

    The mask keeps the top ``mask_ratio`` (0.5) of weights by |∂CE_F/∂w|. Weight decay and
    momentum are applied through the mask too, so masked-out weights stay bit-identical.
    Knobs: ``mask_ratio``, ``lr``, ``epochs``, ``retain_weight``.
    """
    dev = config.device
    _nonempty(data.forget_eval, "forget_eval")
    params = [p for p in model.parameters() if p.requires_grad]
    masks = saliency_mask(model, data.forget_eval, config.mask_ratio, dev)
    wd = config.weight_decay

    def mask_grads():
        # Weight decay is folded into the gradient before masking: SGD's own decay would
        # otherwise shrink the weights SalUn promises not to touch.
        for p, m in zip(params, masks):
            if p.grad is not None:
                p.grad.add_(p.detach(), alpha=wd).mul_(m)

    opt = sgd(model, replace(config, weight_decay=0.0), params)
    trace: list[dict] = []
    _optimize(model, opt, _paired(data, config.epochs, dev),
              _relabel_loss(model, data.num_classes, config.retain_weight), trace,
              post_backward=mask_grads, progress=config.progress)
    kept = float(sum(m.sum() for m in masks) / sum(m.numel() for m in masks))
    return _result("salun", model, trace, mask_fraction=kept)
