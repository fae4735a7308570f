"""Choose each method's unlearning settings for a profile and dataset on the VALIDATION split.

    python benchmarks/tune.py --profile cpu --dataset orl --seeds 3 --out benchmarks/results
    python benchmarks/tune.py --profile cpu --dataset orl --request person

``--request person`` tunes the "forget one person" section of notebook 04 instead: every
photo of one person is forgotten (persons 0–3, on their validation photos only), and a
config scores ``½·(everyone else's validation accuracy) + ½·(1 − accuracy on the person's
forgotten and validation photos)`` (``dlfd.tuning.person_val_record``), among the configs
that bring the person's accuracy to ≤ 0.1 while everyone else's validation accuracy falls by
≤ 0.1 (``dlfd.tuning.person_ok``; the best score of all configs when none does). The result
goes to ``tune_person_<dataset>_<profile>.json``.

For every method it runs a small grid on every seed, scores each config by the validation
NoMUS (dlfd/tuning.py: validation accuracy and the forget-vs-validation MIA; the test split
is never used, and ``selection="test"`` is refused) and writes
``<out>/tune_<dataset>_<profile>.json``: the grid, the scores, the chosen settings and the
mean seconds per method. The chosen values are copied into dlfd/profiles.py by hand, so that
every default can be traced to a validation run.

Budget. Every method tunes ``epochs`` together with ``lr``, up to an epoch cap that keeps a
method's unlearning at most 1/10 of the retraining time: one unlearning epoch of a baseline
costs about one training epoch of the retrained model (same data, fewer samples), so the cap
is ``max(1, retraining epochs // 10)`` (4 for the cpu profile's 40 epochs). DLFD keeps its
one epoch (docs/method.md §2): with K synthesis steps its epoch already costs K + 2
forward/backward passes per batch. Its grid also has a constraint: the mean fraction of
synthesised samples still classified as their label (``frac_correct``) must be ≥ 0.9 and the
OT distance must rise in most synthesised batches (docs/method.md §2.1).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dlfd import experiment
from dlfd.fileio import atomic_write
from dlfd.profiles import get_profile
from dlfd.tuning import person_ok, person_val_record, tune

DATASETS = ("orl", "fashion-mnist")
LRS = [1e-4, 1e-3, 1e-2]
BASELINES = ("finetune", "neggrad", "neggrad_plus", "cf_k", "eu_k", "random_labels", "unsir",
             "bad_teacher", "scrub", "salun")
METHODS = BASELINES + ("dlfd",)
DLFD_SPACE = {"lr": [3e-4, 1e-3], "w_cls_start": [0.0, 0.5], "eps_px": [None, 8 / 255],
              "step_size": [1 / 255, 4 / 255], "steps": [5, 10]}
# "Forget one person" (notebook 04): the methods that section shows, tuned on persons other
# than the notebook's default person 0, scored by dlfd.tuning.person_val_record.
PERSON_METHODS = ("finetune", "neggrad_plus", "random_labels", "salun", "scrub", "dlfd")
PERSONS = (0, 1, 2, 3)
# acting on three photos of one person, 1e-2 wrecked every model for everyone: a finer grid below
PERSON_LRS = [1e-4, 3e-4, 1e-3, 3e-3]
PERSON_DLFD_SPACE = {"lr": [1e-3, 3e-3, 1e-2]}  # the rest of DLFD's settings stay the profile's
MIN_FRAC_CORRECT = 0.9  # DLFD's synthesised samples must stay correctly labelled
MIN_OT_RISES = 0.5      # ... and move away from the forget batch in most batches


def epoch_cap(profile) -> int:
    """At most 1/10 of the retraining epochs, at least 1."""
    return max(1, profile.epochs // 10)


def epoch_grid(cap: int) -> list[int]:
    """Up to three epoch budgets from 1 to the cap."""
    return sorted({1, max(1, cap // 2), cap})


def spaces(cap: int) -> dict[str, dict]:
    """Each method's grid: lr × epochs (≤ 9 points) for the baselines, DLFD's own."""
    base = {"lr": LRS, "epochs": epoch_grid(cap)}
    return {**{m: dict(base) for m in BASELINES}, "dlfd": dict(DLFD_SPACE)}


def derive(method: str):
    """Overrides implied by a grid point: SCRUB's max passes cannot outnumber its epochs."""
    if method == "scrub":
        return lambda cfg: {"msteps": min(2, cfg["epochs"])}
    return None


def dlfd_ok(row: dict) -> bool:
    return (row.get("frac_correct") is not None and row["frac_correct"] >= MIN_FRAC_CORRECT
            and row.get("ot_rises") is not None and row["ot_rises"] >= MIN_OT_RISES)


def eligible(method: str, person: bool):
    """The rows a method's winner may come from: DLFD's labelling constraint, and for the
    person request also forgetting the person while keeping everyone else."""
    if not person:
        return dlfd_ok if method == "dlfd" else None
    if method == "dlfd":
        return lambda row: person_ok(row) and dlfd_ok(row)
    return person_ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--dataset", default="orl", choices=DATASETS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--methods", nargs="*", default=None,
                   help="default: every method (random), the section's methods (person)")
    p.add_argument("--runs", default="runs/tune", help="where the reference models are cached")
    p.add_argument("--split-seed", type=int, default=None,
                   help="one split for every seed, as the benchmark uses (default: seed s "
                        "draws its own split)")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result file")
    p.add_argument("--selection", default="last", choices=["last", "val", "test"],
                   help="checkpoint selection of every run; 'test' is refused (it reads test)")
    p.add_argument("--request", default="random", choices=["random", "person"],
                   help="random: random forgetting (the benchmark's); person: forget every photo "
                        f"of one person (notebook 04), tuned on persons {list(PERSONS)}")
    p.add_argument("--persons", nargs="*", type=int, default=list(PERSONS),
                   help=f"with --request person: the persons to tune on (default {list(PERSONS)})")
    p.add_argument("--space", default=None,
                   help='JSON replacing the grid of the named methods, e.g. '
                        '\'{"dlfd": {"tau": [0.02, 0.05]}}\' (the other settings stay the '
                        "profile's)")
    p.add_argument("--part", default=None,
                   help="write tune_<dataset>_<profile>.part-<PART>.json (one process of several, "
                        "each with its own --methods; combine them with --merge)")
    p.add_argument("--merge", nargs="*", default=None,
                   help="part files to combine into tune_<dataset>_<profile>.json")
    a = p.parse_args(argv)
    if a.selection == "test":
        p.error("--selection test chooses checkpoints on the test set (docs/method.md §5 D3 "
                "\"test-set selection\"); tuning reads validation only. Use 'last' or 'val'.")
    person = a.request == "person"
    a.methods = a.methods or list(PERSON_METHODS if person else METHODS)
    unknown = sorted(set(a.methods) - set(METHODS))
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    profile = get_profile(a.profile, dataset=a.dataset)
    cap = epoch_cap(profile)
    space_of = spaces(cap)
    if person:
        space_of.update({m: {"lr": PERSON_LRS, "epochs": epoch_grid(cap)} for m in BASELINES},
                        dlfd=dict(PERSON_DLFD_SPACE))
    if a.space:
        space_of.update(json.loads(a.space))
    suffix = f".part-{a.part}" if a.part else ""
    stem = f"tune_person_{a.dataset}" if person else f"tune_{a.dataset}"
    path = Path(a.out) / f"{stem}_{profile.name}{suffix}.json"
    if path.exists() and not a.overwrite:
        p.error(f"{path} exists; pass --overwrite to replace it")
    if a.merge is not None:
        report = merge([json.loads(Path(f).read_text()) for f in a.merge])
        save(report, path, a.overwrite)
        print(f"method_configs = {report['chosen']!r}")
        return 0
    if person:  # one seed per person: the persons are the repeats
        preps = [experiment.prepare(profile, 0, f"{a.runs}_{profile.name}", dataset=a.dataset,
                                    device=a.device, forget="identities", forget_ids=[pid])
                 for pid in a.persons]
    else:
        preps = [experiment.prepare(profile, seed, f"{a.runs}_{profile.name}", dataset=a.dataset,
                                    device=a.device, split_seed=a.split_seed)
                 for seed in range(a.seeds)]
    score = dict(score=person_val_record, key="val_score") if person else {}
    key = score.get("key", "val_nomus")
    chosen, tables, seconds, t0 = {}, {}, {}, time.perf_counter()
    for method in a.methods:
        chosen[method], tables[method] = tune(
            preps, method, space_of[method], base={"selection": a.selection},
            derive=derive(method), eligible=eligible(method, person), **score)
        if derive(method) is not None:  # the chosen point runs with what it implies
            chosen[method].update(derive(method)(chosen[method]))
        best = max([r for r in tables[method] if r["eligible"]] or tables[method],
                   key=lambda r: r[key])
        seconds[method] = {"chosen": best["seconds"],
                           "grid_mean": sum(r["seconds"] for r in tables[method])
                           / len(tables[method])}
        shown = ("val_score", "person_acc", "others_val_acc") if person else (
            "val_nomus", "val_acc", "mia_val")
        print(f"{method:14s} {chosen[method]}  "
              + " ".join(f"{k}={best[k]:.3f}" for k in shown)
              + f" seconds={best['seconds']:.2f}", flush=True)
    report = dict(profile=profile.name, dataset=a.dataset, request=a.request,
                  persons=list(a.persons) if person else None,
                  seeds=len(preps), split_seed=a.split_seed, selection=a.selection, score=key,
                  epoch_cap=cap, epoch_cap_rule="max(1, retraining epochs // 10)",
                  retrain_seconds=[prep.retrain_seconds for prep in preps],
                  dlfd_constraint=dict(min_frac_correct=MIN_FRAC_CORRECT,
                                       min_ot_rises=MIN_OT_RISES),
                  spaces={m: space_of[m] for m in a.methods}, chosen=chosen, grid=tables,
                  seconds=seconds, total_seconds=time.perf_counter() - t0)

    save(report, path, a.overwrite)
    print(f"method_configs = {chosen!r}")
    return 0


def merge(parts: list[dict]) -> dict:
    """One report from the part files of processes that tuned different methods."""
    report = dict(parts[0])
    for key in ("spaces", "chosen", "grid", "seconds"):
        report[key] = {m: v for part in parts for m, v in part[key].items()}
    # a method tuned again (a later part) keeps its earlier grids as evidence: the settings
    # the new grid did not search (DLFD's synthesis budget, say) were chosen on them
    earlier = {m: list(g) for m, g in parts[0].get("earlier_grids", {}).items()}
    for i, part in enumerate(parts[1:], start=1):
        for m in part["grid"]:
            earlier.setdefault(m, []).extend(
                dict(space=p["spaces"][m], seeds=p.get("seeds_per_method", {}).get(m, p["seeds"]),
                     grid=p["grid"][m]) for p in parts[:i] if m in p["grid"])
    report["earlier_grids"] = {m: g for m, g in earlier.items() if g}
    report["total_seconds"] = sum(part["total_seconds"] for part in parts)
    # parts may have tuned on different numbers of seeds; later parts win, as for "chosen"
    report["seeds_per_method"] = {m: part.get("seeds_per_method", {}).get(m, part["seeds"])
                                  for part in parts for m in part["chosen"]}
    report["split_seed_per_method"] = {
        m: part.get("split_seed_per_method", {}).get(m, part.get("split_seed"))
        for part in parts for m in part["chosen"]}
    return report


def save(report: dict, path: Path, overwrite: bool) -> None:
    def write(tmp):
        Path(tmp).write_text(json.dumps(report, indent=2))

    atomic_write(path, write, overwrite=overwrite)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
