"""The plumbing the notebooks share: compare/summarize, validation-only tuning, forget-person
accuracies and the report, on the toy task from tests/helpers.py (no ORL training needed)."""

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from dlfd import experiment, tuning
from dlfd.profiles import get_profile

from helpers import toy_loaders


class _Forbidden(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise AssertionError("the test split was read during tuning")


def _prep(toy_data, toy_original, tmp_path, test_loader=None):
    ld = toy_loaders(toy_data)
    if test_loader is not None:
        ld.test = test_loader
    retrained = copy.deepcopy(toy_original)
    meta = dict(train_seconds=2.0, history={})
    profile = get_profile("smoke", unlearn_batch_size=12,
                          method_configs={"dlfd": dict(steps=1, monitor_forget_n=8)})
    return experiment.Prepared(profile, 0, Path(tmp_path), None, toy_data.manifest, toy_data, ld,
                               toy_original, retrained, meta, meta, torch.device("cpu"))


def test_compare_and_summarize(toy_data, toy_original, tmp_path):
    prep = _prep(toy_data, toy_original, tmp_path)
    before = [p.detach().clone() for p in toy_original.parameters()]
    runs = {"ft": ("finetune", {"lr": 1e-3}), "dl": ("dlfd", {})}
    comps = [experiment.compare(prep, runs, progress=False) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(before, toy_original.parameters()))
    assert list(comps[0].records) == ["original", "retrained", "ft", "dl"]
    rec = comps[0].records["dl"]
    for key in ("test_acc", "mia", "nomus", "js_to_retrained", "probe_acc", "seconds", "rte"):
        assert key in rec
    assert comps[0].records["retrained"]["js_to_retrained"] == pytest.approx(0.0, abs=1e-9)
    summary = experiment.summarize(comps)
    assert summary["ft"]["n"] == 2
    # the same seed gives the same model, so the spread over the two runs is zero
    assert summary["ft"]["test_acc_std"] == pytest.approx(0.0, abs=1e-12)


def test_method_config_layers_profile_then_overrides(toy_data, toy_original, tmp_path):
    prep = _prep(toy_data, toy_original, tmp_path)
    assert experiment.method_config(prep, "dlfd")["steps"] == 1
    assert experiment.method_config(prep, "dlfd", {"steps": 3})["steps"] == 3
    assert "steps" not in experiment.method_config(prep, "finetune")


def test_tuning_never_reads_the_test_split(toy_data, toy_original, tmp_path):
    prep = _prep(toy_data, toy_original, tmp_path, DataLoader(_Forbidden(), batch_size=2))
    best, rows = tuning.tune([prep], "finetune", {"lr": [1e-4, 1e-2]}, progress=False)
    assert len(rows) == 2 and best["lr"] in (1e-4, 1e-2)
    assert best["lr"] == max(rows, key=lambda r: r["val_nomus"])["lr"]
    for r in rows:
        assert 0.0 <= r["val_nomus"] <= 1.0


def test_grid_is_the_cartesian_product():
    assert tuning.grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]


def test_write_report(tmp_path):
    path = experiment.write_report(tmp_path, {"Table": "| a |\n|---|\n| 1 |"})
    text = path.read_text()
    assert text.startswith("# DLFD tutorial run report") and "## Table" in text


def test_run_folder_names_carry_dataset_profile_and_seeds():
    orl_cpu = get_profile("cpu", dataset="orl")
    assert experiment.run_tag(orl_cpu, 0) == "orl_cpu_seed0"
    assert experiment.run_tag(get_profile("smoke", dataset="orl"), 0) == "orl_smoke_seed0"
    # the split seed shows only when it differs from the initialisation seed
    assert experiment.run_tag(orl_cpu, 3, split_seed=3) == "orl_cpu_seed3"
    assert experiment.run_tag(orl_cpu, 3, split_seed=0) == "orl_cpu_split0_seed3"
    assert (experiment.run_tag(orl_cpu, 1, forget="identities", forget_ids=[4, 7])
            == "orl_cpu_seed1_forget_4-7")
    with pytest.raises(ValueError, match="not adapted"):
        experiment.run_tag(get_profile("cpu"), 0)


def test_load_seed_split_seed_fixes_the_split_and_forget_set(tmp_path):
    _, m0, _, f0 = experiment.load_seed("smoke", 0, tmp_path)
    _, m2, _, f2 = experiment.load_seed("smoke", 2, tmp_path, split_seed=0)
    _, m2own, _, f2own = experiment.load_seed("smoke", 2, tmp_path)
    assert m2.hash == m0.hash and m2own.hash != m0.hash
    assert (f0.name, f2.name, f2own.name) == ("orl_smoke_seed0", "orl_smoke_split0_seed2",
                                              "orl_smoke_seed2")
    _, _, _, fcpu = experiment.load_seed("cpu", 0, tmp_path)
    assert fcpu != f0  # switching profile never collides with another profile's checkpoints
    with pytest.raises(ValueError, match="split_seed=-1"):
        experiment.load_seed("smoke", 0, tmp_path, split_seed=-1)
