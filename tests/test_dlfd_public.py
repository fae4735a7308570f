"""``dlfd_public``: DLFD as the public code ran it (docs/method.md §5 D1–D4), for measuring
what the paper's numbers measured."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import toy_loaders

from dlfd.synth import FeatureDistancingSynthesizer as Synth
from dlfd.unlearn import make_config, unlearn

FAST = dict(steps=2, monitor_splits=2, tau=0.0)




def test_public_settings():
    c = make_config("dlfd_public")
    assert (c.lr, c.w_ot, c.w_cls_start, c.w_cls_end, c.steps, c.step_size, c.tau) == (
        0.008, 3.0, 0.0, 1.0, 15, 0.4, 0.15)
    assert (c.ot_on_clean, c.clamp, c.step_unit, c.bn_updates, c.selection) == (
        True, "normalised", "normalised", "eval", "test")


@pytest.mark.parametrize("name, zero", [("dlfd_public", True), ("dlfd", False)])
def test_ot_gradient_wrt_delta(toy_original, toy_data, batches, name, zero):
    """D1: with the OT term on the clean outputs, ∇_δ OT is exactly zero."""
    xr, yr, xf = batches
    model = copy.deepcopy(toy_original).eval()
    cfg = make_config(name).synth_config(0.0)
    synth = Synth(model, toy_data.norm, cfg)
    p0, to_input = synth._space(xr)
    delta = torch.zeros_like(p0).requires_grad_(True)
    phi_x, logits = synth.outputs(to_input(p0 + delta))
    with torch.no_grad():
        phi_f = synth.outputs(xf)[0]
        phi_clean = synth.outputs(to_input(p0))[0]
    ot_value = synth.objective(phi_x, logits, yr, phi_f, phi_clean, w_cls=0.0)[1]
    if zero:
        assert not ot_value.requires_grad  # no path from δ to the OT value at all
        # Nothing moves δ without the CE term: x' is the clamped clean batch.
        x_syn, diag = synth.synthesize(xr, yr, xf, w_cls=0.0)
        assert torch.equal(x_syn, xr.clamp(0.0, 1.0))
    else:
        (grad,) = torch.autograd.grad(ot_value, delta)
        assert grad.abs().sum() > 0


def test_clamps_in_normalised_space(toy_original, toy_data, batches):
    """D2: a negative normalised value becomes 0 (mid-grey), whatever δ does."""
    xr, yr, xf = batches
    assert (xr < 0).any()
    synth = Synth(copy.deepcopy(toy_original), toy_data.norm,
                  make_config("dlfd_public", steps=3).synth_config(1.0))
    x_syn, diag = synth.synthesize(xr, yr, xf)
    assert x_syn.min() >= 0.0 and x_syn.max() <= 1.0
    p0, _ = synth._space(xr)
    clean = p0 + synth.project(p0, torch.zeros_like(p0))
    assert torch.equal(clean[xr < 0], torch.zeros_like(xr[xr < 0]))
    # Reported in pixel units all the same: the clamp itself moves dark pixels by up to 0.5.
    assert diag["delta_linf"] >= 0.5 * (1 - 1e-6)


def test_runs_with_test_selection_and_eval_mode_updates(toy_original, toy_data, toy_unlearn_data):
    data = toy_unlearn_data(original=None)
    data.selection_test = toy_loaders(toy_data).test
    before = {k: v.clone() for k, v in toy_original.state_dict().items()}
    res = unlearn("dlfd_public", toy_original, data, FAST)
    assert res.name == "dlfd_public" and res.info["selection"] == "test"
    assert "leaks" in res.info["selection_note"]
    state = res.model.state_dict()
    # D4: updates in eval mode never touch BatchNorm's running statistics.
    stats = [k for k in state if "running_" in k]
    assert stats and all(torch.equal(state[k], before[k]) for k in stats)
    assert all(torch.equal(v, toy_original.state_dict()[k]) for k, v in before.items())
