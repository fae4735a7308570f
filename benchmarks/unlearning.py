"""Quality, cost and paired confidence intervals of every unlearning method, side by side.

    python benchmarks/unlearning.py --dataset orl --profile cpu --seeds 10
    python benchmarks/unlearning.py --dataset fashion-mnist --profile cpu --seeds 5

Protocol (docs/method.md §3 and §5):

* One split per dataset (``--split-seed``, default 0); seed ``s`` varies the initialisation of
  the original and retrained models and the randomness of unlearning. The retrained models
  of the *other* seeds then share this seed's forget set and never saw it, so they are the
  reference models of the offline likelihood-ratio attack (:mod:`dlfd.attacks`): ``k`` seeds
  give ``k − 1`` references per target.
* Every method runs with the settings chosen on validation for this dataset and profile
  (``benchmarks/tune.py``) and ``selection="last"``: the model after its last step.
* The public code's protocol (§5 D3 "test-set selection") is measured next to it: the same
  run keeping the step with the best test NoMUS (``test``), and, to show how much of that
  gain is selection noise, the step chosen on one half of the test split and scored on the
  other half (``test-half``). One run gives both: its steps are the unselected run's, and
  one forward pass per step over the forget and test images scores both choices
  (:class:`TestAndHalfSelector`). ``dlfd_public`` is the public DLFD as it ran.
* Every comparison is a paired difference over seeds with a 95% bootstrap CI
  (:mod:`dlfd.stats`); a CI that contains 0 is "not resolved".

Writes ``unlearning_<dataset>_<profile>.json`` and ``.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from dlfd import experiment, reporting, stats
from dlfd.attacks import confidences, lira_for_model
from dlfd.metrics import evaluate, mia_spread, per_sample_losses
from dlfd.profiles import get_profile
from dlfd.unlearn import make_config, unlearn
from dlfd.unlearn.base import StepSelector
from dlfd.unlearn.monitor import attack_score

COLUMNS = {"forget_acc": "forget", "test_acc": "test", "mia": "MIA", "mia_auc": "loss AUC",
           "lira_auc": "LiRA AUC", "lira_tpr": "LiRA TPR@5%", "fs": "FS", "nomus": "NoMUS",
           "probe_acc": "probe", "seconds": "seconds", "rte": "RTE"}
FMT = {"seconds": ".2f", "rte": ".1f"}


def test_halves(n: int, seed: int) -> tuple[list[int], list[int]]:
    """Two disjoint halves of the test split's indices: A to select a step on, B to score it."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[: n // 2]), sorted(order[n // 2:])


class TestAndHalfSelector(StepSelector):
    """``selection="test"`` on the whole test split that, from the same forward pass, also
    keeps the best step on half A: one run gives both the ``test`` model and the
    ``test-half`` one. Selection runs in eval mode without gradients, so it never changes
    the run's steps."""

    def __init__(self, data, config, device, half_a: list[int]):
        super().__init__(data, config, device)
        n = len(data.forget_eval.dataset)
        self.rows_a = torch.tensor([*range(n), *(n + i for i in half_a)])
        self.best_a: tuple | None = None

    def score_step(self, model, step: int) -> None:
        logits, y, n = self.monitor.logits(model)
        for attr, rows in (("best", None), ("best_a", self.rows_a)):
            lg, yy = (logits, y) if rows is None else (logits[rows], y[rows])
            attack = attack_score(lg[:n], yy[:n], lg[n:], yy[n:], seed=self.monitor.seed,
                                  n_splits=self.monitor.n_splits)
            setattr(self, attr, self.keep_best(getattr(self, attr), attack, step, model))


def method_info(res) -> dict:
    """What a method's ``info`` adds to its record (DLFD's labelling and monitoring, steps)."""
    rec = {key: float(res.info[key]) for key in (*experiment.DIAGNOSTICS, "monitoring_seconds")
           if res.info.get(key) is not None}
    if "monitoring_seconds" in rec:
        rec["monitoring_share"] = rec["monitoring_seconds"] / max(res.seconds, 1e-9)
    return rec


def full_record(prep, model, seconds: float, references, half_b) -> dict:
    """Quality on the whole test split with LiRA, and the NoMUS on half B alone (what the
    held-out-half check compares against)."""
    rec = experiment.assess(prep, model, seconds)
    rec.update(lira_record(model, references, prep))
    rec["nomus_half_b"] = evaluate(model, half_b, seed=prep.seed, device=prep.device)["nomus"]
    return rec


def run_last(prep, method: str, half_b, references) -> dict:
    """One method on one seed, the model after its last step: its record."""
    res = unlearn(method, prep.original, prep.unlearn_data(),
                  experiment.method_config(prep, method, {}))
    return {**full_record(prep, res.model, res.seconds, references, half_b), **method_info(res)}


def run_test_selected(prep, method: str, half_a: list[int], half_b,
                      references) -> dict[str, dict]:
    """The public code's protocol, from one run: ``test`` keeps the step with the best NoMUS
    on the whole test split and is scored there; ``test-half`` keeps the best step on half A
    and is scored on half B."""
    config = make_config(method, **experiment.method_config(prep, method, {"selection": "test"}))
    data = dataclasses.replace(prep.unlearn_data(), selection_test=prep.loaders.test)
    selector = TestAndHalfSelector(data, config, prep.device, half_a)
    res = unlearn(method, prep.original, dataclasses.replace(data, selector=selector), config)
    info = method_info(res)  # res.seconds is the method's cost: the selection's is in res.info
    model_a = copy.deepcopy(res.model)
    model_a.load_state_dict(selector.best_a[2])
    return {"test": {**full_record(prep, res.model, res.seconds, references, half_b), **info},
            "test-half": {**evaluate(model_a, half_b, seed=prep.seed, device=prep.device),
                          **info, "selected_step": float(selector.best_a[1])}}


class References:
    """One seed's LiRA reference models, with their confidences computed once for every
    target (the references' passes were most of an assessment's cost)."""

    def __init__(self, models, prep):
        self.models = list(models)
        self.confs = confidences(self.models, prep.loaders.forget_eval, prep.loaders.test,
                                 prep.device)


def lira_record(model, references: References, prep) -> dict:
    lira = lira_for_model(model, references.models, prep.loaders.forget_eval, prep.loaders.test,
                          prep.device, reference_confs=references.confs)
    return dict(lira_auc=lira.auc, lira_tpr=lira.tpr_at_fpr, lira_refs=lira.n_references)


def load_settings(path: str | None) -> dict | None:
    """The settings ``benchmarks/tune.py`` chose (its ``chosen``), or None for the profile's."""
    if path is None:
        return None
    return json.loads(Path(path).read_text())["chosen"]


def benchmark_profile(profile: str, dataset: str, settings: dict | None):
    prof = get_profile(profile, dataset=dataset)
    if settings is not None:
        prof = dataclasses.replace(prof, method_configs={**prof.method_configs, **settings},
                                   settings_from="the --settings file")
    return prof


def prepare_all(prof, dataset: str, seeds: int, runs: str, device: str, split_seed: int):
    """Every seed's reference models (trained once, then reused from ``runs``)."""
    return [experiment.prepare(prof, s, runs, dataset=dataset, device=device,
                               split_seed=split_seed, progress=False) for s in range(seeds)]


def run_seeds(preps, only, methods, selection_methods,
              on_record=None) -> dict[str, dict[int, dict]]:
    """Records of every model on the seeds in ``only``: {label: {seed: record}}.

    ``on_record(per_seed)`` runs after every record, so that a part that runs out of time
    still leaves what it finished."""
    per_seed: dict[str, dict[int, dict]] = {}
    for prep in tqdm([p for p in preps if p.seed in only], desc="seeds"):
        references = References([p.retrained for p in preps if p is not prep], prep)
        test = prep.loaders.test
        half_a, b = test_halves(len(test.dataset), prep.seed)
        half_b = dataclasses.replace(prep.loaders, test=DataLoader(Subset(test.dataset, b),
                                                                   batch_size=test.batch_size))
        for name, model, secs in (("original", prep.original, prep.original_meta["train_seconds"]),
                                  ("retrained", prep.retrained, prep.retrain_seconds)):
            rec = experiment.assess(prep, model, secs)
            rec.update(lira_record(model, references, prep))
            per_seed.setdefault(name, {})[prep.seed] = rec
        for method in tqdm(methods, desc=f"methods (seed {prep.seed})", leave=False):
            # dlfd_public always selects on the test set, as the public code did
            records = {} if method == "dlfd_public" else {
                "last": run_last(prep, method, half_b, references)}
            if method in selection_methods or method == "dlfd_public":
                records.update(run_test_selected(prep, method, half_a, half_b, references))
            for selection, rec in records.items():
                label = method if selection == "last" else f"{method} [{selection}]"
                per_seed.setdefault(label, {})[prep.seed] = rec
            if on_record is not None:
                on_record(per_seed)
    return per_seed


def row_rank(label: str, methods: list[str]) -> int:
    """Where ``label``'s rows go in the tables: in the order of a single run (the references,
    then each method followed by its ``[test]`` and ``[test-half]`` rows), whatever the order
    of the merged parts."""
    rows = [name + suffix for name in ("original", "retrained", *methods)
            for suffix in ("", " [test]", " [test-half]")]
    return rows.index(label) if label in rows else len(rows)


def finish(prof, dataset: str, preps, per_seed: dict[str, dict[int, dict]], split_seed: int,
           wall_seconds: float | None) -> dict:
    """Summary, paired CIs and MIA noise from the records of all seeds."""
    seeds = sorted({s for recs in per_seed.values() for s in recs})
    lists = {k: [v[s] for s in seeds if s in v] for k, v in per_seed.items()}
    return dict(profile=prof.name, dataset=dataset, seeds=len(seeds), split_seed=split_seed,
                seeds_per_label={k: sorted(v) for k, v in per_seed.items()},
                split_sizes=preps[0].manifest.sizes(), method_configs=prof.method_configs,
                settings_from=prof.settings_from, per_seed=lists,
                summary={k: reporting.aggregate(v) for k, v in lists.items()},
                paired=stats.paired_comparisons(per_seed), mia_noise=mia_noise(preps[0]),
                retrain_seconds=[p.retrain_seconds for p in preps],
                wall_seconds=wall_seconds)


def mia_noise(prep, eval_seeds=range(10)) -> dict:
    """Evaluation noise of the MIA for one fixed model: the spread over evaluation seeds of
    the single-subsample MIA and of the averaged one (docs/method.md §6 P2)."""
    losses = [per_sample_losses(prep.original, prep.loaders.forget_eval, prep.device),
              per_sample_losses(prep.original, prep.loaders.test, prep.device)]
    return mia_spread(*losses, eval_seeds=list(eval_seeds), repeats=10).as_dict()


def markdown(result: dict) -> str:
    s, p = result["summary"], result["paired"]
    main = {k: v for k, v in s.items() if "[" not in k}
    lines = [f"### {result['dataset']} · profile {result['profile']} · {result['seeds']} seeds "
             f"(split {result['split_seed']})", "",
             f"split sizes: {result['split_sizes']}", "",
             "Means ± std over seeds; `selection=last` (the model after its last step). "
             "LiRA: offline likelihood-ratio attack with the other seeds' retrained models "
             "as references.", "",
             reporting.render_table(main, COLUMNS, fmt=FMT), ""]
    for key, title in (("vs_dlfd", "DLFD"), ("vs_retrained", "the retrained model")):
        if key in p:
            lines += [f"Paired NoMUS difference to {title} (method − {title.split()[-1]}), "
                      "95% bootstrap CI over seeds:", "",
                      stats.render_paired(p[key], "NoMUS"), ""]
    if p.get("selection_vs_last"):
        lines += ["The public code's protocol (docs/method.md §5 D3): NoMUS of the step "
                  "selected on the test set minus NoMUS of the last step. `test` selects and "
                  "scores on the whole test split (leaks it); `test-half` selects on one half "
                  "and scores on the other, against the last step scored on that same half. "
                  "`dlfd_public` is compared with the project's `dlfd` (last step).", "",
                  stats.render_paired(p["selection_vs_last"], "NoMUS"), ""]
    dl = s.get("dlfd", {})
    if "frac_correct_mean_mean" in dl:
        lines.append(f"- DLFD: synthesised samples still classified as their label "
                     f"{dl['frac_correct_mean_mean']:.1%} ± {dl['frac_correct_mean_std']:.1%}; "
                     f"L∞ of δ {dl['linf_mean_mean'] * 255:.1f}/255; synthesised "
                     f"{dl['n_synthesised_mean']:.1f} of {dl['n_batches_mean']:.0f} batches; "
                     f"monitoring {dl['monitoring_share_mean']:.1%} of its time (at most "
                     f"{max(r['monitoring_share'] for r in result['per_seed']['dlfd']):.1%} "
                     "on one seed).")
    pub = s.get("dlfd_public [test]", {})
    if "frac_correct_mean_mean" in pub:
        lines.append(f"- dlfd_public: {pub['frac_correct_mean_mean']:.1%} of its synthesised "
                     "samples keep their label.")
    n = result["mia_noise"]
    lines.append(f"- MIA evaluation noise for one fixed model (the original, seed 0), std over "
                 f"{len(n['eval_seeds'])} evaluation seeds: single subsample "
                 f"{n['single_std']:.4f}, averaged over {n['repeats']} "
                 f"{n['averaged_std']:.4f}.")
    if result.get("wall_seconds") is not None:
        lines.append(f"- Wall time of this benchmark run: {result['wall_seconds'] / 60:.1f} min.")
    rt = result["retrain_seconds"]
    lines.append(f"- Retraining took {sum(rt) / len(rt):.1f} s per seed (RTE is measured against "
                 f"it); method settings {result['settings_from']}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--dataset", default="orl", choices=["orl", "fashion-mnist"])
    parser.add_argument("--seeds", type=int, default=None,
                        help="default: 10 on orl, 5 on fashion-mnist")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--selection-methods", nargs="*", default=None,
                        help="methods also run with test-set selection (default: all; the flag "
                             "alone: none)")
    parser.add_argument("--runs", default=None,
                        help="folder for the reference models (default: a new temporary "
                             "folder, so that retraining is timed in this run)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--settings", default=None,
                        help="a tune_<dataset>_<profile>.json whose chosen settings replace the "
                             "profile's (default: dlfd/profiles.py)")
    parser.add_argument("--only-seeds", nargs="*", type=int, default=None,
                        help="run only these seeds and write their records to a part file "
                             "(to spread one benchmark over processes; see --merge)")
    parser.add_argument("--merge", nargs="*", default=None,
                        help="part files to combine into the final tables")
    parser.add_argument("--wall-seconds", type=float, default=None,
                        help="with --merge: the wall time of the parts' run, measured outside "
                             "(parts run side by side, so their own times do not add up)")
    args = parser.parse_args(argv)
    seeds = args.seeds or (10 if args.dataset == "orl" else 5)
    if seeds < 3:
        parser.error(f"--seeds {seeds}: expected at least 3 (LiRA needs 2 reference models)")
    t0 = time.perf_counter()
    prof = benchmark_profile(args.profile, args.dataset, load_settings(args.settings))
    methods = list(args.methods or [*prof.methods, "dlfd", "dlfd_public"])
    selection_methods = methods if args.selection_methods is None else args.selection_methods
    runs = args.runs or tempfile.mkdtemp(prefix="dlfd-bench-")
    preps = prepare_all(prof, args.dataset, seeds, runs, args.device, args.split_seed)
    out = Path(args.out)
    stem = f"unlearning_{args.dataset}_{prof.name}"
    if args.only_seeds is not None:
        part = out / f"part_{stem}_{'-'.join(map(str, args.only_seeds))}.json"

        def save_part(per_seed):
            reporting.save_json({k: {str(s): r for s, r in v.items()}
                                 for k, v in per_seed.items()}, part, overwrite=True)

        save_part(run_seeds(preps, set(args.only_seeds), methods, selection_methods, save_part))
        print(f"wrote {part}")
        return 0
    if args.merge is not None:
        per_seed = {}
        for path in args.merge:
            for label, recs in json.loads(Path(path).read_text()).items():
                per_seed.setdefault(label, {}).update({int(s): r for s, r in recs.items()})
        per_seed = dict(sorted(per_seed.items(), key=lambda item: row_rank(item[0], methods)))
    else:
        per_seed = run_seeds(preps, set(range(seeds)), methods, selection_methods)
    # a merge's own time says nothing about the parts' runs: their wall time comes from outside
    result = finish(prof, args.dataset, preps, per_seed, args.split_seed,
                    args.wall_seconds if args.merge is not None else time.perf_counter() - t0)
    reporting.save_json(result, out / f"{stem}.json", overwrite=True)
    md = markdown(result)
    (out / f"{stem}.md").write_text(md)
    print(md)
    print(f"wrote {out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
