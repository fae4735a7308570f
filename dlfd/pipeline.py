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
from .sanity import rank_warnings
from .source import DatasetNotFoundError, Source
from .sources import canonical_name, get_source

NOTEBOOKS = ("01_train_original.ipynb", "02_correlation_collapse.ipynb",
             "03_feature_distancing_synthesizer.ipynb", "04_one_epoch_unlearning.ipynb")
MARKER = ".dlfd-run"


def notebooks_dir() -> Path:
    d = Path(__file__).resolve().parents[1] / "notebooks"
    if not d.is_dir():
        raise FileNotFoundError(f"No notebooks folder at {d}; run from a checkout of the "
                                "repository or pass notebooks=<folder>.")
    return d


def record(out_dir: str | Path, name: str, obj) -> None:
    """Save one notebook's numbers as ``<out_dir>/metrics/<name>.json``.

    The write is atomic and a rerun of the notebook replaces its own file. It returns
    ``None``, so that a notebook cell ending with ``record(...)`` echoes nothing.

    Parameters
    ----------
    out_dir : str or Path
        The run folder.
    name : str
        The section name in ``metrics.json`` (the notebook's name).
    obj : dict
        JSON-able numbers; NumPy scalars and arrays are converted.

    Examples
    --------
    >>> record("runs/smoke", "01_train_original", {"test_acc": 0.9})  # doctest: +SKIP
    """
    save_json(obj, Path(out_dir) / "metrics" / f"{name}.json", overwrite=True)


def merge_metrics(out_dir: str | Path, extra: dict | None = None) -> dict:
    """Merge every ``metrics/*.json`` into ``metrics.json`` and return it.

    ``extra`` adds top-level keys (the job's ``notebook_seconds`` and ``warnings``).
    """
    out_dir = Path(out_dir)
    merged = {p.stem: json.loads(p.read_text())
              for p in sorted((out_dir / "metrics").glob("*.json"))}
    merged.update(extra or {})
    (out_dir / "metrics.json").write_text(json.dumps(merged, indent=2, sort_keys=True))
    return merged


def check_dataset(dataset: str, dataset_root: str | Path | None = None) -> Source:
    """The dataset's source, built once before any notebook runs, so that a missing or
    invalid ``--data-root`` fails at once with a message naming the flag.

    Raises
    ------
    ValueError
        A dataset that needs a root (``imagefolder``, ``csv``) got none.
    DatasetNotFoundError
        The root (or the default location) does not hold the dataset; the message says
        what was expected.
    """
    name = canonical_name(dataset)
    if dataset_root is not None and not Path(dataset_root).expanduser().exists():
        raise DatasetNotFoundError(f"--data-root {dataset_root} does not exist; expected "
                                   f"{_ROOT_EXPECTED.get(name, 'the dataset folder')}.")
    try:
        return get_source(name, dataset_root)
    except DatasetNotFoundError as e:
        where = f"--data-root {dataset_root}" if dataset_root is not None else "no --data-root"
        raise DatasetNotFoundError(f"Dataset {name!r} ({where}): {e}") from None
    except ValueError as e:
        if dataset_root is None and "needs root=" in str(e):
            raise ValueError(f"--dataset {name} needs --data-root DIR: "
                             f"{_ROOT_EXPECTED.get(name, 'the dataset folder')}.") from None
        raise


# What --data-root must be, per dataset (the error messages name it).
_ROOT_EXPECTED = {
    "imagefolder": "a folder with one sub-folder per class holding the images",
    "csv": "a CSV file with columns path,label (or a folder holding exactly one .csv)",
    "mufac": "MUFAC's custom_korean_family_dataset_resolution_128 folder",
    "fashion-mnist": "a folder with the four Fashion-MNIST idx .gz files",
    "cifar10": "a folder holding cifar-10-batches-py",
    "orl": "a folder with the s1..s40 layout",
}


def _warnings(merged: dict, num_classes: int) -> list[str]:
    """:func:`dlfd.sanity.rank_warnings` on notebook 01's original and retrained records."""
    nb01 = merged.get("01_train_original", {})
    if not {"original", "retrained"} <= set(nb01):
        return []
    n_forget = (nb01.get("split_sizes") or {}).get("forget")
    return rank_warnings(nb01["original"], nb01["retrained"],
                         nb01.get("num_classes", num_classes), n_forget or None)


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
                 notebook_dir: str | Path | None = None, progress: bool = True,
                 dataset_root: str | Path | None = None,
                 cell_timeout: float | None = None) -> dict:
    """Execute ``notebooks`` in order with papermill; returns the merged metrics.

    Every notebook adapts ``profile`` to ``dataset`` with :func:`dlfd.profiles.get_profile`
    (through :func:`dlfd.experiment.prepare`), as this job does first to check both names;
    the dataset itself is opened once (:func:`check_dataset`) before any notebook runs.
    Each notebook gets the papermill parameters ``profile``, ``seed``, ``device``,
    ``dataset``, ``dataset_root`` (``None``: the dataset's default location) and
    ``out_dir``. ``cell_timeout`` (seconds; ``None``: none) fails a cell that runs longer, so
    that a hung kernel is reported with its cell instead of waiting forever.

    Besides the notebooks' sections, ``metrics.json`` holds ``notebook_seconds`` (each
    notebook's wall time, written after every notebook) and ``warnings``
    (:func:`dlfd.sanity.rank_warnings` on notebook 01's reference models: when they cannot
    rank methods).
    """
    # fail fast on a bad profile, dataset name or data root, before touching the folder
    get_profile(profile, dataset=dataset)
    source = check_dataset(dataset, dataset_root)
    # imported here, not at the top: papermill is slow to import, and record() above runs
    # inside every notebook
    import papermill as pm

    src_dir = Path(notebook_dir) if notebook_dir else notebooks_dir()
    missing = [n for n in notebooks if not (src_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(f"Notebook(s) {missing} not found in {src_dir}.")
    out = prepare_run_folder(out, force).resolve()
    (out / "notebooks").mkdir(exist_ok=True)
    root = None if dataset_root is None else str(Path(dataset_root).expanduser().resolve())
    params = dict(profile=profile, seed=seed, device=device, dataset=dataset,
                  dataset_root=root, out_dir=str(out))
    timings = {}
    for name in notebooks:
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(src_dir / name), str(out / "notebooks" / name),
                                parameters=params, cwd=str(src_dir), progress_bar=progress,
                                kernel_name="python3", execution_timeout=cell_timeout)
        finally:
            # written even when a notebook fails, so a slow or failing one can be found
            timings[Path(name).stem] = round(time.perf_counter() - t0, 1)
            record(out, "pipeline", dict(params, notebook_seconds=timings))
    merged = merge_metrics(out)
    return merge_metrics(out, dict(notebook_seconds=timings,
                                   warnings=_warnings(merged, source.num_classes)))


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def strip_for_commit(nb: dict) -> dict:
    """An executed notebook as it should be committed: outputs kept, nothing that only a live
    kernel can render (widget views and widget state: progress bars, interact panels) and
    nothing machine-specific (papermill's injected parameters with absolute paths, timings).
    """
    cells = []
    for cell in nb["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        cell = dict(cell, metadata={k: v for k, v in cell.get("metadata", {}).items()
                                    if k not in ("papermill", "execution")})
        if cell["cell_type"] == "code":
            cell["outputs"] = [o for o in cell.get("outputs", [])
                               if WIDGET_MIME not in o.get("data", {})]
        cells.append(cell)
    metadata = {k: v for k, v in nb.get("metadata", {}).items() if k not in ("papermill", "widgets")}
    return dict(nb, cells=cells, metadata=metadata)


def refresh_notebooks(profile: str = "cpu", out: str | Path | None = None,
                      device: str = "auto") -> Path:
    """``make notebooks``: run the pipeline with ``profile`` and write the executed notebooks,
    stripped by :func:`strip_for_commit`, back over ``notebooks/`` (what GitHub shows)."""
    out = Path(out or Path("runs") / f"committed-{profile}")
    run_pipeline(out, profile=profile, device=device, force=True)
    for name in NOTEBOOKS:
        executed = json.loads((out / "notebooks" / name).read_text())
        text = json.dumps(strip_for_commit(executed), indent=1, ensure_ascii=False) + "\n"
        (notebooks_dir() / name).write_text(text)
    return out


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
    run.add_argument("--data-root", default=None, metavar="DIR",
                     help="where the dataset's files are: required for imagefolder (a folder "
                          "with one sub-folder per class) and csv (a path,label CSV)")
    run.add_argument("--force", action="store_true", help="replace an existing run folder")
    run.add_argument("--only", nargs="*", default=None,
                     help="run only these notebooks (prefixes)")
    run.add_argument("--cell-timeout", type=float, default=None, metavar="SECONDS",
                     help="fail a notebook cell that runs longer (default: no limit)")
    refresh = commands.add_parser("notebooks", help="re-execute the notebooks and commit their "
                                  "outputs into notebooks/ (what GitHub shows)")
    refresh.add_argument("--profile", default="cpu")
    refresh.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.cmd == "notebooks":
        out = refresh_notebooks(args.profile, device=args.device)
        print(f"Rewrote notebooks/*.ipynb from the run in {out}")
        return 0
    out = args.out or os.path.join("runs", args.profile)
    notebooks = NOTEBOOKS if not args.only else tuple(
        n for n in NOTEBOOKS if any(n.startswith(prefix) for prefix in args.only))
    try:
        merged = run_pipeline(out, args.profile, args.seed, args.device, args.dataset,
                              args.force, notebooks, dataset_root=args.data_root,
                              cell_timeout=args.cell_timeout)
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        parser.exit(2, f"error: {e}\n")
    print(f"Run folder: {Path(out).resolve()}")
    print(f"Wrote metrics.json with sections: {', '.join(sorted(merged))}")
    for w in merged.get("warnings", []):
        print(f"warning: {w}")
    if (Path(out) / "report.md").exists():
        print(f"Report: {Path(out) / 'report.md'}")
    return 0
