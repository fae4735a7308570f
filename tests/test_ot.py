"""dlfd.ot against POT, in float64 (docs/method.md §2.3)."""

from __future__ import annotations

import doctest

import pytest
import torch

ot = pytest.importorskip("ot")

from dlfd import ot as ot_mod  # noqa: E402
from dlfd.ot import cosine_cost, ot_loss, sinkhorn  # noqa: E402

D = torch.float64


def clouds(n=12, m=9, d=6, seed=0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype), torch.randn(m, d, generator=g, dtype=dtype)


def uniform(k, dtype=D):
    return torch.full((k,), 1.0 / k, dtype=dtype)


# --------------------------------------------------------------------------- cost


def test_cosine_cost_matches_definition_and_is_batched():
    x, y = clouds()
    C = cosine_cost(x, y)
    cos = torch.nn.functional.cosine_similarity(x[:, None], y[None], dim=-1)
    assert torch.allclose(C, (1 - cos).clamp_min(0), atol=1e-12)
    assert C.min() >= 0 and C.max() <= 2 + 1e-12
    xb, yb = torch.stack([x, 2 * x]), torch.stack([y, -y])
    Cb = cosine_cost(xb, yb)
    assert Cb.shape == (2, 12, 9)
    assert torch.allclose(Cb[0], C) and torch.allclose(Cb[1], (2 - C).clamp_min(0), atol=1e-12)


def test_cosine_cost_zero_vectors_are_finite_with_finite_gradient():
    x, y = clouds(4, 3, 5)
    x = x.clone()
    x[1] = 0
    x.requires_grad_(True)
    C = cosine_cost(x, y)
    assert torch.isfinite(C).all() and torch.allclose(C[1], torch.ones(3, dtype=D))
    C.sum().backward()
    assert torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------- plan vs POT


@pytest.mark.parametrize("eps", [0.5, 0.05, 0.01])
def test_plan_and_cost_match_pot_when_converged(eps):
    x, y = clouds(seed=1)
    C = cosine_cost(x, y)
    T, info = sinkhorn(C, eps, max_iter=20000, tol=1e-13, return_info=True)
    assert info["err"] < 1e-12
    a, b = uniform(12), uniform(9)
    T_pot = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", numItermax=20000, stopThr=1e-13)
    assert torch.allclose(T, T_pot, atol=1e-5, rtol=0)
    cost_pot = ot.sinkhorn2(a, b, C, eps, method="sinkhorn_log", numItermax=20000, stopThr=1e-13)
    assert abs(float((T * C).sum()) - float(cost_pot)) < 1e-5
    assert abs(float(ot_loss(x, y, eps, 20000, 1e-13)) - float(cost_pot)) < 1e-5
    # Marginals: both exactly the uniform weights.
    assert torch.allclose(T.sum(1), a, atol=1e-10) and torch.allclose(T.sum(0), b, atol=1e-10)


def test_same_iterations_as_pot_give_the_same_plan_even_unconverged():
    """tol = 0 runs exactly max_iter iterations, POT's update order, so 50 iterations agree."""
    x, y = clouds(seed=2)
    C = cosine_cost(x, y)
    T = sinkhorn(C, 0.01, 50, tol=0.0)
    T_pot = ot.sinkhorn(uniform(12), uniform(9), C, 0.01, method="sinkhorn_log", numItermax=50,
                        stopThr=0.0, warn=False)
    assert torch.allclose(T, T_pot, atol=1e-10, rtol=0)


def test_non_uniform_weights_match_pot():
    x, y = clouds(seed=3)
    C = cosine_cost(x, y)
    g = torch.Generator().manual_seed(0)
    a = torch.rand(12, generator=g, dtype=D) + 0.1
    b = torch.rand(9, generator=g, dtype=D) + 0.1
    a, b = a / a.sum(), b / b.sum()
    T = sinkhorn(C, 0.05, 20000, 1e-13, a=a, b=b)
    T_pot = ot.sinkhorn(a, b, C, 0.05, method="sinkhorn_log", numItermax=20000, stopThr=1e-13)
    assert torch.allclose(T, T_pot, atol=1e-5, rtol=0)


def test_batched_equals_looped_and_early_stop_waits_for_the_whole_batch():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 10, 5, generator=g, dtype=D)
    y = torch.randn(3, 7, 5, generator=g, dtype=D)
    y[0] = x[0, :7]  # an easy problem next to harder ones
    C = cosine_cost(x, y)
    T, info = sinkhorn(C, 0.02, 5000, 1e-11, return_info=True)
    assert info["err"] < 1e-11
    for k in range(3):
        Tk = ot.sinkhorn(uniform(10), uniform(7), C[k], 0.02, method="sinkhorn_log",
                         numItermax=5000, stopThr=1e-12)
        assert torch.allclose(T[k], Tk, atol=1e-6, rtol=0)
    loss = ot_loss(x, y, 0.02, 5000, 1e-11)
    assert loss.shape == (3,) and torch.allclose(loss, (T * C).sum((-2, -1)))


def test_early_stop_stops_early_and_respects_tol():
    x, y = clouds(seed=5)
    C = cosine_cost(x, y)
    _, loose = sinkhorn(C, 0.1, 10000, 1e-4, return_info=True)
    _, tight = sinkhorn(C, 0.1, 10000, 1e-12, return_info=True)
    assert loose["n_iter"] < tight["n_iter"] < 10000
    assert loose["err"] < 1e-4 and tight["err"] < 1e-12


def test_approaches_exact_ot_as_eps_goes_to_zero():
    """|OT_ε − OT_0| shrinks with ε. The entropic bias is at most ε·log(nm) (≈ 5e-3 at
    ε = 1e-3, n = m = 10), and at ε = 1e-3 Sinkhorn has not fully converged after the
    20 000-iteration cap, so the bound is loose: 1e-3 (measured: 3.6e-2, 2.3e-3, 5.6e-6)."""
    x, y = clouds(10, 10, 4, seed=6)
    C = cosine_cost(x, y)
    exact = float(ot.emd2(uniform(10).numpy(), uniform(10).numpy(), C.numpy()))
    gaps = [abs(float(ot_loss(x, y, eps, 20000, 1e-10)) - exact) for eps in (0.1, 0.01, 1e-3)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-3


# --------------------------------------------------------------------------- gradients


def test_gradcheck_through_the_iterations():
    x, y = clouds(5, 4, 3, seed=7)
    C = cosine_cost(x, y).detach().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: sinkhorn(c, 0.1, 30, 0.0), (C,))
    xr = x.clone().requires_grad_(True)
    yr = y.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: ot_loss(a, b, 0.1, 30, 0.0), (xr, yr))


def test_gradient_matches_pot_sinkhorn2_autograd():
    x, y = clouds(8, 6, 4, seed=8)
    xr = x.clone().requires_grad_(True)
    ot_loss(xr, y, 0.05, 50, 0.0).backward()
    xp = x.clone().requires_grad_(True)
    Cp = cosine_cost(xp, y)
    ot.sinkhorn2(uniform(8), uniform(6), Cp, 0.05, method="sinkhorn_log", numItermax=50,
                 stopThr=0.0, warn=False).backward()
    assert torch.allclose(xr.grad, xp.grad, atol=1e-8)


def test_detached_plan_is_the_envelope_gradient():
    """At convergence, Σ T ∇C (plan held fixed) is the gradient of the regularised value."""
    x, y = clouds(6, 6, 4, seed=9)
    eps = 0.1
    xr = x.clone().requires_grad_(True)
    ot_loss(xr, y, eps, 5000, 1e-13, detach_plan=True).backward()

    def reg_value(a):
        C = cosine_cost(a, y)
        T = sinkhorn(C, eps, 5000, 1e-13)
        return (T * C).sum() + eps * (T * T.log()).sum()

    xe = x.clone().requires_grad_(True)
    reg_value(xe).backward()
    assert torch.allclose(xr.grad, xe.grad, atol=1e-6)


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_nan_or_inf_on_edge_cases(dtype):
    x, y = clouds(8, 8, 5, seed=10, dtype=dtype)
    z = torch.zeros(8, 5, dtype=dtype)
    logits_like = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=dtype) * 30
    cases = {"eps=1e-3": (x, y, 1e-3), "identical": (x, x.clone(), 0.01),
             "zeros": (z, y, 0.01), "both zero": (z, z.clone(), 0.01),
             "antipodal": (x, -x, 1e-3), "logits": (logits_like, -logits_like.flip(0), 1e-3)}
    for name, (a, b, eps) in cases.items():
        a = a.clone().requires_grad_(True)
        T = sinkhorn(cosine_cost(a, b), eps, 50)
        loss = ot_loss(a, b, eps, 50)
        loss.backward()
        assert torch.isfinite(T).all(), name
        assert torch.isfinite(loss).all() and torch.isfinite(a.grad).all(), name
        assert abs(float(T.detach().sum()) - 1) < 1e-4, name
    # Identical clouds: the plan is (nearly) the identity coupling and the distance ~ 0.
    T = sinkhorn(cosine_cost(x, x), 0.01, 200, 1e-9)
    assert float(ot_loss(x, x, 0.01, 200)) < 1e-3
    assert torch.allclose(T.diagonal(), torch.full((8,), 1 / 8, dtype=dtype), atol=1e-3)


def test_argument_validation():
    C = torch.rand(3, 4)
    for kwargs in ({"eps": 0}, {"eps": -1.0}, {"eps": float("nan")}, {"max_iter": 0},
                   {"max_iter": 2.5}, {"max_iter": True}, {"tol": -1.0}, {"check_every": 0},
                   {"a": torch.tensor([0.5, 0.5, 0.0])}, {"b": torch.ones(3) / 3}):
        name = next(iter(kwargs))
        with pytest.raises(ValueError, match=f"^{name}"):
            sinkhorn(C, **kwargs)
    with pytest.raises(ValueError, match=r"eps=0; expected a finite number > 0 \(absolute"):
        sinkhorn(C, eps=0)
    with pytest.raises(ValueError, match="max_iter=0; expected an integer ≥ 1"):
        sinkhorn(C, max_iter=0)
    with pytest.raises(ValueError, match="non-empty"):
        sinkhorn(torch.rand(0, 4))
    with pytest.raises(ValueError):
        sinkhorn(torch.rand(3))
    with pytest.raises(ValueError):
        cosine_cost(torch.rand(3, 2), torch.rand(3, 4))


def test_docstring_examples():
    assert doctest.testmod(ot_mod).failed == 0
