"""The plumbing the notebooks share: compare/summarize, validation-only tuning, forget-person
accuracies and the report, on the toy task from tests/helpers.py (no ORL training needed)."""

import copy
import dataclasses
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


def test_compare_reuses_saved_records_only_for_the_same_settings(toy_data, toy_original,
                                                                 tmp_path, monkeypatch):
    prep = _prep(toy_data, toy_original, tmp_path)
    first = experiment.compare(prep, {"ft": ("finetune", {"lr": 1e-3})}, progress=False)
    assert (tmp_path / "records" / "ft.json").is_file()
    calls = []
    real = experiment.unlearn
    monkeypatch.setattr(experiment, "unlearn", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    again = experiment.compare(prep, {"ft": ("finetune", {"lr": 1e-3})}, progress=False,
                               reuse=["ft", "original", "retrained"])
    assert calls == [] and "ft" not in again.results  # loaded, not rerun: no model
    for label, rec in first.records.items():
        assert again.records[label].keys() == rec.keys()
        for k, v in rec.items():
            assert again.records[label][k] == pytest.approx(v, nan_ok=True), (label, k)
    other = experiment.compare(prep, {"ft": ("finetune", {"lr": 1e-2})}, progress=False,
                               reuse=["ft"])
    assert calls == ["finetune"] and "ft" in other.results  # other settings: rerun


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


def test_person_score_counts_the_persons_photos_and_everyone_elses(toy_data, toy_original,
                                                                   tmp_path):
    """person_val_record against a direct count, on a model that predicts one class for all."""
    prep = _prep(toy_data, toy_original, tmp_path)

    class Constant(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), toy_data.num_classes)
            out[:, 0] = 1.0
            return out

    # the scorer reads the person(s) from the forget labels: make it one class
    labels = {**toy_data.labels, "forget": torch.ones_like(toy_data.labels["forget"])}
    prep.data = dataclasses.replace(toy_data, labels=labels)
    rec = tuning.person_val_record(Constant(), prep)
    persons = {1}
    val = toy_data.labels["val"]
    mine = torch.tensor([int(v) in persons for v in val])
    # forget_eval still holds the original forget photos, scored against their own labels
    forget_hits = toy_data.labels["forget"] == 0
    person_hits = torch.cat([forget_hits, val[mine] == 0])
    assert rec["person_acc"] == pytest.approx(float(person_hits.float().mean()))
    assert rec["others_val_acc"] == pytest.approx(float((val[~mine] == 0).float().mean()))
    same = tuning.person_val_record(toy_original, prep)
    assert same["others_val_drop"] == 0.0
    assert tuning.person_ok({"person_acc": 0.0, "others_val_drop": 0.1})
    assert not tuning.person_ok({"person_acc": 0.0, "others_val_drop": 0.11})
    assert not tuning.person_ok({"person_acc": 0.2, "others_val_drop": 0.0})
    original = {"person_forget_acc": 1.0, "person_heldout_acc": 0.6, "others_test_acc": 0.77}
    forgot = {"person_forget_acc": 0.0, "person_heldout_acc": 0.0, "others_test_acc": 0.70}
    assert tuning.person_reached(forgot, original)
    assert not tuning.person_reached({**forgot, "others_test_acc": 0.66}, original)
    assert not tuning.person_reached({**forgot, "person_heldout_acc": 0.2}, original)
