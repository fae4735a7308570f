"""The main job end to end: papermill executes every notebook with profile="smoke" into one
run folder, in order, and the numbers they recorded are checked."""

import json

import pytest

from dlfd import pipeline

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    merged = pipeline.run_pipeline(out, profile="smoke", seed=0, device="cpu", progress=False)
    return out, merged


def test_run_folder_contents(smoke_run):
    out, merged = smoke_run
    for nb in pipeline.NOTEBOOKS:
        assert (out / "notebooks" / nb).is_file()
    assert (out / "orl_seed0" / "original.pt").is_file()
    assert (out / "orl_seed0" / "retrained.pt").is_file()
    assert (out / "orl_seed0" / "manifest.csv").is_file()
    assert json.loads((out / "metrics.json").read_text()) == merged


def test_notebook01_metrics(smoke_run):
    m = smoke_run[1]["01_train_original"]
    assert m["split_sizes"] == {"retain": 90, "forget": 30, "val": 40, "test": 240}
    chance = 1 / 40
    assert m["original_train_acc"] > 5 * chance
    assert m["original"]["test_acc"] > 2 * chance
    # the original saw the forget images, the retrained model did not
    assert m["original"]["forget_acc"] >= m["retrained"]["forget_acc"]
    assert 0.0 <= m["original"]["mia"] <= 1.0


def test_rerun_refuses_existing_folder(smoke_run):
    with pytest.raises(FileExistsError):
        pipeline.run_pipeline(smoke_run[0], profile="smoke", notebooks=())
