"""Entropic optimal transport between two point clouds (docs/method.md §2.3).

DLFD measures how far the synthesised batch's features are from the forget batch's as an
entropic OT distance: cosine cost C_ij = max(0, 1 − cos(a_i, b_j)), a plan T from log-domain
Sinkhorn with ε = 0.01, at most 50 iterations and an early stop on a tolerance, and the loss
Σ_ij T_ij C_ij. This module implements those three pieces in plain torch so that

* the loss is differentiable with respect to *both* point clouds (the synthesizer needs the
  gradient through φ(x'); docs/method.md, §5 D1 "OT gradient");
* every function is batched over leading dimensions (…, n, d) × (…, m, d);
* nothing returns NaN or Inf, even for ε = 1e-3, identical clouds or zero vectors.

Conventions match POT (``ot.sinkhorn(a, b, M, reg, method="sinkhorn_log")``) so that the tests
can compare the two directly:

* ``eps`` is **absolute** on the cost's scale, exactly like POT's ``reg``: the kernel is
  exp(−C/ε) with no rescaling of C. The cosine cost lies in [0, 2], so ε = 0.01 is a sharp plan.
* The update order is POT's (v first, then u), both in the log domain, starting from zero
  potentials; after the same number of iterations the plans agree to round-off.
* ``tol`` bounds the same quantity as POT's ``stopThr``: the L2 norm of the violation of the
  second marginal, ‖T^T 1 − b‖₂ (the first marginal is exact after every u-update). For a batch
  the *largest* error over the batch must fall under ``tol``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .checks import check_int, check_number, require

__all__ = ["cosine_cost", "sinkhorn", "ot_loss"]

# float32's exp() falls onto a slow path (≈50× slower per element here) for arguments below
# log(FLT_MIN) ≈ −87.3, which logits-based costs hit all the time (C/ε reaches 200).
# Those terms are < 1e-37 relative to the row's largest term, so clamping them changes
# nothing measurable and keeps the iterations on the fast path.
_EXP_FLOOR = {torch.float32: -87.0, torch.float16: -17.0, torch.bfloat16: -87.0}


def cosine_cost(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosine cost C_ij = max(0, 1 − cos(a_i, b_j)) (docs/method.md §2.3).

    ``a`` is (…, n, d) and ``b`` is (…, m, d) with broadcastable leading dimensions; the
    result is (…, n, m). Norms are clamped below at ``eps``, so a zero vector has cosine 0
    with everything (cost 1) and a finite, zero gradient instead of 0/0.
    """
    require(a.dim() >= 2 and b.dim() >= 2, f"cosine_cost expects (…, n, d) and (…, m, d); got "
            f"shapes {tuple(a.shape)} and {tuple(b.shape)}.")
    require(a.shape[-1] == b.shape[-1],
            f"Feature dimensions differ: {a.shape[-1]} vs {b.shape[-1]}.")
    an = F.normalize(a, dim=-1, eps=eps)
    bn = F.normalize(b, dim=-1, eps=eps)
    # Round-off can push cos(a, a) a hair above 1; the clamp keeps the cost a true cost.
    return (1.0 - an @ bn.transpose(-1, -2)).clamp_min(0.0)


class _HalfStep(torch.autograd.Function):
    """One Sinkhorn half-step in the log domain: out = t − log Σ_dim exp(M + w).

    ``dim`` ∈ {−2, −1} is the axis summed over and ``w`` is broadcast along it: (M, u, logb,
    −2) is the v-update and (M, v, loga, −1) the u-update. A fused Function rather than
    ``logb − torch.logsumexp(M + u[:, None], 0)`` because (1) it works in place on one n×m
    buffer, (2) its backward reuses the forward's exponentials instead of recomputing them and
    (3) it is one autograd node per half-step; this is what makes it faster than POT's torch
    backend (benchmarks/sinkhorn.py). The shift by the maximum is treated as a constant:
    log-sum-exp does not depend on it, so its gradient contribution is exactly zero.
    """

    @staticmethod
    def forward(ctx, M, w, t, dim, floor):
        x = M + (w.unsqueeze(-1) if dim == -2 else w.unsqueeze(-2))
        m = x.amax(dim=dim, keepdim=True)
        x.sub_(m)
        if floor is not None:
            x.clamp_(min=floor)
        x.exp_()
        s = x.sum(dim=dim, keepdim=True)
        ctx.dim = dim
        ctx.t_shape = t.shape
        ctx.save_for_backward(x, s)
        return t - (s.log() + m).squeeze(dim)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        e, s = ctx.saved_tensors
        dim = ctx.dim
        gs = g.unsqueeze(dim) / s.neg()  # d(−lse)/dx = −softmax along dim = −e / s
        grad_M = grad_w = grad_t = None
        if ctx.needs_input_grad[0]:
            grad_M = e * gs
            if ctx.needs_input_grad[1]:
                grad_w = grad_M.sum(dim=-1 if dim == -2 else -2)
        elif ctx.needs_input_grad[1]:
            if dim == -2:
                grad_w = (e @ gs.transpose(-1, -2)).squeeze(-1)
            else:
                grad_w = (gs.transpose(-1, -2) @ e).squeeze(-2)
        if ctx.needs_input_grad[2]:
            grad_t = g.sum_to_size(ctx.t_shape)
        return grad_M, grad_w, grad_t, None, None


def _log_weights(w: torch.Tensor | None, size: int, like: torch.Tensor, name: str) -> torch.Tensor:
    """log of the marginal ``w`` (uniform when None), checked to be (…, size) and positive."""
    if w is None:
        return torch.full((size,), -math.log(size), dtype=like.dtype, device=like.device)
    w = torch.as_tensor(w, dtype=like.dtype, device=like.device)
    require(w.shape[-1:] == (size,),
            f"{name} has shape {tuple(w.shape)}; its last dimension must be {size}.")
    require(bool((w > 0).all()), f"{name} must be strictly positive (a zero weight has log −∞).")
    return w.log()


def _check_sinkhorn_args(C, eps, max_iter, tol, check_every) -> None:
    require(torch.is_tensor(C) and C.dim() >= 2, f"C must be a tensor of shape (…, n, m); got "
            f"{type(C).__name__} {tuple(getattr(C, 'shape', ()))}.")
    check_number("eps", eps, low=0, strict=True, hint="absolute, like POT's reg")
    check_int("max_iter", max_iter, low=1)
    check_number("tol", tol, low=0)
    check_int("check_every", check_every, low=1)
    require(C.shape[-2] > 0 and C.shape[-1] > 0,
            f"C has shape {tuple(C.shape)}; both point clouds must be non-empty.")


def sinkhorn(C: torch.Tensor, eps: float = 0.01, max_iter: int = 50, tol: float = 1e-9,
             a: torch.Tensor | None = None, b: torch.Tensor | None = None, *,
             check_every: int = 5, return_info: bool = False):
    """Entropic OT plan by log-domain Sinkhorn.

    Solves min_T ⟨T, C⟩ − ε·H(T) subject to T 1 = a, Tᵀ 1 = b, alternating the two
    marginal projections in the log domain (v first, then u, as POT does).

    Parameters
    ----------
    C : torch.Tensor
        Cost matrix (…, n, m), e.g. from :func:`cosine_cost`; non-float costs are cast to
        float32.
    eps : float, default 0.01
        Entropic regularisation, absolute on the cost's scale (POT's ``reg``). The paper uses
        0.01.
    max_iter : int, default 50
        Iteration cap (the paper's 50).
    tol : float, default 1e-9
        Early stop once ‖Tᵀ1 − b‖₂ (the largest over the batch) falls below ``tol``; POT's
        ``stopThr``. ``tol = 0`` runs exactly ``max_iter`` iterations.
    a, b : torch.Tensor, optional
        Marginals, (n,)/(m,) or batched (…, n)/(…, m), strictly positive; uniform by default.
    check_every : int, default 5
        How often the stopping test runs (each test is a host sync).
    return_info : bool, default False
        Also return ``{"n_iter", "err"}``.

    Returns
    -------
    T : torch.Tensor
        The plan, (…, n, m).
    info : dict
        Only with ``return_info``: ``n_iter``, the iterations run, and ``err``, ‖Tᵀ1 − b‖₂ of
        the returned plan, the largest over the batch.

    Notes
    -----
    Autograd flows through the iterations to ``C`` (and to ``a``, ``b``): each half-step is
    a small autograd Function with an exact backward (checked by ``gradcheck`` in the tests),
    so the result is differentiated exactly as computed, truncation included. Early stopping
    is a decision taken on detached values and only changes how many iterations run, so it
    never breaks the graph. The test costs O(n + m): the second marginal of the previous
    iterate is b·exp(v_old − v_new), which the next v-update computes anyway.

    At the paper's setting (ε = 0.01, 50 iterations) the plan is usually *not* converged
    (second-marginal errors of 1e-3 to 6e-2 on 12-point batches), which is why
    :func:`ot_loss` differentiates through the iterations instead of relying on the
    envelope theorem.

    Examples
    --------
    >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    >>> T, info = sinkhorn(C, eps=0.01, return_info=True)
    >>> torch.allclose(T, torch.eye(2) / 2), info["err"] < 1e-6
    (True, True)

    References
    ----------
    M. Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS
    2013. R. Flamary et al., "POT: Python Optimal Transport", JMLR 22(78), 2021
    (``ot.sinkhorn(a, b, M, reg, method="sinkhorn_log")``). Choi & Na, AAAI 2025,
    arXiv:2409.14747 (ε = 0.01, ≤ 50 iterations). docs/method.md §2.3.
    """
    _check_sinkhorn_args(C, eps, max_iter, tol, check_every)
    if not C.is_floating_point():
        C = C.float()
    n, m = C.shape[-2], C.shape[-1]
    loga = _log_weights(a, n, C, "a")
    logb = _log_weights(b, m, C, "b")
    b_w = logb.exp()
    floor = _EXP_FLOOR.get(C.dtype)

    Mr = C / (-eps)
    batch = C.shape[:-2]
    u = C.new_zeros(*batch, n)
    v = C.new_zeros(*batch, m)
    n_iter = 0
    for it in range(max_iter):
        v_new = _HalfStep.apply(Mr, u, logb, -2, floor)
        stop = False
        if tol > 0 and it > 0 and it % check_every == 0:
            with torch.no_grad():
                err = (b_w * torch.expm1(v - v_new)).norm(dim=-1).max()
                stop = bool(err < tol)
        v = v_new
        u = _HalfStep.apply(Mr, v, loga, -1, floor)
        n_iter = it + 1
        if stop:
            break
    T = (Mr + u.unsqueeze(-1) + v.unsqueeze(-2)).exp()
    if not return_info:
        return T
    with torch.no_grad():
        err = float((T.sum(-2) - b_w).norm(dim=-1).max())
    return T, {"n_iter": n_iter, "err": err}


def ot_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 0.01, max_iter: int = 50,
            tol: float = 1e-9, *, detach_plan: bool = False, check_every: int = 5) -> torch.Tensor:
    """The OT distance OT(x, y) = Σ_ij T_ij C_ij, with the cosine cost and a Sinkhorn plan.

    Parameters
    ----------
    x : torch.Tensor
        Point cloud (…, n, d), e.g. the features φ(x') of the synthesised batch.
    y : torch.Tensor
        Point cloud (…, m, d) with the same d, e.g. the features of the forget batch.
    eps, max_iter, tol, check_every
        Passed to :func:`sinkhorn`; the defaults are the paper's ε = 0.01 and 50 iterations.
    detach_plan : bool, default False
        Treat the plan as a constant in the backward pass (see Notes).

    Returns
    -------
    torch.Tensor
        One distance per batch entry (a 0-d tensor for unbatched clouds). Both clouds have
        equal weights.

    Notes
    -----
    By default (``detach_plan=False``) autograd differentiates through the Sinkhorn
    iterations, so the gradient is the exact gradient of the number this function returns,
    whether or not the ≤ 50 iterations have converged; it is also what ``ot.sinkhorn2``
    gives with the torch backend. With ``detach_plan=True`` the plan is a constant and the
    gradient is Σ T_ij ∇C_ij, which the envelope theorem identifies with the gradient of the
    *regularised* objective ⟨T, C⟩ − ε·H(T) at convergence, not of Σ T∘C itself; it is
    cheaper (no backward through the loop) but biased when Sinkhorn is truncated. Either way
    the gradient reaches x through C, which is what docs/method.md, §5 D1 "OT gradient" is
    about: the synthesizer must put φ(x') itself, not the clean features, into this loss.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(8, 16, generator=g, requires_grad=True)
    >>> y = torch.randn(8, 16, generator=g)
    >>> ot_loss(x, y).backward()
    >>> x.grad.shape
    torch.Size([8, 16])

    References
    ----------
    Choi & Na, "Distribution-Level Feature Distancing for Machine Unlearning", AAAI 2025,
    arXiv:2409.14747. M. Cuturi, "Sinkhorn Distances", NeurIPS 2013. docs/method.md §2.3.
    """
    C = cosine_cost(x, y)
    if detach_plan:
        with torch.no_grad():
            T = sinkhorn(C.detach(), eps, max_iter, tol, check_every=check_every)
    else:
        T = sinkhorn(C, eps, max_iter, tol, check_every=check_every)
    return (T * C).sum(dim=(-2, -1))
