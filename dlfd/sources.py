"""Dataset sources beyond the embedded ORL faces (see ``data/README.md`` for licences).

``get(name, root=None, **kwargs)`` returns a :class:`dlfd.data.Source` for

============== ============================================================================
``orl``        the embedded AT&T/ORL faces (same as :func:`dlfd.data.orl_source`)
``fashion-mnist`` the four idx ``.gz`` files (Debian's ``dataset-fashion-mnist`` by default)
``mufac``      MUFAC's CSV layout, with its own retain/forget/val/test (``predefined``)
``imagefolder`` ``root/<class>/<image>``, any image PIL can read
``csv``        a CSV with ``path,label`` (and optionally ``split``) columns
``cifar10``    torchvision's ``cifar-10-batches-py`` folder
============== ============================================================================

Every source lists *all* its items; sizes come from the split protocol
(:func:`dlfd.data.make_split`, per-class counts), except where a dataset ships its own
splits (MUFAC, or a CSV with a ``split`` column): then ``Source.predefined`` is set and
:func:`dlfd.data.manifest_from_predefined` builds the manifest.

A missing file or folder is always a :class:`~dlfd.data.DatasetNotFoundError` whose message
names the path and says how to obtain the data; downloads happen only with
``download=True``. Data that is not given a ``root`` is looked for (or downloaded) under
``$DLFD_DATA`` (default ``~/.cache/dlfd``).
"""

from __future__ import annotations

import csv
import gzip
import inspect
import os
import pickle
import re
from pathlib import Path
from typing import Callable

import numpy as np

from .data import SPLITS, DatasetNotFoundError, Source, _numeric_key, orl_source

__all__ = ["get", "KNOWN", "data_home", "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES",
           "MUFAC_CLASSES", "CIFAR10_CLASSES"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot"]
MUFAC_CLASSES = ["0-6 years old", "7-12 years old", "13-19 years old", "20-30 years old",
                 "31-45 years old", "46-55 years old", "56-66 years old", "67-80 years old"]
MUFAC_DIRNAME = "custom_korean_family_dataset_resolution_128"
MUFAC_FORGET = 1500  # the authors forget the first 1,500 rows of custom_train_dataset.csv
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]

_HOW = {
    "fashion-mnist": (
        "Install Debian's package with `sudo apt-get install dataset-fashion-mnist` (it puts "
        f"the four idx .gz files in {FASHION_MNIST_DIR}), pass root= a folder that holds "
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
        "t10k-labels-idx1-ubyte.gz, or pass download=True when online "
        "(https://github.com/zalandoresearch/fashion-mnist)."),
    "mufac": (
        "MUFAC comes from its authors' GitHub (https://github.com/ndb796/MachineUnlearning): "
        f"download and unzip {MUFAC_DIRNAME}.zip and pass root= that folder (it holds "
        "custom_train_dataset.csv, custom_val_dataset.csv, custom_test_dataset.csv and "
        "train_images/, val_images/, test_images/), or a folder with retain.csv, forget.csv, "
        "val.csv and test.csv, or splits={'retain': ..., 'forget': ..., 'val': ..., "
        "'test': ...}. Its terms allow research use only; see data/README.md."),
    "cifar10": (
        "Pass download=True when online (torchvision fetches "
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), or unpack that archive "
        "yourself so that <root>/cifar-10-batches-py holds data_batch_1..5, test_batch and "
        "batches.meta."),
    "imagefolder": "Pass root= a folder with one subfolder per class holding the images.",
    "csv": ("Pass root= a CSV file with columns path,label (and optionally split); paths are "
            "relative to the CSV's folder."),
}


def data_home() -> Path:
    """Where data without an explicit ``root`` is looked for and downloaded: ``$DLFD_DATA``
    or ``~/.cache/dlfd``."""
    return Path(os.environ.get("DLFD_DATA", "~/.cache/dlfd")).expanduser()


def _missing(name: str, what: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(f"{what}. {_HOW[name]}")


# --------------------------------------------------------------------------- images on disk

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


def load_image(path: str | Path) -> np.ndarray:
    """Decode one image file: grayscale → ``uint8`` (H, W), anything else → (H, W, 3)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode in _GRAY_MODES:
                if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                    a = np.asarray(im, dtype=np.float64)
                    hi = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
                    return np.clip(np.round(a * 255.0 / hi), 0, 255).astype(np.uint8)
                return np.asarray(im.convert("L"), dtype=np.uint8)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetNotFoundError(f"Image {path} does not exist (was the dataset moved?).") \
            from None
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetNotFoundError(f"Image {path} cannot be read: {e}.") from None


def _image_suffixes() -> set[str]:
    from PIL import Image

    return {s.lower() for s in Image.registered_extensions()}


def _loader(root: Path) -> Callable[[str], np.ndarray]:
    return lambda key: load_image(root / key)


def _resolve_root(name: str, root, default: Path | None = None) -> Path:
    if root is None:
        if default is None:
            raise ValueError(f"Dataset {name!r} needs root=. {_HOW[name]}")
        return default
    return Path(root).expanduser()


# --------------------------------------------------------------------------- Fashion-MNIST


def _find_idx(folder: Path, stem: str) -> Path | None:
    for sub in (folder, folder / "FashionMNIST" / "raw", folder / "raw"):
        for suffix in (".gz", ""):
            p = sub / (stem + suffix)
            if p.is_file():
                return p
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse one idx file (gzip or raw) of unsigned bytes with ``ndim`` dimensions."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetNotFoundError(f"{path} is unreadable or corrupt ({e}). "
                                   f"{_HOW['fashion-mnist']}") from None
    magic = 0x800 + ndim
    head = 4 + 4 * ndim
    if len(raw) < head or int.from_bytes(raw[:4], "big") != magic:
        raise DatasetNotFoundError(f"{path} is not an idx file of {ndim}-d unsigned bytes "
                                   f"(magic {raw[:4].hex()!r}). {_HOW['fashion-mnist']}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - head != int(np.prod(shape)):
        raise DatasetNotFoundError(f"{path} is truncated: the header says {shape}. "
                                   f"{_HOW['fashion-mnist']}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def _fashion_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    found = {}
    for part, (img, lab) in FASHION_MNIST_FILES.items():
        pi, pl = _find_idx(folder, img), _find_idx(folder, lab)
        if pi is None or pl is None:
            return None
        found[part] = (pi, pl)
    return found


def fashion_mnist(root=None, download: bool = False) -> Source:
    """All 70,000 Fashion-MNIST images: keys ``train/00000``..``train/59999`` and
    ``t10k/00000``..``t10k/09999``; 28×28 ``uint8``, labels 0..9.

    Looks in ``root`` (also ``root/FashionMNIST/raw``, torchvision's layout), else in
    Debian's ``/usr/share/datasets/fashion-mnist``. With ``download=True`` and no files,
    torchvision downloads them into ``root`` or ``data_home()/fashion-mnist``. Labels are
    read at once; the images are decoded on the first ``load``.
    """
    candidates = [Path(root).expanduser()] if root is not None else [FASHION_MNIST_DIR,
                                                                    data_home() / "fashion-mnist"]
    files = next((f for f in map(_fashion_files, candidates) if f is not None), None)
    if files is None and download:
        target = candidates[0] if root is not None else candidates[-1]
        try:
            import torchvision

            torchvision.datasets.FashionMNIST(str(target), train=True, download=True)
            torchvision.datasets.FashionMNIST(str(target), train=False, download=True)
        except Exception as e:  # network, disk, checksum: never a raw traceback
            raise DatasetNotFoundError(
                f"Downloading Fashion-MNIST into {target} failed ({type(e).__name__}: {e}). "
                f"{_HOW['fashion-mnist']}") from None
        files = _fashion_files(target)
    if files is None:
        where = " or ".join(str(c) for c in candidates)
        raise _missing("fashion-mnist", f"No Fashion-MNIST idx files in {where}")

    keys, labels, counts = [], [], {}
    for part, (_, lab_path) in files.items():
        lab = _read_idx(lab_path, 1)
        counts[part] = len(lab)
        keys += [f"{part}/{i:05d}" for i in range(len(lab))]
        labels += [int(v) for v in lab]
    if labels and max(labels) >= len(FASHION_MNIST_CLASSES):
        raise DatasetNotFoundError(f"Fashion-MNIST labels in {files['train'][1]} go up to "
                                   f"{max(labels)}; expected 0..9.")
    cache: dict[str, np.ndarray] = {}

    def load(key: str) -> np.ndarray:
        part, _, idx = key.partition("/")
        if part not in files or not idx.isdigit():
            raise KeyError(f"{key!r} is not a Fashion-MNIST key (e.g. 'train/00012').")
        if part not in cache:
            imgs = _read_idx(files[part][0], 3)
            if len(imgs) != counts[part]:
                raise DatasetNotFoundError(f"{files[part][0]} holds {len(imgs)} images but "
                                           f"{files[part][1]} {counts[part]} labels.")
            cache[part] = imgs
        return cache[part][int(idx)]

    root_str = str(files["train"][0].parent)
    return Source("fashion-mnist", root_str, keys, labels, load, list(FASHION_MNIST_CLASSES))


# --------------------------------------------------------------------------- CSV helpers


def _read_csv(path: Path, required: tuple[str, ...], name: str) -> list[dict]:
    if not path.is_file():
        raise _missing(name, f"CSV file {path} does not exist")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetNotFoundError(f"CSV file {path} cannot be read ({e}). {_HOW[name]}") from None
    lacking = [c for c in required if c not in cols]
    if lacking:
        raise ValueError(f"{path} lacks the column(s) {lacking}; it has {cols}.")
    return rows


def _labels_from_values(values: list[str], where: str, letters: bool = False
                        ) -> tuple[list[int], list[str]]:
    """Integers → themselves (classes 0..max); MUFAC letters a..h → 0..7; names → sorted."""
    if values and all(re.fullmatch(r"\d+", v) for v in values):
        labels = [int(v) for v in values]
        if letters:
            bad = [v for v in labels if v >= len(MUFAC_CLASSES)]
            if bad:
                raise ValueError(f"age_class {bad[0]} in {where}; expected 0..7 or a..h.")
            return labels, list(MUFAC_CLASSES)
        return labels, [str(i) for i in range(max(labels) + 1)]
    if letters:
        out = []
        for v in values:
            if not re.fullmatch(r"[a-hA-H]", v):
                raise ValueError(f"age_class {v!r} in {where}; expected a letter a..h or 0..7.")
            out.append(ord(v.lower()) - ord("a"))
        return out, list(MUFAC_CLASSES)
    if any(v == "" for v in values):
        raise ValueError(f"An empty label in {where}.")
    names = sorted(set(values), key=_numeric_key)
    index = {n: i for i, n in enumerate(names)}
    return [index[v] for v in values], names


def _check_files(root: Path, keys: list[str], name: str, where: str) -> None:
    missing = [k for k in keys if not (root / k).is_file()]
    if missing:
        shown = ", ".join(str(root / k) for k in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise _missing(name, f"{len(missing)} image(s) listed in {where} do not exist: "
                             f"{shown}{more}")


def _unique(keys: list[str], where: str) -> None:
    seen = set()
    for k in keys:
        if k in seen:
            raise ValueError(f"{k!r} is listed twice in {where}.")
        seen.add(k)


# --------------------------------------------------------------------------- MUFAC


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def mufac(root=None, splits: dict[str, str] | None = None, image_dirs: dict[str, str] | None = None,
          n_forget: int = MUFAC_FORGET, image_column: str = "image_path",
          label_column: str = "age_class") -> Source:
    """MUFAC (Choi & Na's Machine Unlearning for Facial Age Classifier), 8 age classes.

    The CSVs have the columns ``image_path`` and ``age_class`` (letters ``a``..``h`` or
    integers 0..7). The mapping to the project's splits, tried in this order:

    1. ``splits={"retain": "r.csv", "forget": "f.csv", "val": "v.csv", "test": "t.csv"}``:
       explicit CSVs (relative to ``root``); any subset of the four split names.
    2. ``root`` holds ``retain.csv`` and ``forget.csv`` (and ``val.csv``, ``test.csv`` when
       present): one CSV per split.
    3. The authors' layout (``root`` is ``custom_korean_family_dataset_resolution_128`` or
       its parent): ``custom_train_dataset.csv`` is the training set, of which the first
       ``n_forget`` (1,500) rows are ``forget`` and the rest ``retain``, as in the authors'
       notebooks; ``custom_val_dataset.csv`` is ``val`` (1,539 images: the set the authors
       report as "test accuracy") and ``custom_test_dataset.csv`` is ``test`` (1,504: the
       authors' "unseen" set, the MIA's non-members). To compare with the paper's table,
       read its test accuracy against our ``val`` accuracy.

    Image paths are looked up relative to ``image_dirs[split]`` if given, else
    ``<csv folder>/<word>_images`` (``train_images`` for ``custom_train_dataset.csv`` and
    for retain/forget, ``val_images``, ``test_images``), ``<csv folder>/images`` or the CSV's
    folder, whichever holds the first listed image. Keys are paths relative to ``root``.
    """
    root = _resolve_root("mufac", root, data_home() / "mufac")
    if not root.is_dir():
        raise _missing("mufac", f"MUFAC folder {root} does not exist")
    if (root / MUFAC_DIRNAME).is_dir() and not splits:
        root = root / MUFAC_DIRNAME
    if not isinstance(n_forget, int) or n_forget < 1:
        raise ValueError(f"n_forget={n_forget!r}; expected a positive integer.")

    # (split, csv path, default image sub-folder word, row slice)
    plan: list[tuple[str, Path, str, slice]] = []
    if splits:
        bad = sorted(set(splits) - set(SPLITS))
        if bad:
            raise ValueError(f"splits has unknown split name(s) {bad}; expected keys from "
                             f"{SPLITS}.")
        for s, p in splits.items():
            plan.append((s, root / p, "train" if s in ("retain", "forget") else s, slice(None)))
    elif (root / "retain.csv").is_file() or (root / "forget.csv").is_file():
        for s in SPLITS:
            p = root / f"{s}.csv"
            if s in ("retain", "forget") or p.is_file():
                plan.append((s, p, "train" if s in ("retain", "forget") else s, slice(None)))
    elif (root / "custom_train_dataset.csv").is_file():
        train = root / "custom_train_dataset.csv"
        plan += [("forget", train, "train", slice(0, n_forget)),
                 ("retain", train, "train", slice(n_forget, None)),
                 ("val", root / "custom_val_dataset.csv", "val", slice(None)),
                 ("test", root / "custom_test_dataset.csv", "test", slice(None))]
    else:
        raise _missing("mufac", f"No MUFAC CSVs in {root} (looked for custom_train_dataset.csv, "
                                f"retain.csv/forget.csv and {MUFAC_DIRNAME}/)")

    keys, values, predefined, wheres = [], [], {}, []
    for split, csv_path, word, rows_slice in plan:
        rows = _read_csv(csv_path, (image_column, label_column), "mufac")[rows_slice]
        if not rows:
            continue
        folders = ([csv_path.parent / image_dirs[split]] if image_dirs and split in image_dirs
                   else [csv_path.parent / f"{word}_images", csv_path.parent / "images",
                         csv_path.parent])
        first = rows[0][image_column]
        folder = next((d for d in folders if (d / first).is_file()), None)
        if folder is None:
            raise _missing("mufac", f"The first image of {csv_path}, {first!r}, is in none of "
                                    + ", ".join(str(d) for d in folders))
        split_keys = [_rel(folder / r[image_column], root) for r in rows]
        _check_files(root, split_keys, "mufac", str(csv_path))
        for k, r in zip(split_keys, rows):
            keys.append(k)
            values.append(r[label_column])
            wheres.append(str(csv_path))
            if k in predefined:
                raise ValueError(f"{k!r} is listed in both '{predefined[k]}' and '{split}'.")
            predefined[k] = split
    if not keys:
        raise _missing("mufac", f"The MUFAC CSVs under {root} list no images")
    labels, class_names = _labels_from_values(values, f"the MUFAC CSVs under {root}", letters=True)
    return Source("mufac", str(root), keys, labels, _loader(root), class_names, predefined)


# --------------------------------------------------------------------------- generic layouts


def imagefolder(root=None) -> Source:
    """``root/<class>/<image>`` (images may sit in sub-folders of a class folder).

    Class folders are sorted naturally (``c2`` before ``c10``), as are files; hidden files
    and files PIL has no reader for are skipped, and so are class folders with no image.
    """
    root = _resolve_root("imagefolder", root)
    if not root.is_dir():
        raise _missing("imagefolder", f"Image folder {root} does not exist")
    suffixes = _image_suffixes()
    classes, keys, labels = [], [], []
    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: _numeric_key(p.name)):
        files = sorted((f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in suffixes
                        and not any(part.startswith(".") for part in f.relative_to(d).parts)),
                       key=lambda f: _numeric_key(f.relative_to(d).as_posix()))
        if not files:
            continue
        for f in files:
            keys.append(f.relative_to(root).as_posix())
            labels.append(len(classes))
        classes.append(d.name)
    if not keys:
        raise _missing("imagefolder", f"Image folder {root} holds no class sub-folders with "
                                      "images")
    return Source("imagefolder", str(root), keys, labels, _loader(root), classes)


def csv_source(root=None, path_column: str = "path", label_column: str = "label",
               split_column: str = "split") -> Source:
    """A CSV with ``path,label`` columns; paths are relative to the CSV's folder.

    Labels that are all integers are class indices (classes ``0..max``); otherwise they are
    names, sorted naturally. ``root`` is the CSV file, or a folder holding exactly one
    ``.csv``. An optional ``split`` column (values from retain/forget/val/test) becomes
    ``Source.predefined``.
    """
    root = _resolve_root("csv", root)
    if root.is_dir():
        found = sorted(root.glob("*.csv"))
        if len(found) != 1:
            raise _missing("csv", f"Folder {root} holds {len(found)} .csv files; expected "
                                  "exactly one (or pass the CSV file itself)")
        root = found[0]
    rows = _read_csv(root, (path_column, label_column), "csv")
    if not rows:
        raise _missing("csv", f"CSV file {root} lists no images")
    folder = root.parent
    keys = [Path(r[path_column]).as_posix() for r in rows]
    _unique(keys, str(root))
    _check_files(folder, keys, "csv", str(root))
    labels, class_names = _labels_from_values([r[label_column] for r in rows], str(root))
    predefined = None
    if rows and split_column in rows[0]:
        bad = sorted({r[split_column] for r in rows} - set(SPLITS))
        if bad:
            raise ValueError(f"{root} has split value(s) {bad}; expected {SPLITS}.")
        predefined = {k: r[split_column] for k, r in zip(keys, rows)}
    return Source("csv", str(folder), keys, labels, _loader(folder), class_names, predefined)


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def _unpickle(path: Path, name: str) -> dict:
    # The CIFAR-10 archive is a set of Python pickles (torchvision reads it the same way);
    # only unpickle files you obtained from the official archive.
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except FileNotFoundError:
        raise _missing(name, f"{path} does not exist") from None
    except Exception as e:
        raise DatasetNotFoundError(f"{path} is unreadable or corrupt ({type(e).__name__}: "
                                   f"{e}). {_HOW[name]}") from None


def cifar10(root=None, download: bool = False) -> Source:
    """All 60,000 CIFAR-10 images: keys ``train/00000``..``train/49999`` (data_batch_1..5 in
    order) and ``test/00000``..``test/09999``; 32×32×3 ``uint8``.

    ``root`` holds ``cifar-10-batches-py`` (torchvision's layout) or is that folder;
    default ``data_home()/cifar10``. ``download=True`` lets torchvision fetch it.
    """
    root = _resolve_root("cifar10", root, data_home() / "cifar10")

    def batch_dir() -> Path | None:
        for d in (root / _CIFAR_DIR, root):
            if all((d / f).is_file() for f in [*_CIFAR_TRAIN, "test_batch"]):
                return d
        return None

    folder = batch_dir()
    if folder is None and download:
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(root), train=True, download=True)
        except Exception as e:
            raise DatasetNotFoundError(f"Downloading CIFAR-10 into {root} failed "
                                       f"({type(e).__name__}: {e}). {_HOW['cifar10']}") from None
        folder = batch_dir()
    if folder is None:
        raise _missing("cifar10", f"No CIFAR-10 batches in {root / _CIFAR_DIR}")

    data, keys, labels = {}, [], []
    for part, files in (("train", _CIFAR_TRAIN), ("test", ["test_batch"])):
        xs = []
        for f in files:
            d = _unpickle(folder / f, "cifar10")
            try:
                x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                y = [int(v) for v in d["labels"]]
            except (KeyError, ValueError) as e:
                raise DatasetNotFoundError(f"{folder / f} is not a CIFAR-10 batch ({e}). "
                                           f"{_HOW['cifar10']}") from None
            if len(x) != len(y):
                raise DatasetNotFoundError(f"{folder / f} has {len(x)} images but {len(y)} labels.")
            xs.append(x)
            labels += y
        data[part] = np.ascontiguousarray(np.concatenate(xs).transpose(0, 2, 3, 1))
        keys += [f"{part}/{i:05d}" for i in range(len(data[part]))]
    names = list(CIFAR10_CLASSES)
    meta = folder / "batches.meta"
    if meta.is_file():
        names = [str(n) for n in _unpickle(meta, "cifar10").get("label_names", names)]

    def load(key: str) -> np.ndarray:
        part, _, idx = key.partition("/")
        if part not in data or not idx.isdigit():
            raise KeyError(f"{key!r} is not a CIFAR-10 key (e.g. 'train/00012').")
        return data[part][int(idx)]

    return Source("cifar10", str(folder), keys, labels, load, names)


# --------------------------------------------------------------------------- registry

KNOWN: dict[str, Callable[..., Source]] = {
    "orl": orl_source,
    "fashion-mnist": fashion_mnist,
    "mufac": mufac,
    "imagefolder": imagefolder,
    "csv": csv_source,
    "cifar10": cifar10,
}
_ALIASES = {"fashionmnist": "fashion-mnist", "fmnist": "fashion-mnist", "cifar-10": "cifar10",
            "image-folder": "imagefolder"}


def get(name: str, root=None, **kwargs) -> Source:
    """Build a :class:`~dlfd.data.Source` by name; see the module docstring for the names."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in KNOWN:
        raise ValueError(f"Unknown dataset {name!r}; known datasets: {', '.join(KNOWN)}.")
    builder = KNOWN[key]
    allowed = [p for p in inspect.signature(builder).parameters if p != "root"]
    extra = sorted(set(kwargs) - set(allowed))
    if extra:
        raise TypeError(f"Dataset {key!r} does not take {extra}; it takes root and "
                        f"{allowed or 'nothing else'}.")
    return builder(root, **kwargs)
