"""The feature-distancing synthesizer (docs/method.md §2.1).

Given a retain batch (x_r, y_r) and a forget batch x_f, it perturbs x_r so that the
synthesised batch's features move away from the forget batch's features as a distribution,
while staying correctly classified:

    δ ← 0
    repeat K times:
        x' = Π(x_r + δ)
        L  = w_ot · OT(φ(x'), φ(x_f)) − w_cls · CE(f(x'), y_r)
        δ  ← δ + α · sign(∇_δ L)

What this implementation does on purpose (each item fixes a defect of the public code,
docs/method.md §5):

* **The gradient flows through φ(x')** (D1 "OT gradient"). The OT term is computed on the
  features of the *perturbed* batch, so ∇_δ OT ≠ 0. ``ot_on_clean=True`` reproduces the
  public code's wrong path (OT on the clean features) for teaching: δ then gets no push from
  the OT term.
* **δ lives in pixel space** and Π projects there (D2 "normalised clamp"): un-normalise,
  clamp to [0, 1] (and, optionally, to an L∞ box of radius ``eps_px`` around the clean
  image), normalise again. ``step_size`` α and ``eps_px`` are in pixel units (1/255 is one
  grey level).
* The public code's two other departures stay available as switches, for
  :mod:`dlfd.unlearn.dlfd_public` only: ``clamp="normalised"`` clamps the *normalised* tensor
  to [0, 1] (D2), and ``step_unit="normalised"`` lets δ and α live on the normalised tensor
  (the paper's α = 0.4). ``eps_px`` stays in pixel units either way.
* **Eval mode during synthesis** (D4 "BatchNorm mode"): BatchNorm uses and keeps its running
  statistics, dropout is off, and every submodule's previous mode is restored afterwards.
  The gradient is taken with ``torch.autograd.grad`` with respect to δ only, so parameters'
  ``.grad`` are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_choice, check_int, check_number, is_int, require
from .data import Normalization
from .models import eval_mode
from .metrics import top1
from .ot import ot_loss

__all__ = ["PHIS", "CLAMPS", "STEP_UNITS", "SynthConfig", "FeatureDistancingSynthesizer"]

PHIS = ("logits", "embedding")
CLAMPS = ("pixel", "normalised")       # where Π clamps to [0, 1]; "normalised" is D2's bug
STEP_UNITS = ("pixel", "normalised")   # the space δ lives in and α is measured in


@dataclass
class SynthConfig:
    """Settings of the feature-distancing synthesis, validated once on construction.

    The defaults are DLFD's (docs/method.md §4, the authors' MUFAC row), with α moved to pixel
    units; :meth:`dlfd.unlearn.feature_distancing.DLFDConfig.synth_config` builds one from a
    DLFD config.
    """

    steps: int = 15               # K, signed-gradient steps per batch; 0 returns Π(x_r)
    step_size: float = 2 / 255    # α per step, pixel units (the paper's 0.4 is in normalised units)
    eps_px: float | None = None   # optional L∞ budget on δ, pixel units; None: only [0, 1]
    w_ot: float = 3.0             # weight of the OT term
    w_cls: float = 0.0            # weight of the CE term; synthesize() may override it per call
    phi: str = "logits"           # "logits" (the public code) or "embedding" (the paper's wording)
    ot_eps: float = 0.01          # Sinkhorn's ε, absolute on the cosine cost in [0, 2] (§2.3)
    ot_iters: int = 50            # Sinkhorn's iteration cap (§2.3)
    ot_tol: float = 1e-6          # Sinkhorn's early stop; float32 round-off on marginals is ~1e-8
    use_ot: bool = True           # ablation switch; off is another code path than w_ot = 0
    use_cls: bool = True          # ablation switch for the CE term
    ot_on_clean: bool = False     # D1 demo, keep False: OT on clean features gives δ no gradient
    detach_plan: bool = False     # passed to dlfd.ot.ot_loss: True stops the gradient at the plan
    clamp: str = "pixel"          # "pixel", or "normalised": the public code's clamp (D2)
    step_unit: str = "pixel"      # "pixel", or "normalised": δ and α on the normalised tensor

    def __post_init__(self):
        require(is_int(self.steps) and self.steps >= 0,
                f"steps={self.steps!r}; expected an integer K ≥ 0.")
        self.step_size = check_number("step_size", self.step_size, low=0)
        self.eps_px = check_number("eps_px", self.eps_px, low=0, strict=True, allow_none=True,
                                   hint="pixel units")
        self.w_ot = check_number("w_ot", self.w_ot, low=0)
        self.w_cls = check_number("w_cls", self.w_cls, low=0)
        check_choice("phi", self.phi, PHIS)
        self.ot_eps = check_number("ot_eps", self.ot_eps, low=0, strict=True,
                                   hint="Sinkhorn's ε, absolute on the cosine cost")
        check_int("ot_iters", self.ot_iters, low=1)
        self.ot_tol = check_number("ot_tol", self.ot_tol, low=0)
        self.use_ot, self.use_cls = bool(self.use_ot), bool(self.use_cls)
        self.ot_on_clean, self.detach_plan = bool(self.ot_on_clean), bool(self.detach_plan)
        check_choice("clamp", self.clamp, CLAMPS)
        check_choice("step_unit", self.step_unit, STEP_UNITS)


class FeatureDistancingSynthesizer:
    """K signed-gradient ascent steps on w_ot·OT − w_cls·CE, in pixel space (docs/method.md
    §2.1, step 1 of DLFD).

    Parameters
    ----------
    model : torch.nn.Module
        The classifier f. ``phi="embedding"`` needs ``model.embed`` and ``model.head``
        (``forward = head(embed(x))``, as in :mod:`dlfd.models`).
    norm : Normalization or None
        The :class:`~dlfd.data.Normalization` the inputs are in (None: the identity).
    config : SynthConfig or None
        K, α, the weights, φ, the Sinkhorn settings and the switches (None: DLFD's defaults).

    Attributes
    ----------
    forward_passes, backward_passes : int
        Batched model passes over the synthesizer's lifetime (one per step each, plus φ(x_f)
        and the final diagnostic pass), for the cost accounting of docs/method.md §3.

    Examples
    --------
    >>> synth = FeatureDistancingSynthesizer(model, norm, SynthConfig(steps=10))  # doctest: +SKIP
    >>> x_syn, diag = synth.synthesize(x_r, y_r, x_f, w_cls=0.5)                  # doctest: +SKIP
    >>> diag["ot_after"] > diag["ot_before"]                                      # doctest: +SKIP
    True

    References
    ----------
    Choi & Na, "Distribution-Level Feature Distancing for Machine Unlearning", AAAI 2025
    (arXiv:2409.14747); docs/method.md §2.1 (the synthesis), §2.3 (the OT distance) and §5
    D1 "OT gradient", D2 "normalised clamp", D4 "BatchNorm mode".
    """

    def __init__(self, model: nn.Module, norm: Normalization | None = None,
                 config: SynthConfig | None = None):
        config = config if config is not None else SynthConfig()
        require(config.phi != "embedding" or (hasattr(model, "embed") and hasattr(model, "head")),
                f"phi='embedding' needs a model with embed() and head(); "
                f"{type(model).__name__} has no such pair.")
        self.model = model
        self.norm = norm if norm is not None else Normalization()
        self.config = config
        self.forward_passes = 0
        self.backward_passes = 0

    # ------------------------------------------------------------------ pieces

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ(x), logits) from one forward pass."""
        self.forward_passes += 1
        model = self.model
        if hasattr(model, "embed") and hasattr(model, "head"):
            z = model.embed(x)
            logits = model.head(z)
            return (logits if self.config.phi == "logits" else z), logits
        logits = model(x)
        return logits, logits

    def ot(self, phi_x: torch.Tensor, phi_f: torch.Tensor) -> torch.Tensor:
        """OT(φ(x'), φ(x_f)) with this synthesizer's Sinkhorn settings (docs/method.md §2.3)."""
        cfg = self.config
        return ot_loss(phi_x.flatten(1), phi_f.flatten(1), cfg.ot_eps, cfg.ot_iters, cfg.ot_tol,
                       detach_plan=cfg.detach_plan)

    def project(self, p0: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Π on δ: the optional L∞ box (pixel units), then b0 + δ ∈ [0, 1] where ``clamp``
        says (pixel space by default: D2 fixed). ``p0`` is the base b0 in ``step_unit``'s
        space: pixels by default, the normalised tensor for ``step_unit="normalised"``.

        Projecting δ itself (rather than clamping x' inside the graph) keeps the gradient
        alive at saturated pixels and makes ``delta_linf`` the real perturbation.
        """
        cfg = self.config
        if cfg.step_unit == "pixel" and cfg.clamp == "pixel":  # DLFD's path, kept bit-exact
            if cfg.eps_px is not None:
                delta = delta.clamp(-cfg.eps_px, cfg.eps_px)
            return (p0 + delta).clamp(0.0, 1.0) - p0
        norm = self.norm
        in_pixels = cfg.step_unit == "pixel"
        to_px = (lambda t: t) if in_pixels else norm.to_pixels
        from_px = (lambda t: t) if in_pixels else norm.from_pixels
        x = p0 + delta
        if cfg.eps_px is not None:
            base = to_px(p0)
            x = from_px(torch.min(torch.max(to_px(x), base - cfg.eps_px), base + cfg.eps_px))
        if cfg.clamp == "pixel":
            x = from_px(to_px(x).clamp(0.0, 1.0))
        else:  # D2: the normalised tensor clamped to [0, 1], as the public code did
            x = norm.from_pixels(x) if in_pixels else x
            x = x.clamp(0.0, 1.0)
            x = norm.to_pixels(x) if in_pixels else x
        return x - p0

    def _space(self, x_r: torch.Tensor):
        """(b0, to_input): the base δ is added to, and the map from b0 + δ to the model's input."""
        if self.config.step_unit == "normalised":
            return x_r.detach(), (lambda t: t)
        p0 = self.norm.to_pixels(x_r.detach())
        if self.config.clamp == "pixel":
            p0 = p0.clamp(0.0, 1.0)
        return p0, self.norm.from_pixels

    def objective(self, phi_x, logits, y_r, phi_f, phi_clean, w_cls: float):
        """L = w_ot·OT(φ(x'), φ(x_f)) − w_cls·CE(f(x'), y_r); returns (L, the OT value or None)."""
        cfg = self.config
        loss = logits.new_zeros(())
        ot_value = None
        if cfg.use_ot:
            # D1: the public code put the clean features here, cutting δ out of the term.
            ot_value = self.ot(phi_clean if cfg.ot_on_clean else phi_x, phi_f)
            loss = loss + cfg.w_ot * ot_value
        if cfg.use_cls:
            loss = loss - w_cls * F.cross_entropy(logits, y_r)
        return loss, ot_value

    # ------------------------------------------------------------------ the synthesis

    def synthesize(self, x_r: torch.Tensor, y_r: torch.Tensor, x_f: torch.Tensor,
                   w_cls: float | None = None, track: bool = False) -> tuple[torch.Tensor, dict]:
        """Return (x', diagnostics) for one retain batch and one forget batch (§2.1).

        ``x_r`` and ``x_f`` are normalised batches, and so is the returned x' (detached).
        ``w_cls`` overrides the config's weight for this call (DLFD's schedule, §2.2).
        Diagnostics, all floats: ``ot_before``/``ot_after`` = OT(φ(·), φ(x_f)) at Π(x_r) and
        at x'; ``ce_before``/``ce_after`` = CE(f(·), y_r) there; ``delta_linf`` = max |δ| and
        ``delta_l2`` = mean over the batch of ‖δ_i‖₂ and ``delta_mean_abs`` = mean |δ|, all
        in pixel units; ``frac_correct`` = the fraction of x' the model (in eval mode, as
        during the synthesis) still classifies as y_r; ``w_cls``. With
        ``track``, ``ot_trace`` and ``ce_trace`` hold OT(φ(x'), φ(x_f)) and CE at each of the
        K + 1 iterates (for plots; it costs one extra OT solve per step).
        """
        w_cls = self.config.w_cls if w_cls is None else check_number("w_cls", w_cls, low=0)
        require(x_r.shape[0] == y_r.shape[0],
                f"x_r has {x_r.shape[0]} images but y_r has {y_r.shape[0]} labels.")
        require(x_r.shape[0] > 0 and x_f.shape[0] > 0,
                "synthesize needs non-empty retain and forget batches.")
        p0, to_input = self._space(x_r)
        with eval_mode(self.model):
            with torch.no_grad():
                # The target distribution is fixed during the K steps: no gradient, one pass.
                phi_f = self.outputs(x_f)[0]
                phi_clean = self.outputs(to_input(p0))[0] if self.config.ot_on_clean else None
            delta, before, trace = self._ascend(p0, y_r, phi_f, phi_clean, w_cls, track,
                                                to_input)
            with torch.no_grad():
                x_syn = to_input(p0 + delta)
                phi_x, logits = self.outputs(x_syn)
                after = self._measure(phi_x, logits, y_r, phi_f, None)
                # From the diagnostic pass that runs anyway: no extra forward pass.
                frac_correct = top1(logits.detach(), y_r)
        if before is None:  # K = 0: x' = Π(x_r)
            before = after
        if self.config.step_unit == "normalised":  # report δ in pixel units all the same
            delta = self.norm.to_pixels(p0 + delta) - self.norm.to_pixels(p0)
        diag = self._diagnostics(delta, before, after, w_cls, trace + [after] if track else None)
        diag["frac_correct"] = frac_correct
        return x_syn.detach(), diag

    def _ascend(self, p0, y_r, phi_f, phi_clean, w_cls: float, track: bool, to_input=None):
        """The K signed-gradient steps on δ. Returns δ, (OT, CE) at the first iterate (None
        when K = 0) and, with ``track``, (OT, CE) at every iterate."""
        to_input = to_input or self.norm.from_pixels
        # Π(b0): zero on DLFD's path; the normalised clamp already moves the clean batch.
        delta = self.project(p0, torch.zeros_like(p0))
        before = None
        trace: list[tuple[float, float]] = []
        for _ in range(self.config.steps):
            delta.requires_grad_(True)
            phi_x, logits = self.outputs(to_input(p0 + delta))
            loss, ot_value = self.objective(phi_x, logits, y_r, phi_f, phi_clean, w_cls)
            if before is None:
                before = self._measure(phi_x, logits, y_r, phi_f, ot_value)
            if track:
                trace.append(self._measure(phi_x, logits, y_r, phi_f, ot_value))
            if loss.requires_grad:
                (grad,) = torch.autograd.grad(loss, delta)
                self.backward_passes += 1
            else:  # no term depends on δ (both switched off, or only the clean OT)
                grad = torch.zeros_like(delta)
            with torch.no_grad():
                delta = self.project(p0, delta.detach() + self.config.step_size * grad.sign())
        return delta, before, trace

    def _measure(self, phi_x, logits, y, phi_f, ot_value) -> tuple[float, float]:
        """(OT, CE) as floats, reusing the step's OT value when it is the one on φ(x')."""
        with torch.no_grad():
            if ot_value is None or self.config.ot_on_clean:
                ot_value = self.ot(phi_x.detach(), phi_f)
            return float(ot_value), float(F.cross_entropy(logits.detach(), y))

    @staticmethod
    def _diagnostics(delta, before, after, w_cls: float, trace) -> dict:
        d = delta.detach().flatten(1)
        diag = {"ot_before": before[0], "ot_after": after[0], "ce_before": before[1],
                "ce_after": after[1], "delta_linf": float(d.abs().max()),
                "delta_l2": float(d.norm(dim=1).mean()),
                "delta_mean_abs": float(d.abs().mean()), "w_cls": float(w_cls)}
        if trace is not None:
            diag["ot_trace"] = [t[0] for t in trace]
            diag["ce_trace"] = [t[1] for t in trace]
        return diag
