"""The experiment plumbing the notebooks, the CLI and the benchmark share.

:func:`prepare` turns (profile, seed, dataset) into a split, its data, and the original and
retrained models (trained once, then reused from ``out_dir``); the profile is adapted to the
dataset by :func:`dlfd.profiles.get_profile`. :func:`compare` runs unlearning methods on a
prepared seed and evaluates every model with one report function, so that each notebook is a
few calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .collapse import collapse_report
from .data import (ImageTensorDataset, Loaders, Manifest, SplitData, load_split_data,
                   make_loaders, make_split, manifest_from_predefined)
from .metrics import accuracy, evaluate
from .profiles import Profile, get_profile
from .reporting import aggregate
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

    def unlearn_data(self, batch_size: int | None = None) -> UnlearnData:
        """Loaders for unlearning: ``batch_size`` (default the profile's) makes one epoch
        tens of steps (docs/method.md, §6 P3 "steps per epoch"). The forget batch never
        exceeds the set."""
        bs = batch_size or self.profile.unlearn_batch_size
        ld = make_loaders(self.data, bs, self.seed, augment=self.profile.augment)
        n_forget = len(self.data.labels["forget"])
        forget = ld.forget_train
        if bs > n_forget:
            forget = make_loaders(self.data, n_forget, self.seed,
                                  augment=self.profile.augment).forget_train
        return UnlearnData(ld.retain_train, forget, ld.retain_eval, ld.forget_eval, ld.val,
                           self.data.num_classes, self.data.norm, self.original)


def split_for(source: Source, profile: str | Profile, seed: int, forget: str = "random",
              forget_ids=()) -> Manifest:
    """The split protocol of ``profile``, adapted to ``source``'s dataset, for one seed (or
    the dataset's own splits when it ships them).

    The per-class counts come from :func:`dlfd.profiles.get_profile`, so the notebooks,
    the CLI and the benchmark split a dataset alike (docs/method.md §3).
    """
    if source.predefined:
        return manifest_from_predefined(source)
    profile = get_profile(profile, dataset=source.name)
    return make_split(source, seed=seed, n_train=profile.n_train, n_val=profile.n_val,
                      n_test=profile.n_test, forget=forget, forget_frac=profile.forget_frac,
                      forget_ids=forget_ids)


def load_seed(profile: str | Profile, seed: int, out_dir: str | Path, dataset: str = "orl",
              dataset_root: str | None = None, forget: str = "random", forget_ids=()):
    """(source, manifest, split data, run sub-folder) for one seed of a profile."""
    profile = get_profile(profile, dataset=dataset)
    source = get_source(dataset, dataset_root)
    manifest = split_for(source, profile, seed, forget, forget_ids)
    tag = f"{dataset}_seed{seed}" + ("" if forget == "random" else
                                     "_forget_" + "-".join(str(i) for i in forget_ids))
    split = load_split_data(source, manifest, profile.image_size)
    return source, manifest, split, Path(out_dir) / tag


def recipe(profile: Profile, seed: int) -> TrainConfig:
    """The training recipe of the original and retrained models for a profile."""
    return TrainConfig(epochs=profile.epochs, lr=profile.lr, batch_size=profile.batch_size,
                       seed=seed)


def prepare(profile: str | Profile, seed: int, out_dir: str | Path, dataset: str = "orl",
            dataset_root: str | None = None, device: str = "auto", forget: str = "random",
            forget_ids=(), progress: bool = True, overwrite: bool = False) -> Prepared:
    """Split, load, and train (or reuse) the original and retrained models for one seed.

    ``profile`` is adapted to ``dataset`` (:func:`dlfd.profiles.get_profile`); the
    returned :attr:`Prepared.profile` is the adapted one. Files go to ``out_dir/<tag>/``:
    ``manifest.csv``, ``original.pt``, ``retrained.pt``. Existing files are reused only if
    they match (same split, arch and recipe); anything else is an error unless
    ``overwrite`` is set.
    """
    profile = get_profile(profile, dataset=dataset)
    dev = select_device(device)
    source, manifest, split, folder = load_seed(profile, seed, out_dir, dataset, dataset_root,
                                                forget, forget_ids)
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
                    retrained, om, rm, dev)


@dataclass
class Comparison:
    """Per-model evaluation records and the unlearning results behind them."""

    records: dict[str, dict] = field(default_factory=dict)
    results: dict[str, UnlearnResult] = field(default_factory=dict)


def assess(prep: Prepared, model: nn.Module, seconds: float | None = None) -> dict:
    """One flat record: the evaluation protocol plus the correlation-collapse numbers."""
    rec = evaluate(model, prep.loaders, retrained=prep.retrained, seed=prep.seed,
                   device=prep.device, seconds=seconds, retrain_seconds=prep.retrain_seconds)
    rec.update(collapse_report(model, prep.loaders, prep.original, prep.device))
    return rec


def method_config(prep: Prepared, method: str, overrides: dict | None = None) -> dict:
    """A method's config overrides: the seed and the device, the profile's settings for the
    method (chosen on validation), then ``overrides``."""
    cfg = dict(seed=prep.seed, device=str(prep.device))
    cfg.update(prep.profile.method_configs.get(method, {}))
    cfg.update(overrides or {})
    return cfg


def compare(prep: Prepared, runs, progress: bool = True,
            with_references: bool = True) -> Comparison:
    """Run methods on ``prep`` and assess each model (and the two references).

    ``runs`` is a list of method names, or a dict label → (method, overrides) for variants
    such as the ablation; overrides go on top of :func:`method_config`.
    """
    runs = dict(runs) if isinstance(runs, dict) else {m: (m, {}) for m in runs}
    out = Comparison()
    ud = prep.unlearn_data()
    if with_references:
        out.records["original"] = assess(prep, prep.original, prep.original_meta["train_seconds"])
        out.records["retrained"] = assess(prep, prep.retrained, prep.retrain_seconds)
    for label, (method, overrides) in tqdm(runs.items(), desc=f"methods (seed {prep.seed})",
                                           disable=not progress, leave=False):
        res = unlearn(method, prep.original, ud, method_config(prep, method, overrides))
        out.results[label] = res
        out.records[label] = assess(prep, res.model, res.seconds)
    return out


def summarize(comparisons: list[Comparison]) -> dict[str, dict]:
    """Mean and std over seeds for every model label (docs/method.md, §5 D6 "single runs")."""
    labels = list(dict.fromkeys(k for c in comparisons for k in c.records))
    return {k: aggregate([c.records[k] for c in comparisons if k in c.records]) for k in labels}


def forget_person(profile: str | Profile, person: int, seed: int, out_dir: str | Path,
                  dataset: str = "orl", device: str = "auto", methods=("dlfd",),
                  progress: bool = True) -> dict[str, dict]:
    """"Forget this person": the ``identities`` policy for one class, then each method.

    For every model (original, retrained, each method) it returns the accuracy on the
    person's forgotten training photos, on the person's held-out (val + test) photos, and on
    everyone else's test photos. The retrained model never saw the person: its numbers are
    the target.
    """
    prep = prepare(profile, seed, out_dir, dataset, device=device, forget="identities",
                   forget_ids=[person], progress=progress)
    models = {"original": prep.original, "retrained": prep.retrained}
    ud = prep.unlearn_data()
    for m in methods:
        models[m] = unlearn(m, prep.original, ud, method_config(prep, m)).model
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
