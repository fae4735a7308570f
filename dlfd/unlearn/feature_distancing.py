"""DLFD: one epoch of fine-tuning on feature-distanced retain samples (docs/method.md §2).

For each retain batch (x_r, y_r), paired with the next batch x_f of a cycling forget loader,
:func:`feature_distancing` runs the method's four steps:

1. **Synthesis** (§2.1): x' = :class:`~dlfd.synth.FeatureDistancingSynthesizer` (K signed
   gradient steps on w_ot·OT(φ(x'), φ(x_f)) − w_cls·CE(f(x'), y_r), in pixel space, model in
   eval mode).
2. **Model update** (§2.2): one SGD step on CE(f(x'), y_r), model in train mode
   (:func:`update`).
3. **Dynamic forgetting** (§2.2): the run synthesises until a forgetting score
   FS = |MIA − 0.5|, estimated after every ``monitor_every`` batches, falls under τ; below τ
   a batch is a plain CE step on the clean x_r, which restores utility, and synthesis resumes
   if FS climbs back to τ (:class:`DynamicForgetting`).
4. **Schedule** (§2.2): w_cls rises linearly from ``w_cls_start`` to ``w_cls_end`` over
   the run's batches (:func:`w_cls_at`).

The forgetting score is monitored cheaply and without the test set
(§5 D3 "test-set selection"): :class:`~dlfd.unlearn.monitor.ForgettingMonitor`, the balanced
loss-MIA of :func:`dlfd.metrics.mia_from_losses` on a *fixed* subsample of the forget set
(eval transforms) against the *validation* split, with a few CV splits and a fixed seed.
τ is compared with the mean of the last ``monitor_smoothing`` (2) estimates, so that one
noisy estimate near τ does not flip synthesis on and off (§6 P2 "MIA noise"), and an estimate
waits while the monitor has used more than ``monitor_budget`` (10 %) of the run's time.

How the defaults were chosen
----------------------------
The defaults are the authors' MUFAC row (docs/method.md §4: lr 0.008, w_ot 3, w_cls 0→1,
K 15, τ 0.15), with the step size moved to pixel units (the paper's α = 0.4 is in normalised
units). The profiles override them with values chosen on the **validation** split
(``dlfd.profiles.TUNED_SETTINGS``, grids in benchmarks/results/tune_orl_cpu.json). A first grid
over lr × w_cls start × L∞ budget × α × K (2 seeds) kept the best mean validation NoMUS among
the points whose synthesised samples stay ≥ 90% correctly labelled while OT rises: w_cls from
0.5, L∞ 8/255, α 1/255, K 10, and lr 1e-3. That lr wrecked some of the benchmark's ten seeds,
so lr × τ was chosen again on all ten (docs/method.md §6 P7 "robust defaults"): lr 1e-4 and the
paper's τ = 0.15.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..checks import check_choice, check_int, check_number, is_number, require, require_nonempty
from ..synth import FeatureDistancingSynthesizer, SynthConfig
from .base import UnlearnConfig, UnlearnData, UnlearnResult, cycle, register, sgd
from .monitor import ForgettingMonitor

TAU_NEVER = 1.0  # accepted as "never synthesise" (FS ≤ 0.5, so FS ≥ 1.0 never holds)
# Before the first estimate FS is taken at its upper bound: the paper synthesises until the
# score falls under τ, and an estimate before any update would only measure the original.
FS_MAX = 0.5
BN_UPDATES = ("train", "frozen", "eval")


@dataclass
class DLFDConfig(UnlearnConfig):
    """DLFD's settings (docs/method.md §2 and §4), validated once on construction.

    ``step_size`` and ``eps_px`` are in pixel units. ``tau`` is the forgetting-score
    threshold: a batch is synthesised while the latest estimate is ≥ τ, and until the first
    estimate (after ``monitor_every`` batches) FS counts as its maximum, 0.5. So τ = 0 always
    synthesises, τ = 0.5 only until the first estimate and then while the attack is perfect,
    and τ = 1.0 (``TAU_NEVER``) never.
    ``dynamic=False`` synthesises every batch and skips the monitoring. ``keep_best`` returns
    the model, among those seen at the monitoring points after training started (and the
    last one), with the highest validation accuracy − FS; it needs the monitor and is off by
    default. The synthesis settings default to :class:`~dlfd.synth.SynthConfig`'s.
    """

    lr: float = 0.008                           # §4, MUFAC row
    w_ot: float = SynthConfig.w_ot              # step 1: weight of the OT term
    w_cls_start: float = 0.0                    # step 4: w_cls at the first batch (w0)
    w_cls_end: float = 1.0                      # step 4: w_cls at the last batch (w1)
    steps: int = SynthConfig.steps              # step 1: K
    step_size: float = SynthConfig.step_size    # step 1: α, pixel units
    eps_px: float | None = SynthConfig.eps_px   # step 1: optional L∞ budget, pixel units
    phi: str = SynthConfig.phi                  # step 1: "logits" (public code) or "embedding"
    ot_eps: float = SynthConfig.ot_eps          # Sinkhorn's ε (§2.3)
    ot_iters: int = SynthConfig.ot_iters        # Sinkhorn's iteration cap (§2.3)
    ot_tol: float = SynthConfig.ot_tol          # Sinkhorn's early-stop tolerance
    use_ot: bool = SynthConfig.use_ot           # ablation: the OT term
    use_cls: bool = SynthConfig.use_cls         # ablation: the CE term
    dynamic: bool = True                        # step 3: False synthesises every batch
    tau: float = 0.15                           # step 3: τ, §4 MUFAC row
    monitor_every: int = 5                      # step 3: batches between two FS estimates
    monitor_forget_n: int = 128                 # step 3: fixed forget subsample for the estimate
    monitor_val_n: int | None = 128             # step 3: fixed val subsample; None: all of val
    monitor_splits: int = 3                     # step 3: CV splits of the cheap MIA (§3 uses 10)
    monitor_smoothing: int = 2                  # step 3: τ is compared with the mean of the last n
    monitor_budget: float | None = 0.1          # step 3: max share of run time; None: no cap
    keep_best: bool = False                     # return the best monitored model (val acc − FS)
    ot_on_clean: bool = SynthConfig.ot_on_clean  # §5 D1 demo, keep False
    clamp: str = SynthConfig.clamp              # "pixel"; "normalised" is §5 D2 (dlfd_public)
    step_unit: str = SynthConfig.step_unit      # "pixel"; "normalised" as the public code
    bn_updates: str = "train"                   # step 2: "train", "frozen" or "eval" (see update)

    def __post_init__(self):
        super().__post_init__()
        check_int("DLFDConfig.epochs", self.epochs, low=1)
        check_number("DLFDConfig.lr", self.lr, low=0, strict=True)
        for name in ("w_cls_start", "w_cls_end", "momentum", "weight_decay"):
            check_number(f"DLFDConfig.{name}", getattr(self, name), low=0)
        try:
            self.synth_config(self.w_cls_start)
        except ValueError as err:  # SynthConfig names the bare field; say whose field it is
            raise ValueError(f"DLFDConfig.{err}") from None
        require(is_number(self.tau) and (0.0 <= self.tau <= 0.5 or self.tau == TAU_NEVER),
                f"DLFDConfig.tau={self.tau!r}; expected a forgetting-score threshold in "
                f"[0, 0.5] (FS = |MIA − 0.5| ≤ 0.5), or {TAU_NEVER} for 'never synthesise'.")
        check_int("DLFDConfig.monitor_every", self.monitor_every, low=1)
        check_int("DLFDConfig.monitor_forget_n", self.monitor_forget_n, low=2)
        check_int("DLFDConfig.monitor_val_n", self.monitor_val_n, low=2, allow_none=True)
        check_int("DLFDConfig.monitor_splits", self.monitor_splits, low=1)
        check_int("DLFDConfig.monitor_smoothing", self.monitor_smoothing, low=1)
        check_number("DLFDConfig.monitor_budget", self.monitor_budget, low=0, strict=True,
                     high=1, allow_none=True)
        check_choice("DLFDConfig.bn_updates", self.bn_updates, BN_UPDATES)

    def synth_config(self, w_cls: float) -> SynthConfig:
        """The synthesizer's settings: every SynthConfig field this config shares, and w_cls."""
        shared = {f.name for f in fields(SynthConfig)} & {f.name for f in fields(self)}
        return SynthConfig(w_cls=w_cls, **{name: getattr(self, name) for name in shared})

    @property
    def monitored(self) -> bool:
        """Whether the run needs the forgetting-score monitor (step 3 or ``keep_best``)."""
        return self.dynamic or self.keep_best


def check_data(data: UnlearnData, cfg: DLFDConfig) -> None:
    """Data problems that would otherwise surface mid-run, or hang (an empty loader in cycle)."""
    require_nonempty(data.retain, "retain")
    n_forget, batch_size = len(data.forget.dataset), data.forget.batch_size
    require(n_forget == 0 or batch_size is None or batch_size <= n_forget,
            f"The forget loader's batch_size={batch_size} is larger than the forget set "
            f"({n_forget} samples); use a batch size ≤ {n_forget}.")
    require_nonempty(data.forget, "forget")
    if cfg.monitored:
        n_f, n_v = len(data.forget_eval.dataset), len(data.val.dataset)
        require(n_f >= 2 and n_v >= 2,
                f"The forgetting-score monitor needs ≥ 2 forget_eval and ≥ 2 val samples; got "
                f"{n_f} and {n_v}. Set dynamic=False and keep_best=False to run without it.")


# --------------------------------------------------------------------------- the four steps


def w_cls_at(cfg: DLFDConfig, batch: int, n_batches: int) -> float:
    """Step 4: the CE weight of batch ``batch``, linear from w_cls_start to w_cls_end."""
    return cfg.w_cls_start + (cfg.w_cls_end - cfg.w_cls_start) * batch / max(n_batches - 1, 1)


@contextlib.contextmanager
def bn_frozen(model: nn.Module):
    """BatchNorm layers with momentum 0 (batch statistics in the forward pass, running
    statistics unchanged), each layer's momentum restored afterwards."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None
              else None) for m in layers]
    try:
        for m in layers:
            m.momentum = 0.0
        yield model
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def update(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
           bn_updates: str = "train") -> torch.Tensor:
    """Step 2: one SGD step on CE(f(x), y); returns the loss.

    ``bn_updates``: ``"train"`` (default) trains in train mode, so BatchNorm's running
    statistics learn from these batches (§5 D4 "BatchNorm mode"); ``"frozen"`` is the same
    train-mode forward with the running statistics frozen (momentum 0 during the update, so
    the perturbed images never reach the statistics the evaluation uses); ``"eval"`` leaves
    the model in eval mode, as the public code did (D4; :mod:`.dlfd_public` only).
    """
    if bn_updates == "eval":
        model.eval()
    else:
        model.train()
    with bn_frozen(model) if bn_updates == "frozen" else contextlib.nullcontext():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss


class DynamicForgetting:
    """Step 3: the latest FS estimate, when to refresh it, whether to synthesise, and the
    ``keep_best`` checkpoint chosen on the same estimates."""

    def __init__(self, data: UnlearnData, cfg: DLFDConfig, device):
        self.cfg = cfg
        self.selector = data.selector
        self.monitor = ForgettingMonitor.for_dlfd(data, cfg, device) if cfg.monitored else None
        self.estimate: dict | None = None
        self.recent: list[float] = []   # the last ``monitor_smoothing`` FS estimates
        self.t0: float | None = None    # when the run started, for the monitoring budget
        self.pending = False            # an estimate was due but deferred by the budget
        self.deferred = 0
        self.best: tuple | None = None  # (criterion, batch, state_dict)

    @property
    def score(self) -> float | None:
        """The FS that τ is compared with: the mean of the last ``monitor_smoothing``
        estimates. One estimate on a fixed subsample of ~100 samples per side still moves by
        a few hundredths between calls without the model changing much (§6 P2 "MIA noise");
        averaging two damps the on/off flipping that noise would cause near τ."""
        return sum(self.recent) / len(self.recent) if self.recent else None

    def _observe(self, model: nn.Module) -> None:
        self.estimate = self.monitor(model)
        self.recent = (self.recent + [self.estimate["score"]])[-self.cfg.monitor_smoothing:]

    def start(self) -> None:
        """The run starts: the monitoring budget counts from here."""
        self.t0 = time.perf_counter()

    def synthesise_now(self) -> bool:
        """Synthesise while FS ≥ τ, FS = 0.5 before the first estimate (always without the
        dynamic switch)."""
        score = FS_MAX if self.score is None else self.score
        return (not self.cfg.dynamic) or score >= self.cfg.tau

    def within_budget(self) -> bool:
        """Whether one more estimate (at the mean cost of the previous ones) keeps the monitor
        within ``monitor_budget`` of the run's time so far."""
        budget, monitor = self.cfg.monitor_budget, self.monitor
        if budget is None or self.t0 is None:
            return True
        next_cost = monitor.seconds / max(monitor.calls, 1)
        # The run's own time: checkpoint selection is the caller's, timed apart.
        selected = self.selector.seconds if self.selector is not None else 0.0
        elapsed = time.perf_counter() - self.t0 - selected
        return monitor.seconds + next_cost <= budget * elapsed

    def after_batch(self, model: nn.Module, batch: int, n_batches: int) -> None:
        """A new estimate every ``monitor_every`` batches; after the last batch only for
        ``keep_best`` (nothing else would read it). An estimate that would push the monitor
        over ``monitor_budget`` of the run's time waits for the first batch at which it fits
        (§5 D3: the public code's monitoring cost more than the unlearning)."""
        last = batch == n_batches - 1
        due = self.pending or (batch + 1) % self.cfg.monitor_every == 0
        if self.monitor and due and (self.cfg.keep_best or not last):
            if self.within_budget():
                self.pending = False
                self._refresh(model, batch)
            else:
                self.deferred += (not self.pending)
                self.pending = True

    def finish(self, model: nn.Module, batch: int) -> None:
        """With ``keep_best`` the last model is a candidate too."""
        if self.cfg.keep_best and (batch + 1) % self.cfg.monitor_every != 0:
            self._refresh(model, batch)

    def _refresh(self, model: nn.Module, batch: int) -> None:
        self._observe(model)
        if self.cfg.keep_best:
            criterion = self.estimate["val_acc"] - self.estimate["score"]
            if self.best is None or criterion > self.best[0]:
                self.best = (criterion, batch, copy.deepcopy(model.state_dict()))

    def restore_best(self, model: nn.Module) -> dict:
        """Load the best checkpoint (``keep_best``); returns what to add to ``info``."""
        if not (self.cfg.keep_best and self.best is not None):
            return {}
        model.load_state_dict(self.best[2])
        return {"best_batch": self.best[1], "best_criterion": self.best[0]}


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class RunLog:
    """The per-batch trace and the cost counters of one DLFD run."""

    n_batches: int
    trace: list[dict] = field(default_factory=list)
    synthesis_seconds: float = 0.0
    update_passes: int = 0
    n_synthesised: int = 0

    def synthesize(self, synth: FeatureDistancingSynthesizer, x_r, y_r, x_f, w_cls: float):
        """Step 1, timed: (x', diagnostics)."""
        t0 = time.perf_counter()
        x_syn, diag = synth.synthesize(x_r, y_r, x_f, w_cls=w_cls)
        self.synthesis_seconds += time.perf_counter() - t0
        self.n_synthesised += 1
        return x_syn, diag

    def record(self, batch: int, epoch: int, diag: dict | None, loss: torch.Tensor,
               score: float | None, lr: float, w_cls: float) -> None:
        self.update_passes += 1
        synthesised, diag = diag is not None, diag or {}
        self.trace.append({
            "batch": batch, "epoch": epoch, "synthesised": synthesised,
            "ot_before": diag.get("ot_before"), "ot_after": diag.get("ot_after"),
            "delta_linf": diag.get("delta_linf"), "delta_mean_abs": diag.get("delta_mean_abs"),
            "frac_correct": diag.get("frac_correct"), "ce": float(loss.detach()), "score": score,
            "lr": float(lr), "w_cls": float(w_cls)})

    def info(self, synth: FeatureDistancingSynthesizer, forgetting: DynamicForgetting) -> dict:
        monitor = forgetting.monitor
        monitor_forward = monitor.forward_passes if monitor else 0
        synthesised = [r for r in self.trace if r["synthesised"]]

        def mean(key):
            return (sum(r[key] for r in synthesised) / len(synthesised)) if synthesised else None

        return {
            "frac_correct_mean": mean("frac_correct"),
            "linf_mean": mean("delta_linf"),
            "delta_mean_abs_mean": mean("delta_mean_abs"),
            "n_batches": self.n_batches,
            "n_synthesised": self.n_synthesised,
            "synthesis_seconds": self.synthesis_seconds,
            "monitoring_seconds": monitor.seconds if monitor else 0.0,
            "monitor_calls": monitor.calls if monitor else 0,
            "monitor_deferred": forgetting.deferred,
            "forward_passes": synth.forward_passes + self.update_passes + monitor_forward,
            "backward_passes": synth.backward_passes + self.update_passes,
            "passes": {"synthesis_forward": synth.forward_passes,
                       "synthesis_backward": synth.backward_passes,
                       "update_forward": self.update_passes,
                       "update_backward": self.update_passes,
                       "monitor_forward": monitor_forward},
            "final_estimate": dict(forgetting.estimate) if forgetting.estimate else None,
        }


def retain_batches(data: UnlearnData, cfg: DLFDConfig, n_batches: int):
    """(epoch, (x_r, y_r)) over ``cfg.epochs`` passes of the retain loader."""
    batches = ((epoch, xy) for epoch in range(cfg.epochs) for xy in data.retain)
    return tqdm(batches, total=n_batches, desc="dlfd", leave=False) if cfg.progress else batches


# --------------------------------------------------------------------------- the method


@register("dlfd", DLFDConfig)
def feature_distancing(model: nn.Module, data: UnlearnData, cfg: DLFDConfig) -> UnlearnResult:
    """DLFD (Choi & Na, AAAI 2025): one epoch on feature-distanced retain samples with dynamic
    forgetting (docs/method.md §2.1–2.2, steps 1–4)."""
    return run("dlfd", model, data, cfg)


def run(name: str, model: nn.Module, data: UnlearnData, cfg: DLFDConfig) -> UnlearnResult:
    """The DLFD loop behind every registered variant (``dlfd``, ``dlfd_public``)."""
    check_data(data, cfg)
    device = torch.device(cfg.device)
    model.to(device)
    synth = FeatureDistancingSynthesizer(model, data.norm, cfg.synth_config(cfg.w_cls_start))
    forgetting = DynamicForgetting(data, cfg, device)
    opt = sgd(model.parameters(), cfg)
    forget_batches = cycle(data.forget)
    log = RunLog(n_batches=cfg.epochs * len(data.retain))
    forgetting.start()
    for batch, (epoch, (x_r, y_r)) in enumerate(retain_batches(data, cfg, log.n_batches)):
        x_f, _ = next(forget_batches)
        x_r, y_r, x_f = x_r.to(device), y_r.to(device), x_f.to(device)
        w_cls = w_cls_at(cfg, batch, log.n_batches)                        # step 4
        score = forgetting.score
        if forgetting.synthesise_now():                                    # step 3
            x_in, diag = log.synthesize(synth, x_r, y_r, x_f, w_cls)       # step 1
        else:
            x_in, diag = x_r, None
        loss = update(model, opt, x_in, y_r, cfg.bn_updates)               # step 2
        if data.selector is not None:
            data.selector.after_step(model)
        log.record(batch, epoch, diag, loss, score, opt.param_groups[0]["lr"], w_cls)
        forgetting.after_batch(model, batch, log.n_batches)
    forgetting.finish(model, batch)
    info = log.info(synth, forgetting)
    info.update(forgetting.restore_best(model))
    model.eval()
    return UnlearnResult(name, model, 0.0, log.n_batches, log.trace, info)
