"""Checkpoint selection over a run's optimiser steps (``UnlearnConfig.selection``), shared by
every method through :class:`dlfd.unlearn.base.StepSelector` (docs/method.md §5 D3
"test-set selection")."""

from __future__ import annotations

import pytest
import torch
from helpers import toy_loaders
from torch.utils.data import DataLoader, Subset

from dlfd.metrics import nomus
from dlfd.unlearn import REGISTRY, StepSelector, make_config, unlearn
from dlfd.unlearn.base import SELECTION_CV_SPLITS
from dlfd.unlearn.monitor import forget_vs_val

FAST = {"dlfd": dict(steps=2, monitor_splits=2, tau=0.0),
        "dlfd_public": dict(steps=2, monitor_splits=2, tau=0.0)}


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def recorded(monkeypatch):
    """Every state the model passes through, one per optimiser step, in call order."""
    states = []
    real = StepSelector.after_step

    def spy(self, model):
        states.append(snapshot(model))
        real(self, model)

    monkeypatch.setattr(StepSelector, "after_step", spy)
    return states


def with_loader(data, loader):
    data.selection_test = loader
    return data


def with_test(data, toy_data):
    return with_loader(data, toy_loaders(toy_data).test)


@pytest.mark.parametrize("name", ["finetune", "neggrad_plus", "dlfd"])
@pytest.mark.parametrize("mode", ["val", "test"])
def test_selected_model_is_the_best_step_of_the_same_run(name, mode, toy_original, toy_data,
                                                         toy_unlearn_data, recorded):
    before = snapshot(toy_original)
    last = unlearn(name, toy_original, toy_unlearn_data(), FAST.get(name, {}))
    last_states = list(recorded)
    recorded.clear()
    data = with_test(toy_unlearn_data(), toy_data)
    res = unlearn(name, toy_original, data, dict(FAST.get(name, {}), selection=mode))
    info = res.info
    # "last" returns the final step; selection does not change the trajectory.
    assert last.info["selection"] == "last" and last.info["selected_step"] == last.steps - 1
    assert same(snapshot(last.model), last_states[-1])
    assert len(recorded) == len(last_states) == res.steps == info["n_steps"]
    assert all(same(a, b) for a, b in zip(recorded, last_states))
    # The returned weights are those after the selected step, and that step scores best.
    assert same(snapshot(res.model), recorded[info["selected_step"]])
    nonmembers = data.val if mode == "val" else data.selection_test
    scores = []
    for state in recorded:
        probe = last.model  # any model of the architecture will do
        probe.load_state_dict(state)
        a = forget_vs_val(probe, data.forget_eval, nonmembers, "cpu", seed=0,
                          n_splits=SELECTION_CV_SPLITS)
        scores.append(nomus(a["val_acc"], a["score"], 0.5))
    assert info["selected_step"] == max(range(len(scores)), key=scores.__getitem__)
    assert info["selection_score"] == pytest.approx(max(scores))
    assert info["selection_seconds"] > 0 and last.info["selection_seconds"] == 0.0
    assert same(snapshot(toy_original), before)  # the input model is never mutated
    if mode == "test":
        assert "leaks" in info["selection_note"]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_method_reports_its_steps_to_the_selector(name, toy_original, toy_data,
                                                        toy_unlearn_data):
    data = with_test(toy_unlearn_data(), toy_data)
    res = unlearn(name, toy_original, data, dict(FAST.get(name, {}), selection="val"))
    assert res.info["n_steps"] == res.steps > 0
    assert 0 <= res.info["selected_step"] < res.steps


def test_test_selection_needs_a_test_loader(toy_original, toy_unlearn_data):
    with pytest.raises(ValueError, match="selection_test"):
        unlearn("finetune", toy_original, toy_unlearn_data(), {"selection": "test"})
    # dlfd_public selects on test by default, so it needs one too.
    with pytest.raises(ValueError, match="selection_test"):
        unlearn("dlfd_public", toy_original, toy_unlearn_data(), FAST["dlfd_public"])


@pytest.mark.parametrize("name", ["finetune", "scrub", "dlfd"])
def test_unknown_selection_is_refused(name):
    with pytest.raises(ValueError, match="selection"):
        make_config(name, selection="best")


def _load_script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_run_selects_on_the_test_split_and_on_half_of_it(toy_original, toy_data,
                                                             toy_unlearn_data):
    """The benchmark's TestAndHalfSelector keeps, from one run, the steps that two separate
    test-selected runs keep: the best on the whole test split, and the best on half A."""
    bench = _load_script("unlearning")
    test = toy_loaders(toy_data).test
    half_a, half_b = bench.test_halves(len(test.dataset), 0)
    assert not set(half_a) & set(half_b) and len(half_a) + len(half_b) == len(test.dataset)
    config = make_config("finetune", selection="test", epochs=2)
    separate = []
    for loader in (test, DataLoader(Subset(test.dataset, half_a), batch_size=test.batch_size)):
        res = unlearn("finetune", toy_original, with_loader(toy_unlearn_data(), loader), config)
        separate.append((res.info["selected_step"], snapshot(res.model)))
    data = with_loader(toy_unlearn_data(), test)
    selector = bench.TestAndHalfSelector(data, config, "cpu", half_a)
    data.selector = selector
    res = unlearn("finetune", toy_original, data, config)
    assert res.steps > 2
    assert separate[0][0] != separate[1][0]  # the two choices differ: a swap would fail
    assert res.info["selected_step"] == separate[0][0] and same(snapshot(res.model), separate[0][1])
    assert selector.best_a[1] == separate[1][0] and same(selector.best_a[2], separate[1][1])
    with pytest.raises(ValueError, match="fresh StepSelector"):
        unlearn("finetune", toy_original, data, config)  # a selector serves one run


def test_tuning_refuses_test_selection(capsys):
    from dlfd import tuning

    # Refused before any run: the preps are never touched.
    with pytest.raises(ValueError, match="test set"):
        tuning.tune([object()], "finetune", {"lr": [1e-3]}, base={"selection": "test"},
                    progress=False)
    with pytest.raises(ValueError, match="test set"):
        tuning.tune([object()], "finetune", {"selection": ["val", "test"]}, progress=False)
    script = _load_script("tune")
    with pytest.raises(SystemExit):
        script.main(["--selection", "test", "--methods", "finetune"])
    assert "test set" in capsys.readouterr().err


def test_tune_script_epoch_cap_and_grid_sizes():
    script = _load_script("tune")
    from dlfd.profiles import get_profile

    assert script.epoch_cap(get_profile("cpu")) == 4 and script.epoch_cap(get_profile("smoke")) == 2
    for method, space in script.spaces(4).items():
        if method != "dlfd":
            assert max(space["epochs"]) <= 4 and len(tuning_grid(space)) <= 9
    assert script.derive("scrub")({"epochs": 1}) == {"msteps": 1}


def tuning_grid(space):
    from dlfd.tuning import grid

    return grid(space)


@pytest.mark.parametrize("stem, table, request_kind", [
    ("tune_orl_cpu", "TUNED_SETTINGS", "random"),
    ("tune_fashion-mnist_cpu", "TUNED_SETTINGS", "random"),
    ("tune_person_orl_cpu", "PERSON_SETTINGS", "person"),
])
def test_committed_settings_are_the_ones_tuning_chose(stem, table, request_kind):
    """Every default in dlfd/profiles.py traces to a validation run in benchmarks/results/."""
    import json
    from pathlib import Path

    from dlfd import profiles

    report = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                         / f"{stem}.json").read_text())
    assert report.get("request", "random") == request_kind
    assert report["selection"] != "test"
    settings = getattr(profiles, table)[(report["dataset"], report["profile"])]
    for method, chosen in report["chosen"].items():
        assert {k: settings[method][k] for k in chosen} == chosen, method


def test_tune_merge_keeps_earlier_grids_of_a_method_tuned_again():
    """A later part wins for the methods it tuned, and the earlier grid of such a method stays
    in the report as the evidence for the settings the later grid did not search."""
    script = _load_script("tune")

    def part(seeds, split_seed, grids):
        return dict(seeds=seeds, split_seed=split_seed, total_seconds=1.0,
                    spaces={m: {"lr": [lr]} for m, lr in grids.items()},
                    chosen={m: {"lr": lr} for m, lr in grids.items()},
                    grid={m: [{"lr": lr, "val_nomus": 0.5}] for m, lr in grids.items()},
                    seconds={m: {"chosen": 1.0} for m in grids})

    first = part(2, None, {"finetune": 1e-3, "dlfd": 1e-3})
    again = part(10, 0, {"dlfd": 1e-4})
    merged = script.merge([first, again])
    assert merged["chosen"] == {"finetune": {"lr": 1e-3}, "dlfd": {"lr": 1e-4}}
    assert merged["seeds_per_method"] == {"finetune": 2, "dlfd": 10}
    assert merged["split_seed_per_method"] == {"finetune": None, "dlfd": 0}
    assert merged["earlier_grids"] == {
        "dlfd": [{"space": {"lr": [1e-3]}, "seeds": 2, "grid": [{"lr": 1e-3, "val_nomus": 0.5}]}]}
    # merging the merged report with yet another part carries the history on
    third = script.merge([merged, part(10, 0, {"dlfd": 3e-4})])
    assert [g["seeds"] for g in third["earlier_grids"]["dlfd"]] == [2, 10]
