"""The feature-distancing synthesizer (PAPER.md, "The method", step 1).

Given a retain batch (x_r, y_r) and a forget batch x_f, it perturbs x_r so that the
synthesised batch's features move away from the forget batch's features as a distribution,
while staying correctly classified:

    δ ← 0
    repeat K times:
        x' = Π(x_r + δ)
        L  = w_ot · OT(φ(x'), φ(x_f)) − w_cls · CE(f(x'), y_r)
        δ  ← δ + α · sign(∇_δ L)

What this implementation does on purpose (each item is a defect of the public code that
PAPER.md lists):

* **The gradient flows through φ(x')** (defect 1). The OT term is computed on the features of
  the *perturbed* batch, so ∇_δ OT ≠ 0. ``ot_on_clean=True`` reproduces the public code's
  wrong path (OT on the clean features) for teaching: δ then gets no push from the OT term.
* **δ lives in pixel space** and Π projects there (defect 2): un-normalise, clamp to [0, 1]
  (and, optionally, to an L∞ box of radius ``eps_px`` around the clean image), normalise
  again. ``step_size`` α and ``eps_px`` are in pixel units (1/255 is one grey level).
* **Eval mode during synthesis** (defect 4): BatchNorm uses and keeps its running statistics,
  dropout is off, and every submodule's previous mode is restored afterwards. The gradient is
  taken with ``torch.autograd.grad`` with respect to δ only, so parameters' ``.grad`` are
  never touched.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import Normalization
from .models import eval_mode
from .ot import ot_loss

__all__ = ["PHIS", "FeatureDistancingSynthesizer"]

PHIS = ("logits", "embedding")


def _check_number(name: str, value, *, low: float = 0.0, strict: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (value <= low if strict else value < low):
        rel = ">" if strict else "≥"
        raise ValueError(f"{name}={value!r}; expected a finite number {rel} {low}.")
    return float(value)


class FeatureDistancingSynthesizer:
    """PAPER.md step 1: K signed-gradient ascent steps on w_ot·OT − w_cls·CE, in pixel space.

    Parameters
    ----------
    model : the classifier f. ``phi="embedding"`` needs ``model.embed`` and ``model.head``
        (``forward = head(embed(x))``, as in :mod:`dlfd.models`).
    norm : the :class:`~dlfd.data.Normalization` the inputs are in.
    steps : K ≥ 0. K = 0 returns Π(x_r).
    step_size : α ≥ 0 per step, in pixel units (2/255 = two grey levels).
    w_ot, w_cls : weights of the OT and classification terms (w_cls can be overridden per
        call, for the schedule of PAPER.md step 4).
    phi : ``"logits"`` (the public code) or ``"embedding"`` (the penultimate features, "feature
        space" in the paper).
    eps_px : optional L∞ budget on δ in pixel units; ``None`` means only the [0, 1] range.
    ot_eps, ot_iters, ot_tol : Sinkhorn's ε (absolute on the cosine cost, in [0, 2]), its
        iteration cap and its early-stop tolerance (PAPER.md: 0.01 and 50). ot_tol = 1e-6
        lets a converged plan stop early; float32 round-off on the marginals sits near 1e-8.
    use_ot, use_cls : switch a term off entirely (ablations); off is not the same code path as
        a zero weight, which the tests use to show that the switch removes the term.
    ot_on_clean : **defect demo, keep False.** Computes the OT term on the clean features
        φ(Π(x_r)), as the public code does, so that it does not depend on δ and contributes no
        gradient; synthesis is then driven by −CE alone (PAPER.md defect 1).
    detach_plan : passed to :func:`dlfd.ot.ot_loss` (default: differentiate through Sinkhorn).

    ``forward_passes`` and ``backward_passes`` count batched model passes over the
    synthesizer's lifetime (one per step each, plus φ(x_f) and the final diagnostic pass).
    """

    def __init__(self, model: nn.Module, norm: Normalization | None = None, *, steps: int = 10,
                 step_size: float = 2 / 255, w_ot: float = 3.0, w_cls: float = 0.0,
                 phi: str = "logits", eps_px: float | None = None, ot_eps: float = 0.01,
                 ot_iters: int = 50, ot_tol: float = 1e-6, use_ot: bool = True,
                 use_cls: bool = True, ot_on_clean: bool = False, detach_plan: bool = False):
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps={steps!r}; expected an integer K ≥ 0.")
        if isinstance(ot_iters, bool) or not isinstance(ot_iters, int) or ot_iters < 1:
            raise ValueError(f"ot_iters={ot_iters!r}; expected an integer ≥ 1.")
        if phi not in PHIS:
            raise ValueError(f"phi={phi!r}; expected one of {PHIS}.")
        if phi == "embedding" and not (hasattr(model, "embed") and hasattr(model, "head")):
            raise ValueError(f"phi='embedding' needs a model with embed() and head(); "
                             f"{type(model).__name__} has no such pair.")
        self.model = model
        self.norm = norm if norm is not None else Normalization()
        self.steps = steps
        self.step_size = _check_number("step_size", step_size)
        self.w_ot = _check_number("w_ot", w_ot)
        self.w_cls = _check_number("w_cls", w_cls)
        self.phi = phi
        self.eps_px = None if eps_px is None else _check_number("eps_px", eps_px, strict=True)
        self.ot_eps = _check_number("ot_eps", ot_eps, strict=True)
        self.ot_iters = ot_iters
        self.ot_tol = _check_number("ot_tol", ot_tol)
        self.use_ot, self.use_cls = bool(use_ot), bool(use_cls)
        self.ot_on_clean, self.detach_plan = bool(ot_on_clean), bool(detach_plan)
        self.forward_passes = 0
        self.backward_passes = 0

    # ------------------------------------------------------------------ pieces

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(φ(x), logits) from one forward pass."""
        self.forward_passes += 1
        m = self.model
        if hasattr(m, "embed") and hasattr(m, "head"):
            z = m.embed(x)
            logits = m.head(z)
            return (logits if self.phi == "logits" else z), logits
        logits = m(x)
        return logits, logits

    def ot(self, phi_x: torch.Tensor, phi_f: torch.Tensor) -> torch.Tensor:
        """OT(φ(x'), φ(x_f)) with this synthesizer's Sinkhorn settings (PAPER.md, "OT distance")."""
        return ot_loss(phi_x.flatten(1), phi_f.flatten(1), self.ot_eps, self.ot_iters,
                       self.ot_tol, detach_plan=self.detach_plan)

    def project(self, p0: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Π on δ, in pixel space: the optional L∞ box, then p0 + δ ∈ [0, 1] (defect 2 fixed).

        Projecting δ itself (rather than clamping x' inside the graph) keeps the gradient
        alive at saturated pixels and makes ``delta_linf`` the real perturbation.
        """
        if self.eps_px is not None:
            delta = delta.clamp(-self.eps_px, self.eps_px)
        return (p0 + delta).clamp(0.0, 1.0) - p0

    # ------------------------------------------------------------------ the synthesis

    def synthesize(self, x_r: torch.Tensor, y_r: torch.Tensor, x_f: torch.Tensor,
                   w_cls: float | None = None, track: bool = False) -> tuple[torch.Tensor, dict]:
        """Return (x', diagnostics) for one retain batch and one forget batch (PAPER.md step 1).

        ``x_r`` and ``x_f`` are normalised batches, and so is the returned x' (detached).
        Diagnostics, all floats: ``ot_before``/``ot_after`` = OT(φ(·), φ(x_f)) at Π(x_r) and
        at x'; ``ce_before``/``ce_after`` = CE(f(·), y_r) there; ``delta_linf`` = max |δ| and
        ``delta_l2`` = mean over the batch of ‖δ_i‖₂, both in pixel units; ``w_cls``. With
        ``track``, ``ot_trace`` and ``ce_trace`` hold OT(φ(x'), φ(x_f)) and CE at each of the
        K + 1 iterates (for plots; it costs one extra OT solve per step).
        """
        w_cls = self.w_cls if w_cls is None else _check_number("w_cls", w_cls)
        if x_r.shape[0] != y_r.shape[0]:
            raise ValueError(f"x_r has {x_r.shape[0]} images but y_r has {y_r.shape[0]} labels.")
        if x_r.shape[0] == 0 or x_f.shape[0] == 0:
            raise ValueError("synthesize needs non-empty retain and forget batches.")
        model, norm = self.model, self.norm
        with eval_mode(model):
            with torch.no_grad():
                # The target distribution is fixed during the K steps: no gradient, one pass.
                phi_f = self.outputs(x_f)[0]
                p0 = norm.to_pixels(x_r.detach()).clamp(0.0, 1.0)
                phi_clean = self.outputs(norm.from_pixels(p0))[0] if self.ot_on_clean else None
            delta = torch.zeros_like(p0)
            before = None
            trace: list[tuple[float, float]] = []
            for _ in range(self.steps):
                delta.requires_grad_(True)
                phi_x, logits = self.outputs(norm.from_pixels(p0 + delta))
                ce = F.cross_entropy(logits, y_r)
                loss = logits.new_zeros(())
                ot_val = None
                if self.use_ot:
                    # Defect 1: the public code put the clean features here, cutting δ out.
                    ot_val = self.ot(phi_clean if self.ot_on_clean else phi_x, phi_f)
                    loss = loss + self.w_ot * ot_val
                if self.use_cls:
                    loss = loss - w_cls * ce
                if before is None:
                    before = self._measure(phi_x, logits, y_r, phi_f, ot_val)
                if track:
                    trace.append(self._measure(phi_x, logits, y_r, phi_f, ot_val))
                if loss.requires_grad:
                    (grad,) = torch.autograd.grad(loss, delta)
                    self.backward_passes += 1
                else:  # no term depends on δ (both switched off, or only the clean OT)
                    grad = torch.zeros_like(delta)
                with torch.no_grad():
                    delta = self.project(p0, delta.detach() + self.step_size * grad.sign())
            with torch.no_grad():
                x_syn = norm.from_pixels(p0 + delta)
                phi_x, logits = self.outputs(x_syn)
                after = self._measure(phi_x, logits, y_r, phi_f, None)
        if before is None:  # K = 0: x' = Π(x_r)
            before = after
        d = delta.detach().flatten(1)
        diag = {"ot_before": before[0], "ot_after": after[0], "ce_before": before[1],
                "ce_after": after[1], "delta_linf": float(d.abs().max()),
                "delta_l2": float(d.norm(dim=1).mean()), "w_cls": float(w_cls)}
        if track:
            trace.append(after)
            diag["ot_trace"] = [t[0] for t in trace]
            diag["ce_trace"] = [t[1] for t in trace]
        return x_syn.detach(), diag

    def _measure(self, phi_x, logits, y, phi_f, ot_val) -> tuple[float, float]:
        with torch.no_grad():
            if ot_val is None or self.ot_on_clean:
                ot_val = self.ot(phi_x.detach(), phi_f)
            return float(ot_val), float(F.cross_entropy(logits.detach(), y))
