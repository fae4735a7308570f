"""The DLFD unlearning method (docs/method.md §2.1–2.2, steps 1–4) on the tiny toy task."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from dlfd.synth import SynthConfig
from dlfd.unlearn import UnlearnData, feature_distancing, get_method, make_config, monitor, unlearn
from dlfd.unlearn.feature_distancing import DLFDConfig

# No monitoring budget: which estimates run would otherwise depend on the machine's speed.
FAST = dict(steps=2, monitor_splits=2, monitor_budget=None)


@pytest.fixture
def fresh_data(toy_unlearn_data):
    """Factory: UnlearnData over fresh loaders, without the original (DLFD needs none)."""
    return lambda: toy_unlearn_data(original=None)


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_registered_with_paper_defaults():
    m = get_method("dlfd")
    assert m.config_cls is DLFDConfig
    c = make_config("dlfd")
    assert (c.lr, c.w_ot, c.w_cls_start, c.w_cls_end, c.steps, c.tau) == (0.008, 3.0, 0.0, 1.0,
                                                                          15, 0.15)
    assert c.phi == "logits" and c.dynamic and c.use_ot and c.use_cls and not c.keep_best
    assert 0 < c.step_size < 0.1  # pixel units, a few /255


def test_one_epoch_new_model_input_untouched_and_trace(toy_original, fresh_data):
    data = fresh_data()
    before = snapshot(toy_original)
    res = unlearn("dlfd", toy_original, data, dict(FAST, tau=0.0, monitor_every=2))
    after = toy_original.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # params and BN buffers
    assert res.model is not toy_original
    assert any(not torch.equal(before[k], v) for k, v in res.model.state_dict().items())
    n = len(data.retain)
    assert res.steps == n and len(res.trace) == n
    assert [r["batch"] for r in res.trace] == list(range(n))
    keys = {"batch", "synthesised", "ot_before", "ot_after", "ce", "score", "lr", "w_cls"}
    assert all(keys <= set(r) for r in res.trace)
    assert res.trace[0]["w_cls"] == 0.0 and res.trace[-1]["w_cls"] == 1.0
    assert all(r["lr"] == 0.008 for r in res.trace)
    assert all(r["ot_after"] > r["ot_before"] for r in res.trace)
    info = res.info
    assert info["n_synthesised"] == n and info["monitoring_seconds"] > 0
    assert info["synthesis_seconds"] > 0 and not res.model.training
    # Passes: per synthesised batch K forward+backward, φ(x_f) and a diagnostic pass; one
    # update each; the monitor runs one batched pass over both subsamples per call.
    calls = (n - 1) // 2  # after every second batch, none after the last
    assert info["monitor_calls"] == calls
    assert info["forward_passes"] == n * (FAST["steps"] + 2) + n + calls
    # Correctly labelled samples and perturbation size, per batch and as means.
    assert all(0.0 <= r["frac_correct"] <= 1.0 and r["delta_linf"] > 0 for r in res.trace)
    assert info["frac_correct_mean"] == pytest.approx(sum(r["frac_correct"] for r in res.trace) / n)
    assert info["linf_mean"] == pytest.approx(sum(r["delta_linf"] for r in res.trace) / n)
    assert info["backward_passes"] == n * FAST["steps"] + n


@pytest.mark.parametrize("tau, expect", [(0.0, "all"), (0.5, "first"), (1.0, "none")])
def test_threshold_extremes(toy_original, fresh_data, tau, expect):
    """Until the first estimate FS counts as 0.5: τ = 0.5 synthesises only the first batch
    (the toy original's FS is below 0.5), τ = 1.0 never."""
    res = unlearn("dlfd", toy_original, fresh_data(), dict(FAST, tau=tau, monitor_every=1))
    flags = [r["synthesised"] for r in res.trace]
    n = len(flags)
    assert flags == {"all": [True] * n, "first": [True] + [False] * (n - 1),
                     "none": [False] * n}[expect]
    assert res.trace[0]["score"] is None
    assert all(r["score"] is not None and 0 <= r["score"] <= 0.5 for r in res.trace[1:])


def test_not_dynamic_always_synthesises_without_monitoring(toy_original, fresh_data):
    res = unlearn("dlfd", toy_original, fresh_data(), dict(FAST, dynamic=False, tau=1.0))
    assert all(r["synthesised"] for r in res.trace)
    assert all(r["score"] is None for r in res.trace)
    assert res.info["monitoring_seconds"] == 0.0 and res.info["monitor_calls"] == 0


def test_dynamic_switching_follows_the_latest_estimate(toy_original, fresh_data, monkeypatch):
    """Scripted scores: synthesise until the first estimate, then while FS ≥ τ, plain CE
    below, resume when it rises."""
    scripted = iter([0.3, 0.1, 0.2, 0.05, 0.4, 0.4])
    calls = []

    def fake(self, model):
        calls.append(model.training)
        return {"score": next(scripted), "mia": 0.0, "val_acc": 0.0}

    monkeypatch.setattr(feature_distancing.ForgettingMonitor, "__call__", fake)
    data = fresh_data()  # 5 retain batches
    res = unlearn("dlfd", toy_original, data, dict(FAST, tau=0.15, monitor_every=1,
                                                   monitor_smoothing=1))
    assert [r["score"] for r in res.trace] == [None, 0.3, 0.1, 0.2, 0.05]
    assert [r["synthesised"] for r in res.trace] == [True, True, False, True, False]
    assert [r["ot_before"] is None for r in res.trace] == [False, False, True, False, True]
    assert len(calls) == 4  # after batches 0-3, not after the last


def test_switching_compares_tau_with_the_mean_of_the_last_two(toy_original, fresh_data,
                                                              monkeypatch):
    """The default smoothing: one noisy low estimate does not switch synthesis off."""
    scripted = iter([0.3, 0.1, 0.2, 0.05, 0.4, 0.4])

    def fake(self, model):
        return {"score": next(scripted), "mia": 0.0, "val_acc": 0.0}

    monkeypatch.setattr(feature_distancing.ForgettingMonitor, "__call__", fake)
    res = unlearn("dlfd", toy_original, fresh_data(), dict(FAST, tau=0.15, monitor_every=1))
    assert res.trace[0]["score"] is None
    assert [r["score"] for r in res.trace[1:]] == pytest.approx([0.3, 0.2, 0.15, 0.125])
    assert [r["synthesised"] for r in res.trace] == [True, True, True, True, False]


def test_monitor_budget_defers_estimates(toy_original, fresh_data, monkeypatch):
    """An estimate that would take the monitor over its share of the run's time waits."""
    def costly(self, model):
        self.seconds += 100.0  # pretend each estimate took 100 s
        self.calls += 1
        return {"score": 0.3, "mia": 0.8, "val_acc": 0.5}

    monkeypatch.setattr(feature_distancing.ForgettingMonitor, "__call__", costly)
    capped = unlearn("dlfd", toy_original, fresh_data(),
                     dict(FAST, tau=0.0, monitor_every=1, monitor_budget=0.1))
    assert capped.info["monitor_calls"] == 1 and capped.info["monitor_deferred"] == 1
    free = unlearn("dlfd", toy_original, fresh_data(),
                   dict(FAST, tau=0.0, monitor_every=1, monitor_budget=None))
    assert free.info["monitor_calls"] == 4 and free.info["monitor_deferred"] == 0


def test_monitor_batched_pass_equals_the_loader_pass(toy_original, fresh_data):
    data = fresh_data()
    cfg = make_config("dlfd", monitor_forget_n=10, monitor_val_n=12, monitor_splits=2)
    mon = monitor.ForgettingMonitor.for_dlfd(data, cfg, "cpu")
    mon.chunk = 7  # several chunks, of unequal size
    direct = monitor.forget_vs_val(toy_original, mon.forget, mon.nonmembers, "cpu", seed=0,
                                   n_splits=2)
    assert mon(toy_original) == pytest.approx(direct)
    assert mon(toy_original) == pytest.approx(direct)  # from the cached tensors


def test_monitor_channels_last_gives_the_same_estimate(toy_original, fresh_data):
    """The layout checkpoint selection uses on CPU changes speed, not the score; the model's
    own parameters keep their layout."""
    data = fresh_data()
    default, last = (monitor.ForgettingMonitor(data.forget_eval, data.val, "cpu", seed=0,
                                               n_splits=3, channels_last=flag)
                     for flag in (False, True))
    assert last(toy_original) == pytest.approx(default(toy_original))
    assert last._cache[0].is_contiguous(memory_format=torch.channels_last)
    assert all(p.is_contiguous() for p in toy_original.parameters())


def test_monitor_chunk_pixels_sets_the_chunk_and_keeps_the_logits(toy_original, fresh_data):
    """Cache-sized chunks (checkpoint selection on CPU) change speed, not the logits: eval
    mode makes each image's logits independent of the others in its chunk."""
    data = fresh_data()
    whole, chunked = (monitor.ForgettingMonitor(data.forget_eval, data.val, "cpu", seed=0,
                                                n_splits=3, channels_last=True, **kw)
                      for kw in ({}, dict(chunk_pixels=2 * 3 * 16 * 16)))
    x_whole, x_chunked = whole.logits(toy_original)[0], chunked.logits(toy_original)[0]
    n_images, pixels = len(chunked._cache[0]), chunked._cache[0][0].numel()
    assert chunked.chunk == max(1, 2 * 3 * 16 * 16 // pixels) < n_images  # several chunks
    assert whole.chunk >= n_images  # one chunk
    torch.testing.assert_close(x_chunked, x_whole, rtol=1e-5, atol=1e-6)
    assert chunked(toy_original) == pytest.approx(whole(toy_original))
    with pytest.raises(ValueError, match="chunk_pixels"):
        monitor.ForgettingMonitor(data.forget_eval, data.val, "cpu", seed=0, n_splits=3,
                                  chunk_pixels=0)


@pytest.mark.parametrize("mode", ["train", "frozen"])
def test_bn_updates(toy_original, fresh_data, mode):
    """"frozen": train-mode forward, running statistics untouched (momentum restored)."""
    res = unlearn("dlfd", toy_original, fresh_data(), dict(FAST, dynamic=False, bn_updates=mode))
    new, old = res.model.state_dict(), toy_original.state_dict()
    stats = [k for k in new if "running_" in k]
    assert stats
    assert all(torch.equal(new[k], old[k]) for k in stats) == (mode == "frozen")
    assert any(not torch.equal(new[k], old[k]) for k in new if k not in stats)
    momenta = {m.momentum for m in res.model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {m.momentum for m in toy_original.modules()
                       if isinstance(m, torch.nn.BatchNorm2d)}


def test_monitor_uses_a_fixed_forget_subsample_against_validation(toy_original, fresh_data,
                                                                  monkeypatch):
    seen = []
    real = monitor.mia_from_losses

    def spy(members, nonmembers, **kw):
        seen.append((len(members), len(nonmembers), kw))
        return real(members, nonmembers, **kw)

    monkeypatch.setattr(monitor, "mia_from_losses", spy)
    data = fresh_data()
    res = unlearn("dlfd", toy_original, data, dict(FAST, tau=0.0, monitor_every=2,
                                                   monitor_forget_n=10))
    assert len(seen) == (len(data.retain) - 1) // 2 == res.info["monitor_calls"]
    assert all(s == (10, len(data.val.dataset), {"seed": 0, "n_splits": 2}) for s in seen)
    cfg = make_config("dlfd", monitor_forget_n=10)
    first, second = (monitor.ForgettingMonitor.for_dlfd(data, cfg, "cpu") for _ in range(2))
    assert first.forget.dataset.indices == second.forget.dataset.indices  # seeded, fixed


def test_use_ot_false_has_no_ot_part(toy_original, fresh_data):
    """The switch equals a zero OT weight exactly (different code paths), and both differ
    from the default run, so the OT term really drives the synthesis when on."""
    kw = dict(FAST, dynamic=False, phi="embedding")
    off = unlearn("dlfd", toy_original, fresh_data(), dict(kw, use_ot=False))
    zero = unlearn("dlfd", toy_original, fresh_data(), dict(kw, w_ot=0.0))
    on = unlearn("dlfd", toy_original, fresh_data(), kw)
    s_off, s_zero, s_on = (r.model.state_dict() for r in (off, zero, on))
    assert all(torch.equal(s_off[k], s_zero[k]) for k in s_off)
    assert any(not torch.equal(s_off[k], s_on[k]) for k in s_off)
    assert [r["ce"] for r in off.trace] == [r["ce"] for r in zero.trace]


def test_keep_best_restores_the_best_checkpoint(toy_original, fresh_data, monkeypatch):
    scripted = iter([(0.2, 0.9), (0.1, 0.6), (0.1, 0.7), (0.3, 0.5), (0.3, 0.5)])

    def fake(self, model):
        score, acc = next(scripted)
        return {"score": score, "mia": 0.5 + score, "val_acc": acc}

    monkeypatch.setattr(feature_distancing.ForgettingMonitor, "__call__", fake)
    res = unlearn("dlfd", toy_original, fresh_data(),
                  dict(FAST, tau=0.0, monitor_every=2, keep_best=True))
    # Candidates: after batch 1 (0.9 − 0.2), after batch 3 (0.6 − 0.1), the last (0.7 − 0.1).
    assert res.info["best_batch"] == 1
    assert res.info["best_criterion"] == pytest.approx(0.7)


def test_two_epochs_and_schedule(toy_original, fresh_data):
    data = fresh_data()
    res = unlearn("dlfd", toy_original, data, dict(FAST, epochs=2, dynamic=False))
    n = len(data.retain)
    assert len(res.trace) == 2 * n and [r["epoch"] for r in res.trace] == [0] * n + [1] * n
    w = [r["w_cls"] for r in res.trace]
    assert w == sorted(w) and w[0] == 0.0 and w[-1] == 1.0


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, name", [
    ({"steps": -1}, "steps"), ({"steps": 1.5}, "steps"), ({"ot_eps": 0.0}, "ot_eps"),
    ({"ot_eps": -0.01}, "ot_eps"), ({"phi": "pixels"}, "phi"), ({"tau": 0.7}, "tau"),
    ({"tau": -0.1}, "tau"), ({"lr": 0.0}, "lr"), ({"monitor_every": 0}, "monitor_every"),
    ({"ot_iters": 0}, "ot_iters"), ({"step_size": -1 / 255}, "step_size"),
    ({"eps_px": 0.0}, "eps_px"), ({"monitor_forget_n": 1}, "monitor_forget_n"),
    ({"epochs": 0}, "epochs"), ({"w_ot": float("inf")}, "w_ot"),
    ({"bn_updates": "off"}, "bn_updates"), ({"selection": "best"}, "selection"),
    ({"monitor_smoothing": 0}, "monitor_smoothing"), ({"clamp": "none"}, "clamp"),
    ({"step_unit": "px"}, "step_unit"), ({"monitor_budget": 0.0}, "monitor_budget"),
])
def test_bad_config_raises_naming_the_field(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_config("dlfd", **kwargs)
    with pytest.raises(ValueError, match=rf"^DLFDConfig\.{name}="):
        DLFDConfig(**kwargs)


def test_synth_config_carries_the_dlfd_settings():
    """One set of defaults: the synthesizer's are DLFD's, and DLFD passes its own on."""
    assert make_config("dlfd").synth_config(0.0) == SynthConfig()
    cfg = make_config("dlfd", steps=3, phi="embedding", eps_px=0.1, ot_on_clean=True)
    assert cfg.synth_config(0.5) == SynthConfig(steps=3, phi="embedding", eps_px=0.1,
                                                ot_on_clean=True, w_cls=0.5)


class _Untouchable(Dataset):
    """A retain set that fails the test if any sample is read: errors must come first."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        raise AssertionError("training started before the configuration was validated")


def _data_with(forget_ds, base: UnlearnData, forget_bs=4):
    return UnlearnData(retain=DataLoader(_Untouchable(), batch_size=4),
                       forget=DataLoader(forget_ds, batch_size=forget_bs,
                                         shuffle=len(forget_ds) > 0),
                       retain_eval=base.retain_eval, forget_eval=base.forget_eval, val=base.val,
                       num_classes=base.num_classes, norm=base.norm)


def test_bad_data_raises_before_training(toy_original, fresh_data):
    x = torch.zeros(6, 3, 16, 16)
    y = torch.zeros(6, dtype=torch.long)
    empty = TensorDataset(x[:0], y[:0])
    with pytest.raises(ValueError, match="empty"):
        unlearn("dlfd", toy_original, _data_with(empty, fresh_data()), FAST)
    with pytest.raises(ValueError, match="batch_size=8"):
        unlearn("dlfd", toy_original, _data_with(TensorDataset(x, y), fresh_data(), 8), FAST)
    # A wrong config object is refused before anything runs, too.
    with pytest.raises(ValueError, match="steps"):
        unlearn("dlfd", toy_original, _data_with(TensorDataset(x, y), fresh_data()), {"steps": -3})
    # The untouchable retain set is really untouchable.
    with pytest.raises(AssertionError, match="validated"):
        unlearn("dlfd", toy_original, _data_with(TensorDataset(x, y), fresh_data()), FAST)
