"""The notebooks' guarded Colab setup cell: outside Colab it must do nothing at all."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _setup_cell(path: Path) -> str:
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    return "".join(cells[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_is_first_and_guarded(path):
    src = _setup_cell(path)
    assert 'if "google.colab" in sys.modules:' in src, f"{path.name}: first code cell is not the Colab setup"
    assert src.count("REPO_URL = ") == 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_setup_cell_does_nothing_outside_colab(path, monkeypatch):
    assert "google.colab" not in sys.modules

    def refuse(*args, **kwargs):
        raise AssertionError(f"the setup cell ran a command outside Colab: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "check_call", refuse)
    before = set(sys.modules)
    namespace: dict = {}
    exec(compile(_setup_cell(path), path.name, "exec"), namespace)
    assert set(sys.modules) - before <= {"subprocess"}
    assert "torch" not in set(sys.modules) - before


def test_setup_cells_agree():
    """One setup cell, the same in every notebook, so the README describes all of them."""
    assert len({_setup_cell(p) for p in NOTEBOOKS}) == 1
