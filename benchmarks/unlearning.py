"""Quality and cost of every method, side by side in one process.

    python benchmarks/unlearning.py --profile cpu --seeds 3
    python benchmarks/unlearning.py --profile cpu --seeds 3 --dataset fashion-mnist --subsample 2000

For each seed it trains (or reuses, from --runs) the original and the retrained model, runs
every baseline and DLFD with the profile's validation-chosen settings, and evaluates them on
the test split. It writes ``unlearning_<dataset>_<profile>.json`` and ``.md`` to --out with
the means and stds over seeds, RTE (retrain time / method time, both measured here), DLFD's
monitoring share of its time and its forward/backward pass counts.

The profile is adapted to the dataset by ``dlfd.profiles.get_profile`` (image size,
unlearning batch, per-class split; ``--subsample`` sets the training images in all), exactly
as in the notebooks and ``python -m dlfd run``.

On ORL the forget set is 30 images, so the MIA's standard error is about ±0.09 per seed:
use several seeds (docs/method.md, §6 P2 "MIA noise"). Fashion-MNIST (Debian's
``dataset-fashion-mnist``) gives hundreds to thousands of samples per MIA side
(docs/method.md, §6 P5 "Fashion-MNIST").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from dlfd import experiment, reporting
from dlfd.profiles import get_profile

COLUMNS = {"retain_acc": "retain", "forget_acc": "forget", "test_acc": "test", "mia": "MIA",
           "mia_auc": "loss AUC", "fs": "FS", "nomus": "NoMUS", "js_to_retrained": "JS→retr.",
           "probe_acc": "probe", "separability": "separability", "seconds": "seconds",
           "rte": "RTE"}
FMT = {"seconds": ".2f", "rte": ".1f", "separability": ".2f"}


def run(profile: str, seeds: int, dataset: str, subsample: int | None, runs: str, device: str,
        methods=None) -> dict:
    """Every method on ``seeds`` seeds of ``profile``, adapted to ``dataset`` (and
    ``subsample``) by :func:`dlfd.profiles.get_profile`, as the notebooks are."""
    settings = get_profile(profile, dataset=dataset, subsample=subsample)
    methods = list(methods or [*settings.methods, "dlfd"])
    comps, t0 = [], time.perf_counter()
    for seed in range(seeds):
        prep = experiment.prepare(settings, seed, f"{runs}/{dataset}_{settings.name}",
                                  dataset=dataset, device=device)
        comps.append(experiment.compare(prep, methods))
    summary = experiment.summarize(comps)
    dlfd_runs = [c.results["dlfd"] for c in comps if "dlfd" in c.results]
    cost = {}
    if dlfd_runs:
        cost = dict(
            monitoring_share=[r.info["monitoring_seconds"] / r.seconds for r in dlfd_runs],
            forward_passes=[r.info["forward_passes"] for r in dlfd_runs],
            backward_passes=[r.info["backward_passes"] for r in dlfd_runs],
            synthesised_batches=[r.info["n_synthesised"] for r in dlfd_runs],
            batches=[r.info["n_batches"] for r in dlfd_runs])
    steps = {m: [c.results[m].steps for c in comps] for m in methods}
    return dict(profile=settings.name, dataset=dataset, subsample=subsample, seeds=seeds,
                split_sizes=prep.manifest.sizes(), summary=summary,
                dlfd_cost=cost, steps=steps, wall_seconds=time.perf_counter() - t0)


def markdown(result: dict) -> str:
    summary = result["summary"]
    lines = [f"### {result['dataset']} · profile {result['profile']} · {result['seeds']} seed(s)",
             "", f"split sizes: {result['split_sizes']}", "",
             reporting.render_table(summary, COLUMNS, fmt=FMT), ""]
    cost = result["dlfd_cost"]
    if cost:
        def mean(values):
            return sum(values) / len(values)

        dlfd = summary["dlfd"]
        lines += [
            f"- DLFD monitoring share of its time: {mean(cost['monitoring_share']):.1%} "
            f"(per seed: {', '.join(f'{x:.1%}' for x in cost['monitoring_share'])})",
            f"- DLFD passes per run: {mean(cost['forward_passes']):.0f} forward, "
            f"{mean(cost['backward_passes']):.0f} backward; synthesised "
            f"{mean(cost['synthesised_batches']):.1f} of {mean(cost['batches']):.0f} batches",
            f"- RTE of DLFD: {dlfd['rte_mean']:.1f} ± {dlfd['rte_std']:.1f}", ""]
    best = max((k for k in summary if k not in ("original", "retrained")),
               key=lambda k: summary[k]["nomus_mean"])
    lines.append(f"Best NoMUS among the methods: **{best}** ({summary[best]['nomus_mean']:.3f}); "
                 f"retrained {summary['retrained']['nomus_mean']:.3f}, "
                 f"original {summary['original']['nomus_mean']:.3f}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dataset", default="orl", choices=["orl", "fashion-mnist"])
    parser.add_argument("--subsample", type=int, default=None,
                        help="Fashion-MNIST: training images in all (default 2000; "
                             "dlfd.profiles.DATASET_SETTINGS)")
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--runs", default=None,
                        help="folder for the reference models (default: a new temporary "
                             "folder, so that retraining is timed in this run)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: expected at least 1")
    try:  # a bad profile name, or --subsample for ORL, before any training
        get_profile(args.profile, dataset=args.dataset, subsample=args.subsample)
    except ValueError as e:
        parser.error(str(e))

    runs = args.runs or tempfile.mkdtemp(prefix="dlfd-bench-")
    result = run(args.profile, args.seeds, args.dataset, args.subsample, runs, args.device,
                 args.methods)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"unlearning_{args.dataset}_{result['profile']}"
    reporting.save_json(result, out / f"{stem}.json", overwrite=True)
    md = markdown(result)
    (out / f"{stem}.md").write_text(md)
    print(md)
    print(f"wrote {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
