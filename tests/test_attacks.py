"""Averaged loss-MIA and offline LiRA (dlfd.attacks) on synthetic losses and tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from dlfd.attacks import (confidences, lira_for_model, logit_confidence, offline_lira,
                          tpr_at_fpr)
from dlfd.metrics import DIVERGED_LOSS, averaged_mia, mia_from_losses, mia_spread, repeat_seeds


# --------------------------------------------------------------------------- averaged MIA


@pytest.mark.parametrize("n_m,n_u", [(30, 90), (90, 30), (40, 40)])
def test_single_repeat_equals_mia_from_losses(n_m, n_u):
    rng = np.random.default_rng(0)
    m, u = rng.normal(0, 1, n_m), rng.normal(0.5, 1, n_u)
    for seed in (0, 7):
        ref = mia_from_losses(m, u, seed=seed, n_splits=5)
        got = averaged_mia(m, u, repeats=1, seed=seed, n_splits=5)
        assert got.mia == ref.mean
        assert got.repeats == 1 and np.isnan(got.mia_se)
        assert (got.n_members, got.n_nonmembers) == (n_m, n_u)


def test_repeat_seeds_start_with_seed_and_do_not_overlap_across_eval_seeds():
    assert repeat_seeds(5, 1) == [5]
    a, b = repeat_seeds(0, 10), repeat_seeds(1, 10)
    assert a[0] == 0 and b[0] == 1 and len(set(a) | set(b)) == 20
    assert repeat_seeds(0, 10) == a  # deterministic


def test_auc_uses_all_samples_and_matches_metrics_convention():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    m, u = rng.normal(0, 1, 20), rng.normal(1, 1, 200)
    r = averaged_mia(m, u, repeats=2, n_splits=3)
    y = np.r_[np.ones(20), np.zeros(200)]
    assert r.auc == pytest.approx(roc_auc_score(y, -np.r_[m, u]))
    # Same convention as MIAResult.auc: with balanced sides (no subsampling) they agree.
    assert averaged_mia(m, u[:20], repeats=2, n_splits=3).auc == pytest.approx(
        mia_from_losses(m, u[:20], n_splits=3).auc)


def test_identical_distributions_give_chance():
    rng = np.random.default_rng(2)
    m, u = rng.normal(1, 1, 200), rng.normal(1, 1, 600)
    r = averaged_mia(m, u, repeats=8, seed=0, n_splits=5)
    # The SE covers subsampling and CV noise; the tolerance covers the finite member set.
    assert abs(r.mia - 0.5) <= 3 * r.mia_se + 0.03
    assert abs(r.auc - 0.5) < 0.07


def test_separated_losses_give_one():
    rng = np.random.default_rng(3)
    r = averaged_mia(rng.normal(0, 0.1, 50), rng.normal(5, 0.1, 150), repeats=3, n_splits=3)
    assert r.mia > 0.98 and r.auc == 1.0


def test_averaging_reduces_the_spread_over_eval_seeds():
    rng = np.random.default_rng(0)
    m, u = rng.normal(0, 1, 40), rng.normal(0.5, 1, 400)
    sp = mia_spread(m, u, eval_seeds=range(5), repeats=6, n_splits=5)
    assert len(sp.single) == len(sp.averaged) == 5
    assert sp.averaged_std < sp.single_std
    assert averaged_mia(m, u, repeats=6, n_splits=5).mia_se < sp.single_std


@pytest.mark.parametrize("bad", [[1.0], [1.0, np.nan], [np.inf, 1.0]])
def test_averaged_mia_rejects_bad_losses(bad):
    with pytest.raises(ValueError, match="member_losses"):
        averaged_mia(bad, [1.0, 2.0, 3.0])


def test_mia_spread_needs_two_seeds():
    with pytest.raises(ValueError, match="eval_seeds"):
        mia_spread([1.0, 2.0], [1.0, 2.0], eval_seeds=[3], repeats=2)


# --------------------------------------------------------------------------- confidence


def test_logit_confidence_matches_float64_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=g) * 3
    y = torch.randint(0, 7, (50,), generator=g)
    p = torch.softmax(logits.double(), 1).gather(1, y[:, None]).squeeze(1).numpy()
    np.testing.assert_allclose(logit_confidence(logits, y), np.log(p / (1 - p)), rtol=1e-9,
                               atol=1e-9)
    # Numpy input, and a confident float32 model where p_y rounds to 1.
    phi = logit_confidence(np.array([[60.0, 0.0, 0.0]], dtype=np.float32), np.array([0]))
    assert phi.dtype == np.float64 and phi[0] == pytest.approx(60 - np.log(2))


def test_logit_confidence_rejects_bad_shapes():
    with pytest.raises(ValueError, match="C ≥ 2"):
        logit_confidence(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        logit_confidence(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must lie"):
        logit_confidence(torch.zeros(2, 2), torch.tensor([0, 2]))


# --------------------------------------------------------------------------- offline LiRA


def _synthetic(shift, n=150, refs=3, seed=0):
    """Per-example OUT means vary; target = one more OUT draw (+ shift for members)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 2, 2 * n)
    ref = mu + rng.normal(0, 1, (refs, 2 * n))
    is_member = np.arange(2 * n) < n
    target = mu + rng.normal(0, 1, 2 * n) + shift * is_member
    return target, ref, is_member


def test_lira_separates_remembered_members():
    from sklearn.metrics import roc_auc_score

    t, ref, mem = _synthetic(shift=5.0)
    r = offline_lira(t, ref, mem, fpr=0.05)
    assert r.auc > 0.95 and r.tpr_at_fpr > 0.8
    assert r.auc == pytest.approx(roc_auc_score(mem, r.scores))
    assert r.n_references == 3 and (r.n_members, r.n_nonmembers) == (150, 150)
    assert r.scores.shape == r.z.shape == (300,) and r.variance == "global"
    assert np.all(np.diff(r.scores[np.argsort(r.z)]) >= 0)  # score is monotone in z


def test_lira_perfect_unlearner_is_chance():
    from sklearn.metrics import roc_auc_score

    t, ref, mem = _synthetic(shift=0.0)
    r = offline_lira(t, ref, mem)
    assert abs(r.auc - 0.5) < 0.07
    assert r.auc == pytest.approx(roc_auc_score(mem, r.scores))
    # No signal in, none out: at 5% FPR the TPR stays near 5%.
    assert 0.0 <= r.tpr_at_fpr <= 0.25


def test_lira_per_example_variance_and_auto_switch():
    t, ref, mem = _synthetic(shift=5.0, refs=64, n=50)
    assert offline_lira(t, ref, mem).variance == "per_example"
    assert offline_lira(t, ref[:5], mem, variance="per_example").variance == "per_example"
    assert offline_lira(t, ref, mem, variance="global").auc > 0.95


def test_lira_rejects_bad_inputs():
    t, ref, mem = _synthetic(shift=1.0, n=10)
    with pytest.raises(ValueError, match="at least 2"):
        offline_lira(t, ref[:1], mem)
    with pytest.raises(ValueError, match="expected \\(R, 20\\)"):
        offline_lira(t, ref[:, :5], mem)
    with pytest.raises(ValueError, match="both members and non-members"):
        offline_lira(t, ref, np.ones(20, bool))
    with pytest.raises(ValueError, match="fpr"):
        offline_lira(t, ref, mem, fpr=0.0)
    with pytest.raises(ValueError, match="variance"):
        offline_lira(t, ref, mem, variance="median")
    with pytest.raises(ValueError, match="finite"):
        offline_lira(np.r_[t[:-1], np.nan], ref, mem)


def test_tpr_at_fpr_interpolates_and_takes_top_of_vertical_steps():
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]  # ROC: (0,0) (0,.5) (.5,.5) (.5,1) (1,1)
    assert tpr_at_fpr(labels, scores, 0.0) == 0.5
    assert tpr_at_fpr(labels, scores, 0.25) == 0.5
    assert tpr_at_fpr(labels, scores, 0.5) == 1.0
    # A diagonal segment: (0, 0) → (1, 1) for identical scores.
    assert tpr_at_fpr([0, 1], [0.0, 0.0], 0.3) == pytest.approx(0.3)


# --------------------------------------------------------------------------- on models


def _loader(x, y, shuffle=False):
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=shuffle, generator=g)


def _linear(seed):
    torch.manual_seed(seed)
    return nn.Linear(5, 3)


def test_lira_for_model_runs_on_tiny_models():
    g = torch.Generator().manual_seed(1)
    xf, yf = torch.randn(20, 5, generator=g), torch.randint(0, 3, (20,), generator=g)
    xt, yt = torch.randn(30, 5, generator=g), torch.randint(0, 3, (30,), generator=g)
    target = _linear(0).train()
    refs = [_linear(1), _linear(2), _linear(3)]
    r = lira_for_model(target, refs, _loader(xf, yf), _loader(xt, yt))
    assert r.scores.shape == (50,) and r.n_references == 3
    assert (r.n_members, r.n_nonmembers) == (20, 30)
    assert 0.0 <= r.auc <= 1.0 and 0.0 <= r.tpr_at_fpr <= 1.0
    assert target.training  # mode restored
    # One pass per batch keeps examples aligned across models, even with a shuffling loader.
    shuffled = lira_for_model(target, refs, _loader(xf, yf, True), _loader(xt, yt, True))
    assert shuffled.auc == pytest.approx(r.auc)
    # References scored once and reused for many targets give the same attack.
    conf = confidences(refs, _loader(xf, yf), _loader(xt, yt))
    cached = lira_for_model(target, refs, _loader(xf, yf), _loader(xt, yt), reference_confs=conf)
    assert cached.auc == r.auc and np.array_equal(cached.scores, r.scores)
    # A reference must be another model: calibrating the target against itself hides it.
    with pytest.raises(ValueError, match="among the reference"):
        lira_for_model(target, [target, refs[0]], _loader(xf, yf), _loader(xt, yt))


def test_lira_for_model_only_fits_on_references():
    x, y = torch.randn(8, 5), torch.zeros(8, dtype=torch.long)
    with pytest.raises(ValueError, match="fit_on"):
        lira_for_model(_linear(0), [_linear(1), _linear(2)], _loader(x, y), _loader(x, y),
                       fit_on="test")
    with pytest.raises(ValueError, match="at least 2"):
        lira_for_model(_linear(0), [_linear(1)], _loader(x, y), _loader(x, y))


def test_diverged_outputs_are_maximally_wrong_not_a_crash():
    conf = logit_confidence(torch.tensor([[float("nan"), 0.0], [3.0, 0.0]]), torch.tensor([0, 0]))
    assert conf[0] == -DIVERGED_LOSS and conf[1] == pytest.approx(3.0)
