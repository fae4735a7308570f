"""The main job end to end: papermill executes every notebook with profile="smoke" into one
run folder, in order, and the numbers they recorded are checked."""

import json
import subprocess
import sys

import pytest

from dlfd import pipeline

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The job as a user starts it, in its own process: papermill's event loop then shares
    nothing with what earlier tests left in this one (Playwright's, tests/test_browser.py)."""
    out = tmp_path_factory.mktemp("smoke") / "run"
    # no smoke cell takes a minute: a hung kernel fails with its cell named
    cmd = [sys.executable, "-m", "dlfd", "run", "--profile", "smoke", "--seed", "0",
           "--device", "cpu", "--out", str(out), "--cell-timeout", "600"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return out, json.loads((out / "metrics.json").read_text())


def test_run_folder_contents(smoke_run):
    out, merged = smoke_run
    for nb in pipeline.NOTEBOOKS:
        assert (out / "notebooks" / nb).is_file()
    assert (out / "orl_smoke_seed0" / "original.pt").is_file()
    assert (out / "orl_smoke_seed0" / "retrained.pt").is_file()
    assert (out / "orl_smoke_seed0" / "manifest.csv").is_file()
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


def test_notebook02_compares_the_error_maximising_methods(smoke_run):
    m = smoke_run[1]["02_correlation_collapse"]
    assert set(m["summary"]) == {"original", "retrained", "finetune", "neggrad", "unsir",
                                 "bad_teacher", "dlfd"}
    # the collapse curve: every error-maximising method at two strengths on the smoke profile
    assert {k: [lr for lr, _ in v] for k, v in m["sweep"].items()} == {
        k: [1e-3, 1e-2] for k in ("neggrad", "unsir", "bad_teacher")}
    for rec in m["summary"].values():
        assert 0.0 <= rec["test_acc_mean"] <= 1.0
        assert 0.0 <= rec["probe_acc_mean"] <= 1.0
    assert m["summary"]["original"]["cka_to_original_mean"] > 0.999


def test_notebook03_synthesis_and_clamp_defect(smoke_run):
    m = smoke_run[1]["03_feature_distancing_synthesizer"]
    assert m["synthesis"]["ot_after"] > m["synthesis"]["ot_before"]
    assert len(m["synthesis"]["ot_trace"]) == 16  # K = 15 steps, K + 1 iterates
    # clamping normalised tensors to [0, 1] (the public code) costs accuracy
    assert m["clamp_defect"]["pixel_space"] > m["clamp_defect"]["normalised_clamp"]


def test_notebook04_report_and_tables(smoke_run):
    out, merged = smoke_run
    m = merged["04_one_epoch_unlearning"]
    assert {"original", "retrained", "dlfd", "finetune", "salun"} <= set(m["summary"])
    assert set(m["ablation"]) == {"DLFD", "without OT", "without CE term", "always synthesise",
                                  "φ = embedding"}
    assert len(m["dlfd_trace_seed0"]) == m["dlfd_info_seed0"]["n_batches"]
    # what notebook 02 computed with the same settings is reused, not rerun; DLFD reruns
    assert {"original", "retrained", "finetune"} <= set(m["reused_seed0"])
    assert "dlfd" not in m["reused_seed0"]
    person = m["forget_person"]["results"]
    # the retrained model never saw the person's training photos
    assert person["retrained"]["person_forget_acc"] <= person["original"]["person_forget_acc"]
    report = (out / "report.md").read_text()
    assert "## Ablation" in report and "| dlfd |" in report


@pytest.mark.parametrize("name", pipeline.NOTEBOOKS)
def test_notebooks_teach_in_order(name):
    """Every code cell follows a markdown cell; each notebook opens with what it teaches and
    closes with what this run showed."""
    nb = json.loads((pipeline.notebooks_dir() / name).read_text())
    cells = nb["cells"]
    bare = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
            and (i == 0 or cells[i - 1]["cell_type"] != "markdown")]
    assert bare == [], f"code cells without a markdown cell before them: {bare}"
    heads = ["".join(c["source"]).splitlines()[0] for c in cells if c["cell_type"] == "markdown"]
    assert "## What you will learn" in heads[:3] and "## What we saw" in heads[-3:]
    text = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "arxiv.org/abs/2409.14747" in text and "$" in text  # the paper, and LaTeX
