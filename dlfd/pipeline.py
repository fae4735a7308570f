"""The main job: execute the notebooks in order with papermill into a run folder.

Each notebook saves its numbers with :func:`record` as ``<run>/metrics/<name>.json``; the job
merges them into ``<run>/metrics.json``. A run folder is never overwritten by accident: an
existing one is refused unless ``force`` is set, and even then only a folder that this job
created (it carries a marker file) is cleared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from .profiles import get_profile
from .reporting import save_json

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
    """Execute ``notebooks`` in order with papermill; returns the merged metrics.

    Every notebook adapts ``profile`` to ``dataset`` with :func:`dlfd.profiles.get_profile`
    (through :func:`dlfd.experiment.prepare`), as this job does first to check both names.
    """
    # fail fast on a bad profile or dataset name, before touching the folder
    get_profile(profile, dataset=dataset)
    # imported here, not at the top: papermill is slow to import, and record() above runs
    # inside every notebook
    import papermill as pm

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
    parser = argparse.ArgumentParser(prog="python -m dlfd", description=__doc__)
    commands = parser.add_subparsers(dest="cmd", required=True)
    run = commands.add_parser("run", help="execute the notebooks in order into a run folder")
    run.add_argument("--profile", default="cpu", help="smoke | cpu | full (default cpu)")
    run.add_argument("--out", default=None, help="run folder (default runs/<profile>)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--device", default="auto")
    run.add_argument("--dataset", default="orl",
                     help="orl | fashion-mnist | ...; the profile is adapted to it")
    run.add_argument("--force", action="store_true", help="replace an existing run folder")
    run.add_argument("--only", nargs="*", default=None,
                     help="run only these notebooks (prefixes)")
    args = parser.parse_args(argv)
    out = args.out or os.path.join("runs", args.profile)
    notebooks = NOTEBOOKS if not args.only else tuple(
        n for n in NOTEBOOKS if any(n.startswith(prefix) for prefix in args.only))
    try:
        merged = run_pipeline(out, args.profile, args.seed, args.device, args.dataset,
                              args.force, notebooks)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    print(f"Run folder: {Path(out).resolve()}")
    print(f"Wrote metrics.json with sections: {', '.join(sorted(merged))}")
    if (Path(out) / "report.md").exists():
        print(f"Report: {Path(out) / 'report.md'}")
    return 0
