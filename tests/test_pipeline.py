"""The main job's safety rules, the shared metrics files, the committed default split and
the profiles' per-dataset settings."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dlfd import experiment, pipeline
from dlfd.data import Manifest
from dlfd.profiles import DATASET_SETTINGS, PROFILES, TUNED_SETTINGS, get_profile
from dlfd.source import Source
from dlfd.sources import orl_source

ROOT = Path(__file__).resolve().parents[1]


def test_committed_manifest_is_the_default_split_for_seed0():
    committed = Manifest.load(ROOT / "data" / "orl_seed0_manifest.csv")
    for name in PROFILES:  # every profile shares the split protocol on ORL
        m = experiment.split_for(orl_source(), get_profile(name), seed=0)
        assert m.to_csv() == committed.to_csv()
        assert experiment.split_for(orl_source(), name, seed=0).hash == committed.hash
    assert committed.sizes() == {"retain": 90, "forget": 30, "val": 40, "test": 240}


def test_run_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists"):
        pipeline.prepare_run_folder(out)
    with pytest.raises(FileExistsError, match="not a dlfd run folder"):
        pipeline.prepare_run_folder(out, force=True)
    assert (out / "precious.txt").read_text() == "keep me"


def test_force_replaces_only_a_run_folder(tmp_path):
    out = pipeline.prepare_run_folder(tmp_path / "run")
    (out / "old.json").write_text("{}")
    pipeline.prepare_run_folder(out, force=True)
    assert not (out / "old.json").exists() and (out / pipeline.MARKER).exists()


def test_record_and_merge(tmp_path):
    # None, so that a notebook cell ending with record(...) echoes nothing
    assert pipeline.record(tmp_path, "b", {"x": np.float32(0.5), "n": [np.int64(3)]}) is None
    pipeline.record(tmp_path, "a", {"y": 1})
    merged = pipeline.merge_metrics(tmp_path)
    assert merged == {"a": {"y": 1}, "b": {"n": [3], "x": 0.5}}
    assert json.loads((tmp_path / "metrics.json").read_text()) == merged


def test_cli_rejects_bad_profile_before_touching_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        pipeline.main(["run", "--profile", "nope", "--out", str(out)])
    assert e.value.code == 2
    assert "profile='nope'" in capsys.readouterr().err
    assert not out.exists()


def test_get_profile_overrides_and_errors():
    assert get_profile("cpu", seeds=5).seeds == 5
    with pytest.raises(ValueError, match="expected one of"):
        get_profile("gpu")


def test_cli_rejects_bad_dataset_before_touching_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        pipeline.main(["run", "--dataset", "imagenet", "--out", str(out)])
    assert e.value.code == 2 and "imagenet" in capsys.readouterr().err
    assert not out.exists()


def test_orl_profiles_are_unchanged_by_adaptation_except_tuned_settings():
    for name, registered in PROFILES.items():
        adapted = get_profile(name, dataset="orl")
        assert adapted.dataset == "orl" and registered.dataset is None
        tuned = TUNED_SETTINGS.get(("orl", name))
        assert adapted.method_configs == (tuned or registered.method_configs)
        ignore = {"dataset": None, "method_configs": None, "settings_from": None}
        assert {**adapted.as_dict(), **ignore} == {**registered.as_dict(), **ignore}


def test_fashion_mnist_settings_come_from_one_table():
    p = get_profile("cpu", dataset="fmnist")
    assert p.dataset == "fashion-mnist"
    assert (p.image_size, p.unlearn_batch_size, p.n_train, p.n_val, p.n_test) == (32, 32, 200,
                                                                                  100, 500)
    assert get_profile("cpu", dataset="fashion-mnist", subsample=500).n_train == 50
    assert get_profile("cpu", dataset="fashion-mnist", subsample=10).n_train == 2
    # an adapted profile passes through unchanged (the benchmark adapts, then prepare does)
    q = get_profile("cpu", dataset="fashion-mnist", subsample=500, seeds=1)
    assert get_profile(q, dataset="fashion_mnist") is q
    # a caller's change survives a later adaptation
    assert get_profile(get_profile("cpu", n_train=7), dataset="fashion-mnist").n_train == 7
    assert get_profile("cpu", dataset="cifar10").image_size == PROFILES["cpu"].image_size
    assert set(DATASET_SETTINGS) <= {"orl", "fashion-mnist", "cifar10", "mufac", "imagefolder",
                                     "csv"}


@pytest.mark.parametrize("kwargs, named", [
    (dict(dataset="orl", subsample=2000), "subsample=2000"),
    (dict(dataset="fashion-mnist", subsample=0), "subsample=0"),
    (dict(dataset="imagenet"), "imagenet"),
])
def test_get_profile_rejects_bad_dataset_settings(kwargs, named):
    with pytest.raises(ValueError, match=named):
        get_profile("cpu", **kwargs)


def test_an_adapted_profile_is_refused_for_another_dataset():
    p = get_profile("smoke", dataset="fashion-mnist")
    with pytest.raises(ValueError, match="adapted to 'fashion-mnist', not 'orl'"):
        get_profile(p, dataset="orl")


def test_split_for_applies_the_dataset_settings():
    """A 10-class array source named like Fashion-MNIST gets the table's per-class counts,
    whatever profile the caller passes (the notebooks pass the unadapted one)."""
    per_class = 200 + 100 + 500
    labels = [i % 10 for i in range(10 * per_class)]
    images = np.arange(len(labels), dtype=np.int64)

    def load(key):  # distinct pixels per item, so no two items share a content hash
        return np.frombuffer(images[int(key)].tobytes(), dtype=np.uint8).reshape(2, 4)

    source = Source("fashion-mnist", "-", [str(i) for i in range(len(labels))], labels, load,
                    [str(c) for c in range(10)])
    m = experiment.split_for(source, get_profile("smoke"), seed=0)
    assert m.sizes() == {"retain": 1500, "forget": 500, "val": 1000, "test": 5000}
    small = experiment.split_for(source, get_profile("smoke", dataset="fashion-mnist",
                                                     subsample=100), seed=0)
    assert small.sizes()["retain"] + small.sizes()["forget"] == 100


def _tiny_imagefolder(root, classes=2, per_class=3):
    from PIL import Image
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((8, 8), 10 * (c * per_class + i), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


@pytest.mark.parametrize("extra, named", [
    ([], "needs --data-root DIR"),
    (["--data-root", "/no/such/folder"], "--data-root /no/such/folder does not exist"),
])
def test_cli_checks_the_data_root_before_touching_the_folder(tmp_path, capsys, extra, named):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        pipeline.main(["run", "--dataset", "imagefolder", "--out", str(out), *extra])
    err = capsys.readouterr().err
    assert e.value.code == 2 and named in err and "sub-folder per class" in err
    assert not out.exists()


def test_cli_rejects_a_root_without_images(tmp_path, capsys):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(SystemExit):
        pipeline.main(["run", "--dataset", "imagefolder", "--data-root", str(tmp_path / "empty"),
                       "--out", str(tmp_path / "run")])
    assert "holds no class sub-folders with images" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


class _FakePapermill:
    """Stands in for papermill: records each call and, for notebook 01, the numbers it would
    save (an original near chance whose MIA equals the retrained model's)."""

    def __init__(self):
        self.calls = []
        self.timeouts = []  # papermill's execution_timeout of each call

    def execute_notebook(self, src, dst, parameters, **kwargs):
        self.calls.append((Path(src).name, dict(parameters)))
        self.timeouts.append(kwargs.get("execution_timeout"))
        Path(dst).write_text("{}")
        if Path(src).name.startswith("01"):
            rec = dict(test_acc=0.55, mia=0.5, mia_se=0.03)
            pipeline.record(parameters["out_dir"], "01_train_original",
                            dict(original=rec, retrained=rec, split_sizes={"forget": 90}))


def test_cli_passes_the_data_root_to_every_notebook(tmp_path, monkeypatch, capsys):
    fake = _FakePapermill()
    monkeypatch.setitem(sys.modules, "papermill", fake)
    root = _tiny_imagefolder(tmp_path / "faces")
    out = tmp_path / "run"
    assert pipeline.main(["run", "--profile", "smoke", "--dataset", "imagefolder",
                          "--data-root", str(root), "--out", str(out)]) == 0
    assert [name for name, _ in fake.calls] == list(pipeline.NOTEBOOKS)
    for _, params in fake.calls:
        assert params == dict(profile="smoke", seed=0, device="auto", dataset="imagefolder",
                              dataset_root=str(root.resolve()), out_dir=str(out.resolve()))
    merged = json.loads((out / "metrics.json").read_text())
    assert set(merged["notebook_seconds"]) == {Path(n).stem for n in pipeline.NOTEBOOKS}
    assert all(s >= 0 for s in merged["notebook_seconds"].values())
    # two classes: 0.55 is within 1.5x chance, and the MIA gap is zero
    assert len(merged["warnings"]) == 2
    assert "warning: the original model is near chance" in capsys.readouterr().out


def test_default_dataset_root_is_none(tmp_path, monkeypatch):
    fake = _FakePapermill()
    monkeypatch.setitem(sys.modules, "papermill", fake)
    pipeline.run_pipeline(tmp_path / "run", profile="smoke", notebooks=pipeline.NOTEBOOKS[1:2],
                          progress=False)
    assert fake.calls[0][1]["dataset_root"] is None
    assert fake.timeouts == [None]  # no cell limit unless asked for
    merged = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert merged["warnings"] == [] and list(merged["notebook_seconds"]) == [
        "02_correlation_collapse"]


def test_strip_for_commit_drops_widgets_and_injected_parameters():
    widget = {"output_type": "display_data",
              "data": {pipeline.WIDGET_MIME: {"model_id": "x"}, "text/plain": "HBox()"}}
    figure = {"output_type": "display_data", "data": {"image/png": "iVBOR"}}
    nb = {"metadata": {"widgets": {"state": {}}, "papermill": {"duration": 3.0}, "kernelspec": {}},
          "cells": [{"cell_type": "code", "metadata": {"tags": ["injected-parameters"]},
                     "source": "out_dir = '/abs/path'", "outputs": []},
                    {"cell_type": "code", "metadata": {"papermill": {"duration": 1.0}, "tags": []},
                     "source": "plot()", "outputs": [widget, figure]}]}
    clean = pipeline.strip_for_commit(nb)
    assert [c["source"] for c in clean["cells"]] == ["plot()"]
    assert clean["cells"][0]["outputs"] == [figure]
    assert clean["cells"][0]["metadata"] == {"tags": []}
    assert set(clean["metadata"]) == {"kernelspec"}
    assert len(nb["cells"]) == 2  # the input is not modified


def test_cli_cell_timeout_reaches_papermill(tmp_path, monkeypatch):
    fake = _FakePapermill()
    monkeypatch.setitem(sys.modules, "papermill", fake)
    assert pipeline.main(["run", "--profile", "smoke", "--out", str(tmp_path / "run"),
                          "--only", "02", "--cell-timeout", "7"]) == 0
    assert fake.timeouts == [7.0]
