"""The split protocol, manifests, leak checks, normalisation and the loaders.

A dataset is a :class:`~dlfd.source.Source` (:mod:`dlfd.sources` builds one by name; this
module re-exports :func:`~dlfd.sources.get_source`). A seeded split protocol turns a source
into a *manifest*, one row per image (path, label, split, content hash) with the splits
``retain``, ``forget``, ``val`` and ``test`` (train = retain ∪ forget; docs/method.md §1 and
§3). The manifest is what a run folder saves, what checkpoints point to (by its hash) and
what is checked for leaks before any image is used.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch.nn.functional import interpolate
from torch.utils.data import DataLoader, Dataset

from .checks import check_choice, check_int, is_int, is_number, require
from .fileio import atomic_write
from .source import SPLITS, DatasetNotFoundError, Source
from .sources import get_source

__all__ = ["FORGET_POLICIES", "SplitLeakError", "content_hash", "Manifest", "validate_manifest",
           "make_split", "fraction_counts", "manifest_from_predefined", "Normalization",
           "prepare_images", "ImageTensorDataset", "SplitData", "load_split_data", "Loaders",
           "make_loaders", "get_source"]

# random: the MUFAC / CIFAR-10 random-forgetting protocol; identities: "forget this person".
FORGET_POLICIES = ("random", "identities")
MANIFEST_COLUMNS = ("path", "label", "split", "sha256")


class SplitLeakError(ValueError):
    """A manifest puts one image (by path or by content hash) into two splits."""


# --------------------------------------------------------------------------- manifests


def content_hash(image: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and their shape, so re-encoded copies still collide."""
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


@dataclass
class Manifest:
    """One row per image: ``path``, ``label``, ``split`` and ``sha256``.

    ``meta`` records the protocol's arguments (seed, per-class counts, forget policy); it
    is not part of the CSV or of :attr:`hash`.
    """

    dataset: str
    rows: list[dict]
    meta: dict = field(default_factory=dict)

    def paths(self, split: str) -> list[str]:
        return [r["path"] for r in self.rows if r["split"] == split]

    def labels(self, split: str) -> list[int]:
        return [int(r["label"]) for r in self.rows if r["split"] == split]

    def sizes(self) -> dict[str, int]:
        return {s: sum(r["split"] == s for r in self.rows) for s in SPLITS}

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: r[k] for k in MANIFEST_COLUMNS})
        return buf.getvalue()

    @property
    def hash(self) -> str:
        """A short, stable fingerprint of the rows (what checkpoints record)."""
        return hashlib.sha256(self.to_csv().encode()).hexdigest()[:16]

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the CSV atomically; saving the same split again is a no-op, a different one
        is refused unless ``overwrite`` is set."""
        path = Path(path)
        text = self.to_csv()
        if path.exists() and not overwrite:
            if path.read_text() == text:
                return path
            raise FileExistsError(f"{path} exists and holds a different split; pass overwrite=True "
                                  "or choose another run folder.")
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, dataset: str = "orl") -> "Manifest":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No manifest at {path}.")
        with open(path, newline="") as f:
            rows = [dict(r, label=int(r["label"])) for r in csv.DictReader(f)]
        m = cls(dataset, rows)
        validate_manifest(m)
        return m


def validate_manifest(manifest: Manifest) -> None:
    """Refuse a manifest whose splits share a path or an image's content: an image both
    trained on and tested on would bias the accuracies and the MIA (docs/method.md §3)."""
    unknown = sorted({r["split"] for r in manifest.rows} - set(SPLITS))
    require(not unknown, f"Unknown split name(s) {unknown}; expected a subset of {SPLITS}.")
    seen_path: dict[str, str] = {}
    seen_hash: dict[str, tuple[str, str]] = {}
    problems = []
    for r in manifest.rows:
        p, s, h = r["path"], r["split"], r["sha256"]
        if p in seen_path:
            problems.append(f"{p} is listed in both '{seen_path[p]}' and '{s}'")
        seen_path[p] = s
        if h in seen_hash and seen_hash[h][1] != s:
            first_path, first_split = seen_hash[h]
            problems.append(f"{p} ({s}) has the same pixels as {first_path} ({first_split})")
        seen_hash.setdefault(h, (p, s))
    if problems:
        raise SplitLeakError("The splits are not disjoint:\n  " + "\n  ".join(problems))


def _check_split_arguments(source: Source, n_train, n_val, n_test, forget: str, forget_frac,
                           forget_ids: Sequence[int], fractions, max_train) -> None:
    check_choice("forget", forget, FORGET_POLICIES)
    if fractions is None:
        check_int("n_train", n_train, low=1)
        check_int("n_val", n_val, low=0)
        require(n_test is None or (is_int(n_test) and n_test >= 0),
                f"n_test={n_test!r}; expected None (the rest) or an integer ≥ 0.")
    else:
        ok = (isinstance(fractions, (tuple, list)) and len(fractions) == 3
              and all(is_number(f) and f > 0 for f in fractions) and sum(fractions) <= 1 + 1e-9)
        require(ok, f"fractions={fractions!r}; expected (train, val, test) shares > 0 that sum "
                    "to at most 1.")
        check_int("max_train", max_train, low=1, allow_none=True)
    if forget == "random":
        require(is_number(forget_frac) and 0 < forget_frac < 1,
                f"forget_frac={forget_frac!r}; expected a fraction in (0, 1).")
        return
    ids = {int(c) for c in forget_ids}
    unknown = sorted(ids - set(range(source.num_classes)))
    require(bool(ids) and not unknown,
            f"forget_ids={list(forget_ids)!r}; expected a non-empty list of class indices in "
            f"0..{source.num_classes - 1}.")


def _by_class(source: Source) -> dict[int, list[int]]:
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(source.labels):
        by_class.setdefault(y, []).append(i)
    return by_class


def _per_class_splits(source: Source, rng: np.random.Generator, n_train: int, n_val: int,
                      n_test: int | None) -> dict[int, str]:
    """Item index → retain (for now: all of train), val or test; per class, in class order,
    so val and test hold the same identities as train."""
    by_class = _by_class(source)
    need = n_train + n_val + (n_test or 0)
    test_end = None if n_test is None else need
    split_of: dict[int, str] = {}
    for y in sorted(by_class):
        idx = list(rng.permutation(by_class[y]))
        if len(idx) < need or (n_test is None and len(idx) <= n_train + n_val):
            raise ValueError(f"Class {source.class_names[y]!r} has {len(idx)} images; the split "
                             f"{n_train}/{n_val}/{n_test or 'rest'} needs more.")
        for i in idx[:n_train]:
            split_of[i] = "retain"
        for i in idx[n_train:n_train + n_val]:
            split_of[i] = "val"
        for i in idx[n_train + n_val:test_end]:
            split_of[i] = "test"
    return split_of


def fraction_counts(n: int, fractions: Sequence[float],
                    max_train: int | None = None) -> tuple[int, int, int]:
    """(train, val, test) images of a class of ``n`` images under the shares ``fractions``.

    A class larger than ``max_train / train_share`` is first cut to that size, so the cap
    shrinks its val and test alike and the shares hold. Train is rounded down and val
    rounded; test takes the rest when the shares sum to 1, else its own rounded share.

    Examples
    --------
    >>> fraction_counts(180, (0.5, 0.15, 0.35))
    (90, 27, 63)
    >>> fraction_counts(1000, (0.5, 0.15, 0.35), max_train=100)
    (100, 30, 70)
    """
    f_train, f_val, f_test = (float(f) for f in fractions)
    if max_train is not None:
        n = min(n, int(max_train / f_train + 1e-9))
    n_train = int(f_train * n + 1e-9)
    n_val = int(round(f_val * n))
    if abs(f_train + f_val + f_test - 1) < 1e-9:
        n_test = n - n_train - n_val
    else:
        n_test = min(int(round(f_test * n)), n - n_train - n_val)
    return n_train, n_val, max(n_test, 0)


def _fraction_splits(source: Source, rng: np.random.Generator, fractions: Sequence[float],
                     max_train: int | None) -> dict[int, str]:
    """As :func:`_per_class_splits`, with per-class counts from :func:`fraction_counts`."""
    split_of: dict[int, str] = {}
    by_class = _by_class(source)
    for y in sorted(by_class):
        idx = list(rng.permutation(by_class[y]))
        n_train, n_val, n_test = fraction_counts(len(idx), fractions, max_train)
        if min(n_train, n_val, n_test) < 1:
            raise ValueError(
                f"Class {source.class_names[y]!r} has {len(idx)} images: the shares "
                f"{tuple(fractions)} give it {n_train} train, {n_val} val and {n_test} test "
                "images; every class needs at least 1 in each. Add images to that class, "
                "remove it, or change the profile's split_fractions.")
        for i in idx[:n_train]:
            split_of[i] = "retain"
        for i in idx[n_train:n_train + n_val]:
            split_of[i] = "val"
        for i in idx[n_train + n_val:n_train + n_val + n_test]:
            split_of[i] = "test"
    return split_of


def _forget_choice(source: Source, rng: np.random.Generator, train: list[int], forget: str,
                   forget_frac: float, forget_ids: Sequence[int]) -> list[int]:
    """The training items that move to the forget set."""
    if forget == "random":
        n_forget = max(1, round(forget_frac * len(train)))
        return [int(i) for i in rng.choice(train, size=n_forget, replace=False)]
    ids = {int(c) for c in forget_ids}
    return [i for i in train if source.labels[i] in ids]


def _manifest_row(source: Source, key: str, label: int, split: str) -> dict:
    return {"path": key, "label": label, "split": split,
            "sha256": content_hash(source.load(key))}


def make_split(
    source: Source,
    seed: int = 0,
    n_train: int = 3,
    n_val: int = 1,
    n_test: int | None = None,
    forget: str = "random",
    forget_frac: float = 0.25,
    forget_ids: Sequence[int] = (),
    fractions: Sequence[float] | None = None,
    max_train: int | None = None,
) -> Manifest:
    """The seeded split protocol (docs/method.md §3; the counts: §6 P1 "memorisation").

    Parameters
    ----------
    source : Source
        The dataset.
    seed : int
        Seeds one generator that draws, class by class, the per-class order and then the
        forget set; the same seed gives the same manifest (and :attr:`Manifest.hash`).
    n_train, n_val : int
        Training and validation images per class; val and test hold the same identities
        as train.
    n_test : int or None
        Test images per class; ``None`` takes the rest.
    forget : {"random", "identities"}
        ``"random"`` moves ``round(forget_frac * |train|)`` train images, drawn across all
        classes, into the forget set (the MUFAC / CIFAR-10 random-forgetting protocol).
        ``"identities"`` forgets every train image of the classes in ``forget_ids``
        ("forget this person").
    forget_frac : float
        In (0, 1); only for ``forget="random"``.
    forget_ids : sequence of int
        Class indices; only for ``forget="identities"``.
    fractions : (float, float, float), optional
        Per-class (train, val, test) shares instead of ``n_train``/``n_val``/``n_test``, for
        a dataset whose class sizes are not known in advance
        (:data:`dlfd.profiles.GENERIC_SPLIT`; counts: :func:`fraction_counts`). Every class
        must get at least one image in each split.
    max_train : int, optional
        With ``fractions``: at most this many training images per class.

    Returns
    -------
    Manifest
        Validated: no path or pixel content in two splits.

    Examples
    --------
    >>> from dlfd.sources import orl_source
    >>> make_split(orl_source(), seed=0).sizes()
    {'retain': 90, 'forget': 30, 'val': 40, 'test': 240}
    """
    _check_split_arguments(source, n_train, n_val, n_test, forget, forget_frac, forget_ids,
                           fractions, max_train)
    rng = np.random.default_rng(seed)
    if fractions is None:
        split_of = _per_class_splits(source, rng, n_train, n_val, n_test)
    else:
        split_of = _fraction_splits(source, rng, fractions, max_train)
    train = sorted(i for i, s in split_of.items() if s == "retain")
    for i in _forget_choice(source, rng, train, forget, forget_frac, forget_ids):
        split_of[i] = "forget"
    rows = [_manifest_row(source, source.keys[i], source.labels[i], split_of[i])
            for i in sorted(split_of)]
    counts = (dict(n_train=n_train, n_val=n_val, n_test=n_test) if fractions is None else
              dict(fractions=list(fractions), max_train=max_train))
    m = Manifest(source.name, rows, dict(seed=seed, **counts, forget=forget,
                                         forget_frac=forget_frac, forget_ids=list(forget_ids)))
    validate_manifest(m)
    return m


def manifest_from_predefined(source: Source) -> Manifest:
    """A manifest for a dataset that ships its own retain/forget/val/test files (MUFAC)."""
    require(bool(source.predefined),
            f"Dataset {source.name!r} has no predefined splits; use make_split.")
    rows = [_manifest_row(source, k, y, source.predefined[k])
            for k, y in zip(source.keys, source.labels) if k in source.predefined]
    m = Manifest(source.name, rows)
    validate_manifest(m)
    return m


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class Normalization:
    """Mean/std normalisation with the inverse map to pixel space [0, 1].

    The synthesizer must project perturbed images in *pixel* space,
    ``from_pixels(to_pixels(x).clamp(0, 1))`` (docs/method.md, §5 D2 "normalised clamp").
    """

    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def _stats(self, x: torch.Tensor):
        shape = (1, -1, 1, 1) if x.dim() == 4 else (-1, 1, 1)
        m = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        s = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return m, s

    def from_pixels(self, x: torch.Tensor) -> torch.Tensor:
        m, s = self._stats(x)
        return (x - m) / s

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        m, s = self._stats(x)
        return x * s + m

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Clamp a normalised batch to the valid image range, in pixel space."""
        return self.from_pixels(self.to_pixels(x).clamp(0.0, 1.0))


def prepare_images(images: Iterable[np.ndarray], size: int) -> torch.Tensor:
    """Decode once: resize to ``size``×``size`` and turn grayscale into 3 channels (uint8)."""
    out = []
    for image in images:
        t = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))
        t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
        t = t[:3].float().unsqueeze(0)
        t = interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        t = t.round().clamp(0, 255).to(torch.uint8)[0]
        out.append(t.expand(3, -1, -1) if t.shape[0] == 1 else t)
    return torch.stack(out) if out else torch.empty(0, 3, size, size, dtype=torch.uint8)


class ImageTensorDataset(Dataset):
    """Resized uint8 images in memory; normalises on access and, for training, flips."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, norm: Normalization,
                 augment: bool = False):
        require(len(images) == len(labels), f"{len(images)} images but {len(labels)} labels.")
        self.images, self.labels, self.norm, self.augment = images, labels, norm, augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i].float() / 255.0
        if self.augment and torch.rand(()) < 0.5:
            x = x.flip(-1)  # light augmentation: faces are nearly symmetric
        return self.norm.from_pixels(x), self.labels[i]


@dataclass
class SplitData:
    """The four splits as resized uint8 tensors, plus what built them."""

    manifest: Manifest
    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]
    num_classes: int
    image_size: int
    norm: Normalization = field(default_factory=Normalization)
    class_names: list[str] = field(default_factory=list)

    def dataset(self, split: str, augment: bool = False) -> ImageTensorDataset:
        check_choice("split", split, SPLITS)
        return ImageTensorDataset(self.images[split], self.labels[split], self.norm, augment)

    def train_dataset(self, augment: bool = True) -> ImageTensorDataset:
        """retain ∪ forget: what the original model is trained on."""
        return ImageTensorDataset(torch.cat([self.images["retain"], self.images["forget"]]),
                                  torch.cat([self.labels["retain"], self.labels["forget"]]),
                                  self.norm, augment)


def _decode_checked(source: Source, keys: set[str], row: dict) -> np.ndarray:
    """One manifest image, refused if the dataset (whose ``keys`` these are) lacks it or its
    pixels changed."""
    if row["path"] not in keys:
        raise DatasetNotFoundError(f"Manifest image {row['path']!r} is not in dataset "
                                   f"{source.name!r} at {source.root}.")
    image = source.load(row["path"])
    if content_hash(image) != row["sha256"]:
        raise SplitLeakError(f"{row['path']} no longer has the content the manifest recorded.")
    return image


def load_split_data(source: Source, manifest: Manifest, image_size: int = 64,
                    norm: Normalization | None = None) -> SplitData:
    """Decode the manifest's images, checking every file still has the recorded content.

    ``image_size`` is at least 16: small_cnn pools four times, so that is the smallest
    size every model accepts.
    """
    check_int("image_size", image_size, low=16)
    validate_manifest(manifest)
    keys = set(source.keys)
    images, labels = {}, {}
    for s in SPLITS:
        rows = [r for r in manifest.rows if r["split"] == s]
        images[s] = prepare_images([_decode_checked(source, keys, r) for r in rows], image_size)
        labels[s] = torch.tensor([int(r["label"]) for r in rows], dtype=torch.long)
    return SplitData(manifest, images, labels, source.num_classes, image_size,
                     norm or Normalization(), list(source.class_names))


@dataclass
class Loaders:
    """Retain and forget in a train (augmented, shuffled) and an eval variant; val; test."""

    retain_train: DataLoader
    retain_eval: DataLoader
    forget_train: DataLoader
    forget_eval: DataLoader
    val: DataLoader
    test: DataLoader


def make_loaders(data: SplitData, batch_size: int = 32, seed: int = 0,
                 eval_batch_size: int = 256, augment: bool = True) -> Loaders:
    """Seeded loaders; the shuffled ones draw their order from their own generator."""
    require(is_int(batch_size) and batch_size >= 1,
            f"batch_size={batch_size!r}; expected a positive integer.")

    def shuffled(split, offset):
        g = torch.Generator().manual_seed(seed * 1000 + offset)
        return DataLoader(data.dataset(split, augment), batch_size=batch_size, shuffle=True,
                          generator=g)

    def ordered(split):
        return DataLoader(data.dataset(split), batch_size=eval_batch_size, shuffle=False)

    return Loaders(shuffled("retain", 1), ordered("retain"), shuffled("forget", 2),
                   ordered("forget"), ordered("val"), ordered("test"))
