"""The main job's safety rules, the shared metrics files and the committed default split."""

import json
from pathlib import Path

import pytest

from dlfd import data as D
from dlfd import experiment, pipeline
from dlfd.profiles import PROFILES, get_profile

ROOT = Path(__file__).resolve().parents[1]


def test_committed_manifest_is_the_default_split_for_seed0():
    committed = D.Manifest.load(ROOT / "data" / "orl_seed0_manifest.csv")
    for name in PROFILES:  # every profile shares the split protocol on ORL
        m = experiment.split_for(D.orl_source(), get_profile(name), seed=0)
        assert m.to_csv() == committed.to_csv()
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
    import numpy as np

    pipeline.record(tmp_path, "b", {"x": np.float32(0.5), "n": [np.int64(3)]})
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
