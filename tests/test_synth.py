"""The feature-distancing synthesizer (docs/method.md §2.1; §5 D1 "OT gradient", D2
"normalised clamp", D4 "BatchNorm mode")."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from dlfd.data import Normalization
from dlfd.synth import FeatureDistancingSynthesizer as Synth
from dlfd.synth import SynthConfig




@pytest.fixture
def model(toy_original):
    return copy.deepcopy(toy_original)


@pytest.mark.parametrize("phi", ["logits", "embedding"])
def test_synthesis_distances_features_and_keeps_ce_bounded(model, toy_data, batches, phi):
    xr, yr, xf = batches
    s = Synth(model, toy_data.norm, SynthConfig(steps=10, step_size=2 / 255, w_ot=3.0, phi=phi))
    _, free = s.synthesize(xr, yr, xf, w_cls=0.0)
    x_syn, held = s.synthesize(xr, yr, xf, w_cls=1.0)
    for d in (free, held):
        assert d["ot_after"] > d["ot_before"] + 1e-3
    # The classification term holds CE down relative to pure distancing, and keeps it below
    # chance level (log 3): the samples stay correctly labelled.
    assert held["ce_after"] < free["ce_after"]
    assert held["ce_after"] < math.log(3)
    assert x_syn.shape == xr.shape and not x_syn.requires_grad
    assert held["delta_linf"] <= 10 * 2 / 255 + 1e-6 and held["delta_l2"] > 0


def test_ot_on_clean_features_gives_the_ot_term_no_gradient(model, toy_data, batches):
    """D1 demo: with OT on the clean features, δ gets no push from the OT term."""
    xr, yr, xf = batches

    def run(w_cls, **settings):
        config = SynthConfig(steps=6, step_size=2 / 255, w_ot=3.0, **settings)
        return Synth(model, toy_data.norm, config).synthesize(xr, yr, xf, w_cls)

    x_demo, d = run(0.0, ot_on_clean=True)
    assert d["delta_linf"] == 0.0 and d["ot_after"] == pytest.approx(d["ot_before"], abs=1e-6)
    assert torch.allclose(x_demo, toy_data.norm.project(xr))
    # With w_cls > 0 the demo is exactly CE-only synthesis: it makes retain images easier.
    x_demo, d_demo = run(1.0, ot_on_clean=True)
    x_ce, d_ce = run(1.0, use_ot=False)
    assert torch.equal(x_demo, x_ce)
    assert d_demo["ce_after"] < d_demo["ce_before"]
    _, d_fixed = run(1.0)
    gain_fixed = d_fixed["ot_after"] - d_fixed["ot_before"]
    assert gain_fixed > 2 * (d_demo["ot_after"] - d_demo["ot_before"])


def test_use_ot_false_removes_the_ot_part_of_the_gradient(model, toy_data, batches):
    xr, yr, xf = batches

    def run(w_cls=None, **settings):
        config = SynthConfig(steps=5, step_size=2 / 255, phi="embedding", **settings)
        return Synth(model, toy_data.norm, config).synthesize(xr, yr, xf, w_cls)

    off, _ = run(0.5, use_ot=False, w_ot=3.0)
    zero, _ = run(0.5, use_ot=True, w_ot=0.0)
    on, _ = run(0.5, use_ot=True, w_ot=3.0)
    assert torch.equal(off, zero)
    assert not torch.equal(off, on)
    # Both terms off: nothing depends on δ, so the output is the projected input.
    none, d = run(use_ot=False, use_cls=False)
    assert torch.equal(none, toy_data.norm.from_pixels(toy_data.norm.to_pixels(xr).clamp(0, 1)))
    assert d["delta_linf"] == 0


def test_projection_in_pixel_space_and_eps_budget(model, batches):
    """D2: the range is enforced on un-normalised pixels, for any mean/std."""
    xr, yr, xf = batches
    norm = Normalization(mean=(0.2, 0.4, 0.6), std=(0.1, 0.2, 0.3))
    xr = norm.from_pixels(torch.rand(xr.shape, generator=torch.Generator().manual_seed(0)))
    xf = norm.from_pixels(torch.rand(xf.shape, generator=torch.Generator().manual_seed(1)))
    big = Synth(model, norm, SynthConfig(steps=4, step_size=0.3, w_ot=3.0, w_cls=1.0))
    x, d = big.synthesize(xr, yr, xf)
    px = norm.to_pixels(x)
    assert px.min() >= -1e-6 and px.max() <= 1 + 1e-6
    assert (px.abs() < 1e-6).any() and ((px - 1).abs() < 1e-6).any()  # the clamp is active
    boxed = Synth(model, norm,
                  SynthConfig(steps=4, step_size=0.3, w_ot=3.0, w_cls=1.0, eps_px=8 / 255))
    x, d = boxed.synthesize(xr, yr, xf)
    diff = norm.to_pixels(x) - norm.to_pixels(xr)
    assert diff.abs().max() <= 8 / 255 + 1e-6
    assert d["delta_linf"] == pytest.approx(8 / 255, abs=1e-6)
    assert norm.to_pixels(x).min() >= -1e-6 and norm.to_pixels(x).max() <= 1 + 1e-6


def test_model_state_untouched_and_modes_restored(model, toy_data, batches):
    """D4: eval mode during synthesis; BN statistics, parameters and .grad unchanged."""
    xr, yr, xf = batches
    model.train()
    model.features[0][1].eval()  # a submodule in its own mode must keep it
    for i, p in enumerate(model.parameters()):
        p.grad = torch.full_like(p, float(i))
    state = copy.deepcopy(model.state_dict())
    grads = [p.grad.clone() for p in model.parameters()]
    Synth(model, toy_data.norm, SynthConfig(steps=3, w_cls=1.0)).synthesize(xr, yr, xf)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)
    assert model.training and not model.features[0][1].training
    assert all(m.training for m in model.features[1].modules())


def test_k_zero_and_pass_counts(model, toy_data, batches):
    xr, yr, xf = batches
    s = Synth(model, toy_data.norm, SynthConfig(steps=0))
    x, d = s.synthesize(xr, yr, xf)
    assert torch.allclose(x, xr, atol=1e-6)
    assert d["ot_before"] == d["ot_after"] and d["delta_linf"] == 0
    assert (s.forward_passes, s.backward_passes) == (2, 0)
    s = Synth(model, toy_data.norm, SynthConfig(steps=3))
    s.synthesize(xr, yr, xf)
    assert (s.forward_passes, s.backward_passes) == (3 + 2, 3)


def test_plain_module_without_embed_works_for_logits(toy_data, batches):
    xr, yr, xf = batches
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 3))
    _, d = Synth(net, toy_data.norm, SynthConfig(steps=3)).synthesize(xr, yr, xf)
    assert d["ot_after"] > d["ot_before"]
    with pytest.raises(ValueError, match="embed"):
        Synth(net, toy_data.norm, SynthConfig(phi="embedding"))


@pytest.mark.parametrize("kwargs, bad", [
    ({"steps": -1}, "steps"), ({"steps": 2.0}, "steps"), ({"steps": True}, "steps"),
    ({"step_size": -0.1}, "step_size"), ({"ot_eps": 0.0}, "ot_eps"), ({"ot_eps": -1}, "ot_eps"),
    ({"phi": "pixels"}, "phi"), ({"eps_px": 0.0}, "eps_px"), ({"ot_iters": 0}, "ot_iters"),
    ({"w_ot": float("nan")}, "w_ot"), ({"w_cls": -1.0}, "w_cls"),
])
def test_bad_arguments_are_named(model, kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        Synth(model, Normalization(), SynthConfig(**kwargs))


def test_bad_call_arguments(model, batches):
    xr, yr, xf = batches
    s = Synth(model, Normalization(), SynthConfig(steps=1))
    with pytest.raises(ValueError, match="w_cls"):
        s.synthesize(xr, yr, xf, w_cls=-1.0)
    with pytest.raises(ValueError, match="labels"):
        s.synthesize(xr, yr[:3], xf)


def test_frac_correct_matches_a_direct_recount(model, toy_data, batches):
    """Counted from the diagnostic pass's logits; recounted here in eval mode (the mode the
    synthesis runs in) on the returned x'."""
    xr, yr, xf = batches
    s = Synth(model, toy_data.norm, SynthConfig(steps=8, step_size=16 / 255))
    for w_cls in (0.0, 1.0):
        x_syn, diag = s.synthesize(xr, yr, xf, w_cls=w_cls)
        with torch.no_grad():
            recount = (model.eval()(x_syn).argmax(1) == yr).float().mean().item()
        assert diag["frac_correct"] == pytest.approx(recount)
        d = (toy_data.norm.to_pixels(x_syn) - toy_data.norm.to_pixels(xr).clamp(0, 1)).flatten()
        assert diag["delta_linf"] == pytest.approx(float(d.abs().max()), abs=1e-5)
        assert diag["delta_mean_abs"] == pytest.approx(float(d.abs().mean()), abs=1e-5)
    passes = s.forward_passes
    s.synthesize(xr, yr, xf)
    assert s.forward_passes - passes == 8 + 2  # K steps, φ(x_f), the diagnostic pass
