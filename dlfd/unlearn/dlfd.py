"""DLFD: one epoch of fine-tuning on feature-distanced retain samples (PAPER.md, "The method").

For each retain batch (x_r, y_r), paired with the next batch x_f of a cycling forget loader:

1. **Synthesis** (step 1): x' = :class:`~dlfd.synth.FeatureDistancingSynthesizer` (K signed
   gradient steps on w_ot·OT(φ(x'), φ(x_f)) − w_cls·CE(f(x'), y_r), in pixel space, model in
   eval mode).
2. **Model update** (step 2): one SGD step on CE(f(x'), y_r), model in train mode.
3. **Dynamic forgetting** (step 3): a forgetting score FS = |MIA − 0.5| is estimated before
   the first batch and every ``monitor_every`` batches; while FS ≥ τ the batch is
   synthesised, below τ it is a plain CE step on the clean x_r (which restores utility).
4. **Schedule** (step 4): w_cls rises linearly from ``w_cls_start`` to ``w_cls_end`` over
   the run's batches.

The forgetting score is monitored cheaply and without the test set (PAPER.md defect 3): the
balanced loss-MIA of :func:`dlfd.metrics.mia_from_losses` on a *fixed* subsample of the
forget set (eval transforms) against the *validation* split, with a few CV splits and a fixed
seed, so that successive estimates differ because the model changed, not the sample.

How the defaults were chosen
----------------------------
The module defaults are PAPER.md's MUFAC row (lr 0.008, w_ot 3, w_cls 0→1, K 15, τ 0.15), with
the step size moved to pixel units (the paper's α = 0.4 is in normalised units). The profiles
override them with values chosen on the **validation** split (``dlfd.profiles.CPU_TUNED``):
``benchmarks/tune.py --profile cpu --seeds 3`` ran the grid lr ∈ {3e-4, 1e-3} × K ∈ {5, 10}
× α ∈ {1, 4}/255 × τ ∈ {0.05, 0.1} on seeds 0–2 and kept the best mean validation NoMUS
(validation accuracy and the forget-vs-validation MIA; ``dlfd.tuning``): lr 3e-4, K 10,
α 4/255, τ 0.1 (validation NoMUS 0.808; the grid is in benchmarks/results/tune_cpu.json).
τ = 0.1 sits below the original models' validation forgetting score (about 0.14–0.2), as
NOTES.md item 5 asks; the paper's 0.15 would often stop synthesis before it starts.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from ..metrics import forgetting_score, mia_from_losses, predict
from ..synth import PHIS, FeatureDistancingSynthesizer
from .base import UnlearnConfig, UnlearnData, UnlearnResult, cycle, register, sgd

# Module-level so that the lead can document and tune them in one place.
DEFAULT_LR = 0.008              # PAPER.md, MUFAC row
DEFAULT_W_OT = 3.0              # PAPER.md, MUFAC row
DEFAULT_W_CLS_START = 0.0       # PAPER.md, MUFAC row (w0)
DEFAULT_W_CLS_END = 1.0         # PAPER.md, MUFAC row (w1)
DEFAULT_STEPS = 15              # K, PAPER.md, MUFAC row
DEFAULT_STEP_SIZE = 2 / 255     # α in pixel units per step (the paper's 0.4 is normalised)
DEFAULT_TAU = 0.15              # τ, PAPER.md, MUFAC row
DEFAULT_PHI = "logits"          # the public code's choice; "embedding" is the paper's wording
DEFAULT_OT_EPS = 0.01           # PAPER.md, "OT distance"
DEFAULT_OT_ITERS = 50           # PAPER.md, "OT distance"
DEFAULT_OT_TOL = 1e-6
DEFAULT_MONITOR_EVERY = 5       # M: batches between two score estimates
DEFAULT_MONITOR_FORGET_N = 128  # fixed forget subsample for the estimate
DEFAULT_MONITOR_VAL_N = 128     # fixed val subsample: the balanced MIA uses min(n_f, n_v) anyway
DEFAULT_MONITOR_SPLITS = 3      # CV splits of the cheap MIA (the full protocol uses 10)

TAU_NEVER = 1.0  # accepted as "never synthesise" (FS ≤ 0.5, so FS ≥ 1.0 never holds)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class DLFDConfig(UnlearnConfig):
    """DLFD's knobs (PAPER.md, "The method" and "Settings the authors used").

    ``step_size`` and ``eps_px`` are in pixel units. ``tau`` is the forgetting-score
    threshold: a batch is synthesised while the latest estimate is ≥ τ, so τ = 0 always
    synthesises, τ = 0.5 only while the attack is perfect, and τ = 1.0 (``TAU_NEVER``) never.
    ``dynamic=False`` synthesises every batch and skips the monitoring. ``keep_best`` returns
    the model, among those seen at the monitoring points after training started (and the
    last one), with the highest validation accuracy − FS; it needs the monitor and is off by
    default. ``ot_on_clean`` is the defect-1 demo of
    :class:`~dlfd.synth.FeatureDistancingSynthesizer` (keep it False).
    """

    lr: float = DEFAULT_LR
    w_ot: float = DEFAULT_W_OT
    w_cls_start: float = DEFAULT_W_CLS_START
    w_cls_end: float = DEFAULT_W_CLS_END
    steps: int = DEFAULT_STEPS
    step_size: float = DEFAULT_STEP_SIZE
    eps_px: float | None = None
    phi: str = DEFAULT_PHI
    ot_eps: float = DEFAULT_OT_EPS
    ot_iters: int = DEFAULT_OT_ITERS
    ot_tol: float = DEFAULT_OT_TOL
    use_ot: bool = True
    use_cls: bool = True
    dynamic: bool = True
    tau: float = DEFAULT_TAU
    monitor_every: int = DEFAULT_MONITOR_EVERY
    monitor_forget_n: int = DEFAULT_MONITOR_FORGET_N
    monitor_val_n: int | None = DEFAULT_MONITOR_VAL_N  # None: the whole validation split
    monitor_splits: int = DEFAULT_MONITOR_SPLITS
    keep_best: bool = False
    ot_on_clean: bool = False

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ValueError, naming the field and value, for anything DLFD cannot run with."""
        def bad(name, expected):
            raise ValueError(f"DLFDConfig.{name}={getattr(self, name)!r}; expected {expected}.")

        if not _is_int(self.steps) or self.steps < 0:
            bad("steps", "an integer K ≥ 0")
        if not _is_int(self.epochs) or self.epochs < 1:
            bad("epochs", "an integer ≥ 1")
        if not _is_num(self.lr) or self.lr <= 0:
            bad("lr", "a finite number > 0")
        for name in ("step_size", "w_ot", "w_cls_start", "w_cls_end", "ot_tol", "momentum",
                     "weight_decay"):
            if not _is_num(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "a finite number ≥ 0")
        if not _is_num(self.ot_eps) or self.ot_eps <= 0:
            bad("ot_eps", "a finite number > 0 (Sinkhorn's ε, absolute on the cosine cost)")
        if not _is_int(self.ot_iters) or self.ot_iters < 1:
            bad("ot_iters", "an integer ≥ 1")
        if self.eps_px is not None and (not _is_num(self.eps_px) or self.eps_px <= 0):
            bad("eps_px", "None or a number > 0 (pixel units)")
        if self.phi not in PHIS:
            bad("phi", f"one of {PHIS}")
        if not _is_num(self.tau) or not (0.0 <= self.tau <= 0.5 or self.tau == TAU_NEVER):
            bad("tau", f"a forgetting-score threshold in [0, 0.5] (FS = |MIA − 0.5| ≤ 0.5), or "
                       f"{TAU_NEVER} for 'never synthesise'")
        if not _is_int(self.monitor_every) or self.monitor_every < 1:
            bad("monitor_every", "an integer ≥ 1")
        if not _is_int(self.monitor_forget_n) or self.monitor_forget_n < 2:
            bad("monitor_forget_n", "an integer ≥ 2")
        if self.monitor_val_n is not None and (not _is_int(self.monitor_val_n)
                                               or self.monitor_val_n < 2):
            bad("monitor_val_n", "None or an integer ≥ 2")
        if not _is_int(self.monitor_splits) or self.monitor_splits < 1:
            bad("monitor_splits", "an integer ≥ 1")


def _validate_data(data: UnlearnData, cfg: DLFDConfig) -> None:
    """Data problems that would otherwise surface mid-run, or hang (an empty loader in cycle)."""
    n_r = len(data.retain.dataset)
    if n_r == 0 or len(data.retain) == 0:
        raise ValueError("DLFD needs a non-empty retain loader.")
    n_f = len(data.forget.dataset)
    if n_f == 0:
        raise ValueError("The forget set is empty: there is nothing to unlearn.")
    bs = data.forget.batch_size
    if bs is not None and bs > n_f:
        raise ValueError(f"The forget loader's batch_size={bs} is larger than the forget set "
                         f"({n_f} samples); use a batch size ≤ {n_f}.")
    if len(data.forget) == 0:
        raise ValueError("The forget loader yields no batches (drop_last with a small forget "
                         "set?); cycling it would never return.")
    if cfg.dynamic or cfg.keep_best:
        if len(data.forget_eval.dataset) < 2 or len(data.val.dataset) < 2:
            raise ValueError(f"The forgetting-score monitor needs ≥ 2 forget_eval and ≥ 2 val "
                             f"samples; got {len(data.forget_eval.dataset)} and "
                             f"{len(data.val.dataset)}. Set dynamic=False and keep_best=False "
                             f"to run without it.")


class ForgettingMonitor:
    """Cheap FS = |MIA − 0.5| on fixed subsamples: forget_eval (members) vs val (non-members).

    PAPER.md step 3 with defect 3 fixed: validation split only, never test; a small fixed
    sample and few CV splits instead of a full MIA after every batch. Also returns the
    validation accuracy, which comes free with the validation losses (for ``keep_best``).
    """

    def __init__(self, data: UnlearnData, cfg: DLFDConfig, device):
        self.device = device
        self.seed = cfg.seed
        self.n_splits = cfg.monitor_splits
        self.forget = self._subsample(data.forget_eval, cfg.monitor_forget_n, cfg.seed)
        self.val = (data.val if cfg.monitor_val_n is None
                    else self._subsample(data.val, cfg.monitor_val_n, cfg.seed + 1))
        self.seconds = 0.0
        self.forward_passes = 0
        self.calls = 0

    @staticmethod
    def _subsample(loader: DataLoader, n: int, seed: int) -> DataLoader:
        ds = loader.dataset
        if n >= len(ds):
            idx = list(range(len(ds)))
        else:
            g = torch.Generator().manual_seed(seed)
            idx = sorted(torch.randperm(len(ds), generator=g)[:n].tolist())
        return DataLoader(Subset(ds, idx), batch_size=loader.batch_size or 256, shuffle=False)

    def __call__(self, model: nn.Module) -> dict:
        t0 = time.perf_counter()
        f_logits, f_y = predict(model, self.forget, self.device)
        v_logits, v_y = predict(model, self.val, self.device)
        self.forward_passes += len(self.forget) + len(self.val)
        r = mia_from_losses(F.cross_entropy(f_logits, f_y, reduction="none").numpy(),
                            F.cross_entropy(v_logits, v_y, reduction="none").numpy(),
                            seed=self.seed, n_splits=self.n_splits)
        out = {"score": forgetting_score(r.mean), "mia": r.mean,
               "val_acc": float((v_logits.argmax(1) == v_y).float().mean())}
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


@register("dlfd", DLFDConfig)
def dlfd(model: nn.Module, data: UnlearnData, cfg: DLFDConfig) -> UnlearnResult:
    """DLFD (Choi & Na, AAAI 2025): one epoch on feature-distanced retain samples with dynamic
    forgetting (PAPER.md, "The method", steps 1–4)."""
    cfg.validate()
    _validate_data(data, cfg)
    device = torch.device(cfg.device)
    model.to(device)
    synth = FeatureDistancingSynthesizer(
        model, data.norm, steps=cfg.steps, step_size=cfg.step_size, w_ot=cfg.w_ot,
        w_cls=cfg.w_cls_start, phi=cfg.phi, eps_px=cfg.eps_px, ot_eps=cfg.ot_eps,
        ot_iters=cfg.ot_iters, ot_tol=cfg.ot_tol, use_ot=cfg.use_ot, use_cls=cfg.use_cls,
        ot_on_clean=cfg.ot_on_clean)
    monitor = ForgettingMonitor(data, cfg, device) if (cfg.dynamic or cfg.keep_best) else None
    opt = sgd(model, cfg)
    forget_batches = cycle(data.forget)

    n_batches = cfg.epochs * len(data.retain)
    estimate = monitor(model) if monitor else None
    initial = dict(estimate) if estimate else None
    best = None  # (criterion, batch, state_dict)

    def consider(batch: int):
        nonlocal best
        crit = estimate["val_acc"] - estimate["score"]
        if best is None or crit > best[0]:
            best = (crit, batch, copy.deepcopy(model.state_dict()))

    trace: list[dict] = []
    synth_seconds = 0.0
    update_passes = 0
    n_synth = 0
    b = -1
    iterator = ((e, xy) for e in range(cfg.epochs) for xy in data.retain)
    if cfg.progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=n_batches, desc="dlfd", leave=False)
    for epoch, (x_r, y_r) in iterator:
        b += 1
        x_f, _ = next(forget_batches)
        x_r, y_r, x_f = x_r.to(device), y_r.to(device), x_f.to(device)
        w_cls = cfg.w_cls_start + (cfg.w_cls_end - cfg.w_cls_start) * b / max(n_batches - 1, 1)
        score = estimate["score"] if estimate else None
        do_synth = (not cfg.dynamic) or score >= cfg.tau
        row = {"batch": b, "epoch": epoch, "synthesised": bool(do_synth), "ot_before": None,
               "ot_after": None, "delta_linf": None}
        if do_synth:
            t0 = time.perf_counter()
            x_in, diag = synth.synthesize(x_r, y_r, x_f, w_cls=w_cls)
            synth_seconds += time.perf_counter() - t0
            row.update(ot_before=diag["ot_before"], ot_after=diag["ot_after"],
                       delta_linf=diag["delta_linf"])
            n_synth += 1
        else:
            x_in = x_r
        # Train mode on purpose for the update (defect 4): BatchNorm learns from these batches.
        model.train()
        loss = F.cross_entropy(model(x_in), y_r)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        update_passes += 1
        row.update(ce=float(loss.detach()), score=score, lr=float(opt.param_groups[0]["lr"]),
                   w_cls=float(w_cls))
        trace.append(row)
        last = b == n_batches - 1
        # After the last batch an estimate only matters for keep_best.
        if monitor and (b + 1) % cfg.monitor_every == 0 and (cfg.keep_best or not last):
            estimate = monitor(model)
            if cfg.keep_best:
                consider(b)
    if cfg.keep_best and (b + 1) % cfg.monitor_every != 0:  # the last model is a candidate too
        estimate = monitor(model)
        consider(b)
    info = {
        "n_batches": n_batches,
        "n_synthesised": n_synth,
        "synthesis_seconds": synth_seconds,
        "monitoring_seconds": monitor.seconds if monitor else 0.0,
        "monitor_calls": monitor.calls if monitor else 0,
        "forward_passes": synth.forward_passes + update_passes
        + (monitor.forward_passes if monitor else 0),
        "backward_passes": synth.backward_passes + update_passes,
        "passes": {"synthesis_forward": synth.forward_passes,
                   "synthesis_backward": synth.backward_passes,
                   "update_forward": update_passes, "update_backward": update_passes,
                   "monitor_forward": monitor.forward_passes if monitor else 0},
        "initial_estimate": initial,
        "final_estimate": dict(estimate) if estimate else None,
    }
    if cfg.keep_best and best is not None:
        model.load_state_dict(best[2])
        info.update(best_batch=best[1], best_criterion=best[0])
    model.eval()
    return UnlearnResult("dlfd", model, 0.0, n_batches, trace, info)
