"""Quality and cost of every method, side by side in one process.

    python benchmarks/unlearning.py --profile cpu --seeds 3
    python benchmarks/unlearning.py --profile cpu --seeds 3 --dataset fashion-mnist --subsample 2000

For each seed it trains (or reuses, from --runs) the original and the retrained model, runs
every baseline and DLFD with the profile's validation-chosen settings, and evaluates them on
the test split. It writes ``unlearning_<dataset>_<profile>.json`` and ``.md`` to --out with
the means and stds over seeds, RTE (retrain time / method time, both measured here), DLFD's
monitoring share of its time and its forward/backward pass counts.

On ORL the forget set is 30 images, so the MIA's standard error is about ±0.09 per seed:
use several seeds. Fashion-MNIST (Debian's ``dataset-fashion-mnist``) gives hundreds to
thousands of samples per MIA side.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlfd import experiment, metrics  # noqa: E402
from dlfd.profiles import get_profile  # noqa: E402

COLUMNS = {"retain_acc": "retain", "forget_acc": "forget", "test_acc": "test", "mia": "MIA",
           "mia_auc": "loss AUC", "fs": "FS", "nomus": "NoMUS", "js_to_retrained": "JS→retr.",
           "probe_acc": "probe", "separability": "separability", "seconds": "seconds",
           "rte": "RTE"}
FMT = {"seconds": ".2f", "rte": ".1f", "separability": ".2f"}


def dataset_profile(profile: str, dataset: str, subsample: int | None):
    """The profile, adapted to a dataset: ORL as is; Fashion-MNIST at 32 px with
    ``subsample // 10`` training images per class (dlfd.profiles.DATASET_SPLITS otherwise)."""
    P = get_profile(profile)
    if dataset == "orl":
        return P, {}
    split = {} if subsample is None else dict(n_train=max(2, subsample // 10))
    return get_profile(profile, image_size=32, unlearn_batch_size=32), split


def run(profile: str, seeds: int, dataset: str, subsample: int | None, runs: str, device: str,
        methods=None) -> dict:
    P, split = dataset_profile(profile, dataset, subsample)
    methods = list(methods or [*P.methods, "dlfd"])
    comps, t0 = [], time.perf_counter()
    for s in range(seeds):
        prep = experiment.prepare(P, s, f"{runs}/{dataset}_{P.name}", dataset=dataset,
                                  device=device, split_overrides=split)
        comps.append(experiment.compare(prep, methods))
    summary = experiment.summarize(comps)
    dl = [c.results["dlfd"] for c in comps if "dlfd" in c.results]
    cost = {}
    if dl:
        cost = dict(
            monitoring_share=[r.info["monitoring_seconds"] / r.seconds for r in dl],
            forward_passes=[r.info["forward_passes"] for r in dl],
            backward_passes=[r.info["backward_passes"] for r in dl],
            synthesised_batches=[r.info["n_synthesised"] for r in dl],
            batches=[r.info["n_batches"] for r in dl])
    steps = {m: [c.results[m].steps for c in comps] for m in methods}
    return dict(profile=P.name, dataset=dataset, subsample=subsample, seeds=seeds,
                split_sizes=prep.manifest.sizes(), summary=summary,
                dlfd_cost=cost, steps=steps, wall_seconds=time.perf_counter() - t0)


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [f"### {result['dataset']} · profile {result['profile']} · {result['seeds']} seed(s)",
             "", f"split sizes: {result['split_sizes']}", "",
             metrics.render_table(s, COLUMNS, fmt=FMT), ""]
    c = result["dlfd_cost"]
    if c:
        def mean(v):
            return sum(v) / len(v)

        lines += [
            f"- DLFD monitoring share of its time: {mean(c['monitoring_share']):.1%} "
            f"(per seed: {', '.join(f'{x:.1%}' for x in c['monitoring_share'])})",
            f"- DLFD passes per run: {mean(c['forward_passes']):.0f} forward, "
            f"{mean(c['backward_passes']):.0f} backward; synthesised "
            f"{mean(c['synthesised_batches']):.1f} of {mean(c['batches']):.0f} batches",
            f"- RTE of DLFD: {s['dlfd']['rte_mean']:.1f} ± {s['dlfd']['rte_std']:.1f}", ""]
    best = max((k for k in s if k not in ("original", "retrained")),
               key=lambda k: s[k]["nomus_mean"])
    lines.append(f"Best NoMUS among the methods: **{best}** ({s[best]['nomus_mean']:.3f}); "
                 f"retrained {s['retrained']['nomus_mean']:.3f}, "
                 f"original {s['original']['nomus_mean']:.3f}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--dataset", default="orl", choices=["orl", "fashion-mnist"])
    p.add_argument("--subsample", type=int, default=None,
                   help="Fashion-MNIST: training images in all (default 2000)")
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--runs", default=None,
                   help="folder for the reference models (default: a new temporary folder, so "
                        "that retraining is timed in this run)")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    if a.seeds < 1:
        p.error(f"--seeds {a.seeds}: expected at least 1")
    import tempfile

    runs = a.runs or tempfile.mkdtemp(prefix="dlfd-bench-")
    result = run(a.profile, a.seeds, a.dataset, a.subsample, runs, a.device, a.methods)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"unlearning_{a.dataset}_{result['profile']}"
    metrics.save_json(result, out / f"{stem}.json", overwrite=True)
    md = markdown(result)
    (out / f"{stem}.md").write_text(md)
    print(md)
    print(f"wrote {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
