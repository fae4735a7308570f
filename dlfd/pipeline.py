"""The main job: execute the notebooks in order with papermill into a run folder.

Each notebook saves its numbers with :func:`record` as ``<run>/metrics/<name>.json``; the job
merges them into ``<run>/metrics.json``. A run folder is never overwritten by accident: an
existing one is refused unless ``force`` is set, and even then only a folder that this job
created (it carries a marker file) is cleared.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

NOTEBOOKS = ("01_train_original.ipynb", "02_correlation_collapse.ipynb",
             "03_feature_distancing_synthesizer.ipynb", "04_one_epoch_unlearning.ipynb")
MARKER = ".dlfd-run"


def notebooks_dir() -> Path:
    d = Path(__file__).resolve().parents[1] / "notebooks"
    if not d.is_dir():
        raise FileNotFoundError(f"No notebooks folder at {d}; run from a checkout of the "
                                "repository or pass notebooks=<folder>.")
    return d


def record(out_dir: str | Path, name: str, obj) -> Path:
    """Save one notebook's numbers as ``<out_dir>/metrics/<name>.json`` (atomic; a rerun of
    the notebook replaces its own file)."""
    from .metrics import save_json

    return save_json(obj, Path(out_dir) / "metrics" / f"{name}.json", overwrite=True)


def merge_metrics(out_dir: str | Path) -> dict:
    """Merge every ``metrics/*.json`` into ``metrics.json`` and return it."""
    out_dir = Path(out_dir)
    merged = {p.stem: json.loads(p.read_text())
              for p in sorted((out_dir / "metrics").glob("*.json"))}
    (out_dir / "metrics.json").write_text(json.dumps(merged, indent=2, sort_keys=True))
    return merged


def prepare_run_folder(out: str | Path, force: bool = False) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"Run folder {out} already exists; pass --force to replace it, "
                                  "or choose another --out.")
        if not (out / MARKER).exists():
            raise FileExistsError(f"{out} is not a dlfd run folder (no {MARKER}); refusing to "
                                  "delete it even with --force.")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("created by `python -m dlfd run`\n")
    return out


def run_pipeline(out: str | Path, profile: str = "cpu", seed: int = 0, device: str = "auto",
                 dataset: str = "orl", force: bool = False, notebooks=NOTEBOOKS,
                 notebook_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Execute ``notebooks`` in order with papermill; returns the merged metrics."""
    import papermill as pm

    from .profiles import get_profile

    get_profile(profile)  # fail fast on a bad name, before touching the folder
    src_dir = Path(notebook_dir) if notebook_dir else notebooks_dir()
    missing = [n for n in notebooks if not (src_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"Notebook(s) {missing} not found in {src_dir}.")
    out = prepare_run_folder(out, force).resolve()
    (out / "notebooks").mkdir(exist_ok=True)
    params = dict(profile=profile, seed=seed, device=device, dataset=dataset, out_dir=str(out))
    timings = {}
    for name in notebooks:
        t0 = time.perf_counter()
        pm.execute_notebook(str(src_dir / name), str(out / "notebooks" / name), parameters=params,
                            cwd=str(src_dir), progress_bar=progress, kernel_name="python3")
        timings[name] = round(time.perf_counter() - t0, 1)
    record(out, "pipeline", dict(params, seconds=timings))
    return merge_metrics(out)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m dlfd", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the notebooks in order into a run folder")
    r.add_argument("--profile", default="cpu", help="smoke | cpu | full (default cpu)")
    r.add_argument("--out", default=None, help="run folder (default runs/<profile>)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto")
    r.add_argument("--dataset", default="orl")
    r.add_argument("--force", action="store_true", help="replace an existing run folder")
    r.add_argument("--only", nargs="*", default=None, help="run only these notebooks (prefixes)")
    a = p.parse_args(argv)
    out = a.out or os.path.join("runs", a.profile)
    nbs = NOTEBOOKS if not a.only else tuple(n for n in NOTEBOOKS
                                              if any(n.startswith(o) for o in a.only))
    try:
        merged = run_pipeline(out, a.profile, a.seed, a.device, a.dataset, a.force, nbs)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        p.exit(2, f"error: {e}\n")
    print(f"Run folder: {Path(out).resolve()}")
    print(f"Wrote metrics.json with sections: {', '.join(sorted(merged))}")
    if (Path(out) / "report.md").exists():
        print(f"Report: {Path(out) / 'report.md'}")
    return 0
