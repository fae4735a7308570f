"""Metrics (docs/method.md §3): accuracy, MIA, FS, NoMUS, model distances and records.

Averages over seeds, tables and JSON are tested in test_reporting.py."""

import copy
import doctest
import math

import numpy as np
import pytest
import torch

from helpers import toy_loaders
from dlfd import metrics as M

# ----------------------------------------------------------------------------- accuracy


def test_top1_and_top1_count():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0]])
    y = torch.tensor([0, 2, 2])
    assert M.top1_count(logits, y) == 2 and isinstance(M.top1_count(logits, y), int)
    assert M.top1(logits, y) == pytest.approx(2 / 3)
    assert M.top1_count(logits[:0], y[:0]) == 0 and math.isnan(M.top1(logits[:0], y[:0]))


def test_docstring_examples():
    assert doctest.testmod(M).failed == 0


# ----------------------------------------------------------------------------- MIA

N = 2000  # per side
# The attack is scored on test folds of 0.3 · 2N = 1200 samples. Under "no signal" each is
# right with probability 1/2, so one fold's accuracy has SE 0.5/√1200 ≈ 0.0144, and the
# mean over 10 (correlated) folds has at most that. 0.06 ≈ 4 SE.
MIA_TOL = 0.06
# The AUC's SE under H0 with n1 = n2 = N is √((2N + 1) / (12 N²)) ≈ 0.0091; 0.04 ≈ 4.4 SE.
AUC_TOL = 0.04


def test_mia_identical_distributions_is_chance():
    rng = np.random.default_rng(0)
    res = M.mia_from_losses(rng.exponential(1.0, N), rng.exponential(1.0, N), seed=0)
    assert res.n_per_side == N
    assert abs(res.mean - 0.5) < MIA_TOL
    assert abs(res.auc - 0.5) < AUC_TOL


def test_mia_perfectly_separated_is_one():
    rng = np.random.default_rng(1)
    res = M.mia_from_losses(rng.uniform(0.0, 0.1, N), rng.uniform(1.0, 2.0, N), seed=0)
    assert res.mean > 0.99
    assert res.auc == 1.0


def test_mia_balances_unbalanced_inputs():
    # 3:1 members: an unbalanced attack would score 0.75 by always saying "member".
    rng = np.random.default_rng(2)
    res = M.mia_from_losses(rng.exponential(1.0, 3 * N), rng.exponential(1.0, N), seed=0)
    assert res.n_per_side == N
    assert abs(res.mean - 0.5) < MIA_TOL
    res2 = M.mia_from_losses(rng.exponential(1.0, 300), rng.exponential(1.0, 5000), seed=0)
    assert res2.n_per_side == 300


def test_mia_same_seed_same_result():
    rng = np.random.default_rng(3)
    m, u = rng.exponential(1.0, 700), rng.exponential(1.3, 500)
    assert M.mia_from_losses(m, u, seed=7) == M.mia_from_losses(m, u, seed=7)


def test_mia_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(4)
    m, u = rng.exponential(0.8, 500), rng.exponential(1.0, 500)  # balanced: no subsampling
    labels = np.r_[np.ones(500), np.zeros(500)]
    expected = roc_auc_score(labels, -np.r_[m, u])  # lower loss ⇒ member
    assert M.mia_from_losses(m, u).auc == pytest.approx(expected, abs=1e-12)


def test_mia_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 samples per side; got 1 members"):
        M.mia_from_losses([0.1], [0.2, 0.3])
    with pytest.raises(ValueError, match="non-finite"):
        M.mia_from_losses([0.1, np.nan], [0.2, 0.3])


# ----------------------------------------------------------------------------- FS, NoMUS


def test_forgetting_score_and_nomus_known_values():
    assert M.forgetting_score(0.62) == pytest.approx(0.12)
    assert M.forgetting_score(0.38) == pytest.approx(0.12)
    assert M.forgetting_score(0.5) == 0.0
    assert M.nomus(0.6, 0.05) == pytest.approx(0.75)
    assert M.nomus(1.0, 0.0) == pytest.approx(1.0)
    assert M.nomus(0.0, 0.5) == pytest.approx(0.0)
    assert M.nomus(0.6, 0.05, lam=1.0) == pytest.approx(0.6)
    # The authors' reported DLFD row (docs/method.md §4): test .620, FS .028 → NoMUS .782.
    assert M.nomus(0.620, 0.028) == pytest.approx(0.782, abs=1e-3)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan")])
def test_nomus_rejects_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam="):
        M.nomus(0.6, 0.05, lam=lam)


# ----------------------------------------------------------------------------- distances


def _vector_setup(net_cls, make_loader, n=200):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 6, generator=g) * 3
    y = torch.randint(0, 3, (n,), generator=g)
    torch.manual_seed(1)
    a = net_cls()
    torch.manual_seed(2)
    b = net_cls()
    return a, b, make_loader(X, y, batch_size=64), X


def test_js_of_model_with_itself_is_zero(toy_vector_net, toy_vector_loader):
    a, _, loader, _ = _vector_setup(toy_vector_net, toy_vector_loader)
    assert M.js_divergence(a, a, loader) == 0.0
    assert M.js_divergence(a, copy.deepcopy(a), loader) == 0.0
    assert M.activation_distance(a, copy.deepcopy(a), loader) == 0.0


def test_js_matches_scipy(toy_vector_net, toy_vector_loader):
    from scipy.spatial.distance import jensenshannon

    a, b, loader, X = _vector_setup(toy_vector_net, toy_vector_loader)
    with torch.no_grad():
        p = torch.softmax(a(X).double(), 1).numpy()
        q = torch.softmax(b(X).double(), 1).numpy()
    expected = np.mean([jensenshannon(pi, qi) ** 2 for pi, qi in zip(p, q)])  # natural log
    got = M.js_divergence(a, b, loader)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert 0.0 < got <= math.log(2)
    assert M.js_divergence(b, a, loader) == pytest.approx(got, rel=1e-12)  # symmetric


def test_activation_distance_matches_manual_and_restores_modes(toy_vector_net, toy_vector_loader):
    a, b, loader, X = _vector_setup(toy_vector_net, toy_vector_loader)
    a.train()
    b.eval()
    with torch.no_grad():
        expected = (a.embed(X).double() - b.embed(X).double()).norm(dim=1).mean().item()
    assert M.activation_distance(a, b, loader) == pytest.approx(expected, rel=1e-9)
    assert a.training and not b.training


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_record(toy_data, toy_original):
    ld = toy_loaders(toy_data)
    rec = M.evaluate(toy_original, ld, retrained=copy.deepcopy(toy_original), seed=0,
                     seconds=2.0, retrain_seconds=10.0)
    for k in ("retain_acc", "forget_acc", "val_acc", "test_acc", "mia", "mia_se", "mia_auc",
              "fs", "nomus", "js_to_retrained", "act_dist_to_retrained", "seconds", "rte"):
        assert k in rec and np.isfinite(rec[k]), k
    assert rec["retain_acc"] == pytest.approx(M.accuracy(toy_original, ld.retain_eval))
    assert rec["test_acc"] == pytest.approx(M.accuracy(toy_original, ld.test))
    assert rec["mia_n"] == min(len(ld.forget_eval.dataset), len(ld.test.dataset))
    direct = M.mia(toy_original, ld.forget_eval, ld.test, seed=0)
    assert rec["mia_single"] == pytest.approx(direct.mean)
    assert rec["mia_auc"] == pytest.approx(direct.auc)
    losses = [M.per_sample_losses(toy_original, ld.forget_eval), M.per_sample_losses(toy_original, ld.test)]
    assert rec["mia"] == pytest.approx(M.averaged_mia(*losses, repeats=10, seed=0).mia)
    one = M.evaluate(toy_original, ld, seed=0, mia_repeats=1)
    assert one["mia"] == pytest.approx(direct.mean)
    assert rec["fs"] == pytest.approx(abs(rec["mia"] - 0.5))
    assert rec["nomus"] == pytest.approx(M.nomus(rec["test_acc"], rec["fs"]))
    assert rec["js_to_retrained"] == 0.0 and rec["act_dist_to_retrained"] == 0.0
    assert rec["rte"] == pytest.approx(5.0)
    bare = M.evaluate(toy_original, ld)
    assert not {"js_to_retrained", "act_dist_to_retrained", "seconds", "rte"} & set(bare)


def test_one_pass_outputs_give_the_same_record(toy_data, toy_original):
    """evaluate() from precomputed outputs (experiment.assess's one pass per split) equals
    the record computed model by model, distances to another model included."""
    ld = toy_loaders(toy_data)
    other = copy.deepcopy(toy_original)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn_like(p))
    slow = M.evaluate(toy_original, ld, retrained=other, seed=3)
    outs = M.all_outputs(toy_original, ld)
    fast = M.evaluate(toy_original, ld, seed=3, outputs=outs,
                      retrained_forget=M.split_outputs(other, ld.forget_eval))
    assert fast.keys() == slow.keys()
    for k in slow:
        assert fast[k] == pytest.approx(slow[k], rel=1e-12, abs=1e-15), k
    assert fast["js_to_retrained"] == pytest.approx(
        M.js_divergence(toy_original, other, ld.forget_eval), rel=1e-12)
    assert fast["act_dist_to_retrained"] == pytest.approx(
        M.activation_distance(toy_original, other, ld.forget_eval), rel=1e-12)
    logits, y = M.predict(toy_original, ld.test)
    assert torch.equal(outs["test"].labels, y)
    assert torch.allclose(outs["test"].logits, logits, atol=1e-6)
