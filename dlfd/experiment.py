"""The experiment plumbing the notebooks, the CLI and the benchmark share.

:func:`prepare` turns (profile, seed, dataset) into a split, its data, and the original and
retrained models (trained once, then reused from ``out_dir``); the profile is adapted to the
dataset by :func:`dlfd.profiles.get_profile`. :func:`compare` runs unlearning methods on a
prepared seed and evaluates every model with one report function, so that each notebook is a
few calls.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checks import check_int, require
from .collapse import collapse_from_embeddings
from .data import (ImageTensorDataset, Loaders, Manifest, SplitData, load_split_data,
                   make_loaders, make_split, manifest_from_predefined)
from .metrics import (EVAL_SPLITS, SplitOutputs, accuracy, all_outputs, evaluate,
                      split_outputs)
from .profiles import PERSON_SETTINGS, Profile, get_profile
from .reporting import aggregate, save_json
from .source import Source
from .sources import get_source
from .train import TrainConfig, select_device, train_or_load
from .unlearn import UnlearnData, UnlearnResult, unlearn


@dataclass
class Prepared:
    """One seed's split, data, loaders and reference models."""

    profile: Profile
    seed: int
    folder: Path
    source: Source
    manifest: Manifest
    data: SplitData
    loaders: Loaders
    original: nn.Module
    retrained: nn.Module
    original_meta: dict
    retrained_meta: dict
    device: torch.device
    split_seed: int | None = None  # None: the same as ``seed``
    # the references' outputs that every assessment compares against; the references are
    # never modified (a method works on a copy), so they are computed once
    _reference_outputs: dict = field(default_factory=dict, repr=False)

    def reference_outputs(self, which: str, split: str) -> SplitOutputs:
        """``which`` ("original" or "retrained") model's outputs on an evaluation split
        (a key of :data:`dlfd.metrics.EVAL_SPLITS`)."""
        key = (which, split)
        if key not in self._reference_outputs:
            model = {"original": self.original, "retrained": self.retrained}[which]
            loader = getattr(self.loaders, EVAL_SPLITS[split])
            self._reference_outputs[key] = split_outputs(model, loader, self.device)
        return self._reference_outputs[key]

    @property
    def retrain_seconds(self) -> float:
        return float(self.retrained_meta["train_seconds"])

    def batch(self, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed, seeded batch of up to ``n`` eval-transform images from ``split``."""
        ds = self.data.dataset(split)
        g = torch.Generator().manual_seed(self.seed)
        idx = torch.randperm(len(ds), generator=g)[:n]
        xs, ys = zip(*(ds[int(i)] for i in idx))
        return torch.stack(xs), torch.stack(ys)

    def unlearn_data(self, batch_size: int | None = None,
                     selection_test: bool = False) -> UnlearnData:
        """Loaders for unlearning: ``batch_size`` (default the profile's) makes one epoch
        tens of steps (docs/method.md, §6 P3 "steps per epoch"). The forget batch never
        exceeds the set. ``selection_test`` hands the test split to the method, for
        ``selection="test"`` only: the public code's protocol, which leaks the test set
        (docs/method.md §5 D3 "test-set selection")."""
        bs = batch_size or self.profile.unlearn_batch_size
        ld = make_loaders(self.data, bs, self.seed, augment=self.profile.augment)
        n_forget = len(self.data.labels["forget"])
        forget = ld.forget_train
        if bs > n_forget:
            forget = make_loaders(self.data, n_forget, self.seed,
                                  augment=self.profile.augment).forget_train
        return UnlearnData(ld.retain_train, forget, ld.retain_eval, ld.forget_eval, ld.val,
                           self.data.num_classes, self.data.norm, self.original,
                           selection_test=self.loaders.test if selection_test else None)


def split_for(source: Source, profile: str | Profile, seed: int, forget: str = "random",
              forget_ids=()) -> Manifest:
    """The split protocol of ``profile``, adapted to ``source``'s dataset, for one seed (or
    the dataset's own splits when it ships them).

    The per-class counts (or, for datasets without their own entry in
    :data:`dlfd.profiles.DATASET_SETTINGS`, the per-class fractions) come from
    :func:`dlfd.profiles.get_profile`, so the notebooks, the CLI and the benchmark split a
    dataset alike (docs/method.md §3). ``seed`` here is the *split* seed: it draws the split
    and the forget set.
    """
    if source.predefined:
        return manifest_from_predefined(source)
    profile = get_profile(profile, dataset=source.name)
    return make_split(source, seed=seed, n_train=profile.n_train, n_val=profile.n_val,
                      n_test=profile.n_test, forget=forget, forget_frac=profile.forget_frac,
                      forget_ids=forget_ids, fractions=profile.split_fractions,
                      max_train=profile.max_train)


def run_tag(profile: Profile, seed: int, split_seed: int | None = None, forget: str = "random",
            forget_ids=()) -> str:
    """The run sub-folder of one seed: ``<dataset>_<profile>[_split<S>]_seed<N>[_forget_<ids>]``.

    The profile is part of the name so that switching profile with the same ``out_dir`` does
    not run into the checkpoints' refuse-to-overwrite guard; the split seed appears only when
    it differs from the initialisation seed (the benchmark fixes the split and varies the
    initialisation, docs/method.md §5 D6 "single runs").

    Examples
    --------
    >>> from dlfd.profiles import get_profile
    >>> run_tag(get_profile("cpu", dataset="orl"), 2, split_seed=0)
    'orl_cpu_split0_seed2'
    """
    require(profile.dataset is not None,
            f"Profile {profile.name!r} is not adapted to a dataset; build it with "
            f"get_profile({profile.name!r}, dataset=...).")
    split = "" if split_seed is None or split_seed == seed else f"_split{split_seed}"
    ids = "" if forget == "random" else "_forget_" + "-".join(str(i) for i in forget_ids)
    return f"{profile.dataset}_{profile.name}{split}_seed{seed}{ids}"


def load_seed(profile: str | Profile, seed: int, out_dir: str | Path, dataset: str = "orl",
              dataset_root: str | None = None, forget: str = "random", forget_ids=(),
              split_seed: int | None = None):
    """(source, manifest, split data, run sub-folder) for one seed of a profile.

    ``split_seed`` (default ``seed``) draws the split and the forget set; ``seed`` alone
    names the initialisation. The sub-folder is :func:`run_tag`.
    """
    profile = get_profile(profile, dataset=dataset)
    split_seed = seed if split_seed is None else split_seed
    check_int("seed", seed, low=0)
    check_int("split_seed", split_seed, low=0)
    source = get_source(dataset, dataset_root)
    manifest = split_for(source, profile, split_seed, forget, forget_ids)
    tag = run_tag(profile, seed, split_seed, forget, forget_ids)
    split = load_split_data(source, manifest, profile.image_size)
    return source, manifest, split, Path(out_dir) / tag


def recipe(profile: Profile, seed: int) -> TrainConfig:
    """The training recipe of the original and retrained models for a profile."""
    return TrainConfig(epochs=profile.epochs, lr=profile.lr, batch_size=profile.batch_size,
                       seed=seed)


def prepare(profile: str | Profile, seed: int, out_dir: str | Path, dataset: str = "orl",
            dataset_root: str | None = None, device: str = "auto", forget: str = "random",
            forget_ids=(), progress: bool = True, overwrite: bool = False,
            split_seed: int | None = None) -> Prepared:
    """Split, load, and train (or reuse) the original and retrained models for one seed.

    ``profile`` is adapted to ``dataset`` (:func:`dlfd.profiles.get_profile`); the
    returned :attr:`Prepared.profile` is the adapted one. ``dataset_root`` is where the
    dataset's files are (needed for ``imagefolder`` and ``csv``). ``split_seed`` (default
    ``seed``) draws the split and the forget set, ``seed`` the initialisation and the batch
    order: fixing ``split_seed`` and varying ``seed`` gives retrained models that share the
    forget set. Files go to ``out_dir/<tag>/`` (:func:`run_tag`): ``manifest.csv``,
    ``original.pt``, ``retrained.pt``. Existing files are reused only if they match (same
    split, arch and recipe); anything else is an error unless ``overwrite`` is set.
    """
    profile = get_profile(profile, dataset=dataset)
    dev = select_device(device)
    source, manifest, split, folder = load_seed(profile, seed, out_dir, dataset, dataset_root,
                                                forget, forget_ids, split_seed)
    manifest.save(folder / "manifest.csv", overwrite=overwrite)
    loaders = make_loaders(split, profile.batch_size, seed, augment=profile.augment)
    cfg = recipe(profile, seed)
    train_loader = DataLoader(
        split.train_dataset(augment=profile.augment), batch_size=cfg.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed))
    common = dict(arch=profile.arch, num_classes=split.num_classes, manifest_hash=manifest.hash,
                  cfg=cfg, device=dev, val_loader=loaders.val, progress=progress,
                  overwrite=overwrite, extra_meta=dict(image_size=profile.image_size))
    original, om = train_or_load(folder / "original.pt", loader=train_loader,
                                 desc=f"original (seed {seed})", **common)
    retrained, rm = train_or_load(folder / "retrained.pt", loader=loaders.retain_train,
                                  desc=f"retrained (seed {seed})", **common)
    return Prepared(profile, seed, folder, source, manifest, split, loaders, original,
                    retrained, om, rm, dev, seed if split_seed is None else split_seed)


@dataclass
class Comparison:
    """Per-model evaluation records and the unlearning results behind them."""

    records: dict[str, dict] = field(default_factory=dict)
    results: dict[str, UnlearnResult] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)  # labels loaded from saved records


def assess(prep: Prepared, model: nn.Module, seconds: float | None = None) -> dict:
    """One flat record: the evaluation protocol plus the correlation-collapse numbers.

    One forward pass per split feeds both (:func:`dlfd.metrics.all_outputs`); the
    references' outputs are cached on ``prep``.
    """
    outs = all_outputs(model, prep.loaders, prep.device)
    rec = evaluate(model, prep.loaders, seed=prep.seed, device=prep.device, seconds=seconds,
                   retrain_seconds=prep.retrain_seconds, outputs=outs,
                   retrained_forget=prep.reference_outputs("retrained", "forget"))
    rec.update(collapse_from_embeddings(
        outs["retain"].embeddings.numpy(), outs["retain"].labels.numpy(),
        outs["test"].embeddings.numpy(), outs["test"].labels.numpy(),
        prep.reference_outputs("original", "test").embeddings.numpy()))
    return rec


def method_config(prep: Prepared, method: str, overrides: dict | None = None) -> dict:
    """A method's config overrides: the seed and the device, the profile's settings for the
    method (chosen on validation), then ``overrides``."""
    cfg = dict(seed=prep.seed, device=str(prep.device))
    cfg.update(prep.profile.method_configs.get(method, {}))
    cfg.update(overrides or {})
    return cfg


# What a method reports about itself that belongs next to its evaluation: DLFD's synthesis
# diagnostics (docs/method.md §2.1) and which step a selection rule kept.
DIAGNOSTICS = ("frac_correct_mean", "linf_mean", "n_synthesised", "n_batches", "selected_step",
               "n_steps")


def compare(prep: Prepared, runs, progress: bool = True, with_references: bool = True,
            selection_test: bool = False, reuse=()) -> Comparison:
    """Run methods on ``prep`` and assess each model (and the two references).

    ``runs`` is a list of method names, or a dict label → (method, overrides) for variants
    such as the ablation; overrides go on top of :func:`method_config`. ``selection_test``
    gives the methods the test split for ``selection="test"`` (the public code's protocol,
    docs/method.md §5 D3); leave it off for honest numbers.

    Every record is also saved in ``prep.folder/records/`` with the settings that produced
    it. A label in ``reuse`` (``"original"`` and ``"retrained"`` included) whose saved
    record has the same settings is loaded instead of rerun, so that notebook 04 does not
    repeat what notebook 02 computed; it then has a record but no entry in
    :attr:`Comparison.results` (no model).
    """
    runs = dict(runs) if isinstance(runs, dict) else {m: (m, {}) for m in runs}
    reuse = set(reuse)
    out = Comparison()
    ud = prep.unlearn_data(selection_test=selection_test)
    if with_references:
        for name, model, secs in (("original", prep.original, prep.original_meta["train_seconds"]),
                                  ("retrained", prep.retrained, prep.retrain_seconds)):
            out.records[name] = _cached(prep, name, {"reference": name}, name in reuse,
                                        lambda: assess(prep, model, secs), out.reused)
    for label, (method, overrides) in tqdm(runs.items(), desc=f"methods (seed {prep.seed})",
                                           disable=not progress, leave=False):
        cfg = method_config(prep, method, overrides)

        def run():
            res = unlearn(method, prep.original, ud, cfg)
            out.results[label] = res
            rec = assess(prep, res.model, res.seconds)
            rec.update({k: float(res.info[k]) for k in DIAGNOSTICS if res.info.get(k) is not None})
            return rec

        settings = {"method": method, "config": cfg, "selection_test": selection_test}
        out.records[label] = _cached(prep, label, settings, label in reuse, run, out.reused)
    return out


def _cached(prep: Prepared, label: str, settings: dict, reuse: bool, compute,
            reused: list) -> dict:
    """``compute()``'s record, saved under ``prep.folder/records/``; with ``reuse``, a saved
    record of the same settings (and the same reference models) is returned instead, and
    ``label`` appended to ``reused``."""
    key = json.loads(json.dumps({**settings, "profile": prep.profile.as_dict(),
                                 "original": prep.original_meta.get("manifest_hash"),
                                 "trained": [prep.original_meta.get("train_seconds"),
                                             prep.retrain_seconds]}, default=str))
    path = prep.folder / "records" / (re.sub(r"[^A-Za-z0-9_.-]+", "_", label) + ".json")
    if reuse and path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            reused.append(label)
            # save_json stores NaN as null
            return {k: float("nan") if v is None else v for k, v in saved["record"].items()}
    rec = compute()
    save_json({"key": key, "record": rec}, path, overwrite=True)
    return rec


def summarize(comparisons: list[Comparison]) -> dict[str, dict]:
    """Mean and std over seeds for every model label (docs/method.md, §5 D6 "single runs")."""
    labels = list(dict.fromkeys(k for c in comparisons for k in c.records))
    return {k: aggregate([c.records[k] for c in comparisons if k in c.records]) for k in labels}


def by_seed(seeds, *comparisons: list[Comparison]) -> dict[str, dict[int, dict]]:
    """Label → {seed: record} from lists of comparisons, each list in the order of ``seeds``
    (the input of :func:`dlfd.stats.paired_comparisons`)."""
    out: dict[str, dict[int, dict]] = {}
    for comps in comparisons:
        require(len(comps) == len(seeds), f"got {len(comps)} comparisons for {len(seeds)} seeds; "
                "expected one per seed, in the same order.")
        for seed, comp in zip(seeds, comps):
            for label, rec in comp.records.items():
                out.setdefault(label, {})[seed] = rec
    return out


def forget_person(profile: str | Profile, person: int, seed: int, out_dir: str | Path,
                  dataset: str = "orl", device: str = "auto", methods=("dlfd",),
                  progress: bool = True, dataset_root: str | None = None,
                  settings: dict | None = None) -> dict[str, dict]:
    """"Forget this person": the ``identities`` policy for one class, then each method.

    For every model (original, retrained, each method) it returns the accuracy on the
    person's forgotten training photos, on the person's held-out (val + test) photos, and on
    everyone else's test photos. The retrained model never saw the person: its numbers are
    the target. Each method runs with its random-forgetting settings updated by
    ``settings[method]``; by default :data:`dlfd.profiles.PERSON_SETTINGS`, chosen on
    validation for this request (``benchmarks/tune.py --request person``).
    """
    prep = prepare(profile, seed, out_dir, dataset, dataset_root, device=device,
                   forget="identities", forget_ids=[person], progress=progress)
    if settings is None:
        settings = PERSON_SETTINGS.get((prep.profile.dataset, prep.profile.name), {})
    models = {"original": prep.original, "retrained": prep.retrained}
    ud = prep.unlearn_data()
    for m in tqdm(methods, desc=f"methods (person {person})", disable=not progress, leave=False):
        models[m] = unlearn(m, prep.original, ud, method_config(prep, m, settings.get(m))).model
    data = prep.data
    held_x = torch.cat([data.images["val"], data.images["test"]])
    held_y = torch.cat([data.labels["val"], data.labels["test"]])
    mine = held_y == person
    others = data.labels["test"] != person
    groups = {"person_forget_acc": (data.images["forget"], data.labels["forget"]),
              "person_heldout_acc": (held_x[mine], held_y[mine]),
              "others_test_acc": (data.images["test"][others], data.labels["test"][others])}
    return {name: {key: _accuracy_on(model, x, y, data, prep.device)
                   for key, (x, y) in groups.items()}
            for name, model in models.items()}


def _accuracy_on(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, data: SplitData,
                 device: torch.device) -> float:
    """Accuracy on uint8 ``images`` (eval transform); NaN for an empty group."""
    if len(labels) == 0:
        return float("nan")
    loader = DataLoader(ImageTensorDataset(images, labels, data.norm), batch_size=256)
    return accuracy(model, loader, device)


def write_report(out_dir: str | Path, sections: dict[str, str]) -> Path:
    """``<out_dir>/report.md``: one heading and one markdown table per section."""
    path = Path(out_dir) / "report.md"
    body = ["# DLFD tutorial run report", ""]
    for title, table in sections.items():
        body += [f"## {title}", "", table, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(body))
    return path
