"""What every dataset provides: a :class:`Source`, and the helpers several sources share.

A source is an ordered list of items (a key, a label) and a way to decode one item into a
``uint8`` array. The concrete sources (ORL, Fashion-MNIST, MUFAC, CIFAR-10, ImageFolder, CSV)
live in :mod:`dlfd.sources`; the split protocol that turns a source into retain, forget, val
and test (docs/method.md §3) lives in :mod:`dlfd.data`. This module imports neither, so both
can import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["SPLITS", "DatasetNotFoundError", "Source", "numeric_key", "load_image",
           "image_loader", "image_suffixes"]

# train = retain ∪ forget; val chooses hyper-parameters and τ; test is only reported
# (docs/method.md §3).
SPLITS = ("retain", "forget", "val", "test")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing; the message says how to obtain them."""


@dataclass
class Source:
    """An ordered, labelled image collection.

    Attributes
    ----------
    name : str
        The dataset's canonical name (``"orl"``, ``"fashion-mnist"``, ...).
    root : str
        Where the files are; keys are relative to it.
    keys : list of str
        ``keys[i]`` identifies item i (a path relative to ``root``, or ``"train/00012"`` for
        array-backed data).
    labels : list of int
        ``labels[i]`` is item i's class, in ``0 .. num_classes - 1``.
    load : callable
        ``load(key)`` returns a ``uint8`` array of shape (H, W) or (H, W, 3).
    class_names : list of str
        One name per class, in label order.
    predefined : dict or None
        Maps keys to splits for datasets that ship their own (MUFAC, a CSV with a ``split``
        column); ``None`` lets the seeded protocol choose.
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


def numeric_key(name: str) -> tuple:
    """Natural sort order: ``s2`` before ``s10`` and ``2.pgm`` before ``10.pgm``.

    Examples
    --------
    >>> sorted(["s10", "s2", "s1"], key=numeric_key)
    ['s1', 's2', 's10']
    """
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


# --------------------------------------------------------------------------- images on disk

_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
# Integer and float modes hold values beyond 0..255 and must be rescaled, not truncated.
_WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "F")


def load_image(path: str | Path) -> np.ndarray:
    """Decode one image file: grayscale → ``uint8`` (H, W), anything else → (H, W, 3).

    Raises
    ------
    DatasetNotFoundError
        The file is missing or PIL cannot read it; the message names the path.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            if im.mode not in _GRAY_MODES:
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
            if im.mode not in _WIDE_GRAY_MODES:
                return np.asarray(im.convert("L"), dtype=np.uint8)
            a = np.asarray(im, dtype=np.float64)
            top = 65535.0 if im.mode.startswith("I;16") else max(float(a.max()), 1.0)
            return np.clip(np.round(a * 255.0 / top), 0, 255).astype(np.uint8)
    except FileNotFoundError:
        raise DatasetNotFoundError(f"Image {path} does not exist (was the dataset moved?).") \
            from None
    except (UnidentifiedImageError, OSError) as e:
        raise DatasetNotFoundError(f"Image {path} cannot be read: {e}.") from None


def image_suffixes() -> set[str]:
    """The lower-case file suffixes PIL has a reader for (``.png``, ``.jpg``, ``.pgm``, ...)."""
    return {s.lower() for s in Image.registered_extensions()}


def image_loader(root: Path) -> Callable[[str], np.ndarray]:
    """``load(key)`` for a source whose keys are image paths relative to ``root``."""
    return lambda key: load_image(root / key)
