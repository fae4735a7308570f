"""One training recipe (SGD + momentum, cosine LR, weight decay, seed) and safe checkpoints.

The same recipe trains the *original* model on R ∪ F and the *retrained* reference on R
alone (docs/method.md §3, reference models). Checkpoints carry the config and the split
manifest's hash, are written atomically, are never overwritten unless asked, and load with
``weights_only=True``.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checks import check_int, check_number, require
from .fileio import atomic_write
from .metrics import accuracy, top1_count
from .models import build_model


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def select_device(preference: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit name must be available."""
    pref = str(preference).lower()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    kind = pref.split(":")[0]
    require(kind in ("cpu", "cuda", "mps"),
            f"device={preference!r}; expected 'auto', 'cpu', 'cuda[:N]' or 'mps'.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={preference!r} was asked for, but CUDA is not available here. "
                           "Use device='auto' or 'cpu'.")
    if kind == "mps" and not has_mps:
        raise RuntimeError(f"device={preference!r} was asked for, but MPS is not available here.")
    return torch.device(pref)


@dataclass
class TrainConfig:
    """The training recipe; bad values are refused on construction."""

    epochs: int = 60
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        # Validate only: the fields stay as given, since checkpoints compare asdict(config).
        check_int("epochs", self.epochs, low=1)
        check_number("lr", self.lr, low=0, strict=True)
        check_int("batch_size", self.batch_size, low=1)


@dataclass
class History:
    """Per-epoch train loss and accuracy, and val accuracy when a val loader is given."""

    loss: list[float] = field(default_factory=list)
    acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0


def make_sgd(params, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4):
    """The recipe's optimiser: SGD with momentum and weight decay (the one SGD factory)."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def train_model(model: nn.Module, loader: DataLoader, cfg: TrainConfig, device="cpu",
                val_loader: DataLoader | None = None, progress: bool = True,
                desc: str = "train") -> History:
    """Train ``model`` in place with the recipe; returns the per-epoch history."""
    device = torch.device(device)
    model.to(device)
    opt = make_sgd(model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * len(loader))
    hist = History()
    t0 = time.perf_counter()
    for epoch in tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False):
        if hasattr(loader.sampler, "set_epoch"):  # DistributedSampler: a new shuffle per epoch
            loader.sampler.set_epoch(epoch)
        model.train()
        tot = hit = n = 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(y)
            hit += top1_count(out, y)
            n += len(y)
        hist.loss.append(tot / n)
        hist.acc.append(hit / n)
        if val_loader is not None:
            hist.val_acc.append(accuracy(model, val_loader, device))
    hist.seconds = time.perf_counter() - t0
    return hist


# --------------------------------------------------------------------------- checkpoints


class CheckpointMismatchError(ValueError):
    """A checkpoint was made for another architecture, class count or split."""


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict, overwrite: bool = False) -> Path:
    """Write ``{"state_dict", "meta"}`` atomically, never over an existing file unless asked.

    ``meta`` must hold ``arch``, ``num_classes`` and ``manifest_hash`` and only plain Python
    values, so the file loads under ``weights_only=True``.
    """
    missing = {"arch", "num_classes", "manifest_hash"} - set(meta)
    require(not missing, f"Checkpoint meta lacks {sorted(missing)}.")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: torch.save({"state_dict": state, "meta": meta}, tmp),
                        overwrite=overwrite)


def load_checkpoint(path: str | Path, arch: str | None = None, num_classes: int | None = None,
                    manifest_hash: str | None = None, device="cpu") -> tuple[nn.Module, dict]:
    """Load safely and check it matches what the caller expects; returns (model, meta)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    meta = blob["meta"]
    for key, want in (("arch", arch), ("num_classes", num_classes), ("manifest_hash", manifest_hash)):
        if want is not None and meta.get(key) != want:
            raise CheckpointMismatchError(
                f"{path} was saved with {key}={meta.get(key)!r}, but {want!r} was expected. "
                "It belongs to another model or split; retrain or point to the right file.")
    model = build_model(meta["arch"], meta["num_classes"], meta.get("dropout", 0.0))
    model.load_state_dict(blob["state_dict"])
    return model.to(device).eval(), meta


def checkpoint_meta(arch: str, num_classes: int, manifest_hash: str, cfg: TrainConfig,
                    extra_meta: dict | None = None, history: History | None = None) -> dict:
    """What a checkpoint records: the model, the split's hash and the recipe."""
    meta = dict(arch=arch, num_classes=num_classes, manifest_hash=manifest_hash,
                config=asdict(cfg), **(extra_meta or {}))
    if history is not None:
        meta.update(history=asdict(history), train_seconds=history.seconds)
    return meta


def train_or_load(path: str | Path, arch: str, num_classes: int, manifest_hash: str,
                  loader: DataLoader, cfg: TrainConfig, device="cpu",
                  val_loader: DataLoader | None = None, progress: bool = True,
                  desc: str = "train", overwrite: bool = False, extra_meta: dict | None = None
                  ) -> tuple[nn.Module, dict]:
    """Reuse a checkpoint made with the same arch, classes, split and recipe; else train one.

    A checkpoint at ``path`` made differently is an error unless ``overwrite`` is set, so a
    rerun never replaces someone's model by accident.
    """
    path = Path(path)
    meta_want = checkpoint_meta(arch, num_classes, manifest_hash, cfg, extra_meta)
    if path.exists() and not overwrite:
        model, meta = load_checkpoint(path, arch, num_classes, manifest_hash, device)
        if meta.get("config") != meta_want["config"]:
            raise CheckpointMismatchError(
                f"{path} was trained with {meta.get('config')}, not {meta_want['config']}. "
                "Pass overwrite=True to retrain, or use another out_dir.")
        return model, meta
    seed_everything(cfg.seed)
    model = build_model(arch, num_classes)
    hist = train_model(model, loader, cfg, device, val_loader, progress, desc)
    meta = checkpoint_meta(arch, num_classes, manifest_hash, cfg, extra_meta, hist)
    save_checkpoint(path, model, meta, overwrite=overwrite)
    return model.eval(), meta
