"""The forgetting score on validation: a loss-MIA of the forget set against the validation
split, shared by DLFD's dynamic forgetting (docs/method.md §2.2) and by hyperparameter
selection (:mod:`dlfd.tuning`).

Neither ever reads the test split (docs/method.md, §5 D3 "test-set selection").
"""

from __future__ import annotations

import time

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Subset

from ..checks import check_int
from ..metrics import forgetting_score, losses_from_logits, mia_from_losses, predict, top1
from ..models import eval_mode

__all__ = ["attack_score", "forget_vs_val", "ForgettingMonitor"]


def attack_score(f_logits: torch.Tensor, f_y: torch.Tensor, v_logits: torch.Tensor,
                 v_y: torch.Tensor, *, seed: int, n_splits: int = 10) -> dict:
    """:func:`forget_vs_val`'s scores from logits already computed (members: forget)."""
    attack = mia_from_losses(losses_from_logits(f_logits, f_y), losses_from_logits(v_logits, v_y),
                             seed=seed, n_splits=n_splits)
    finite = bool(torch.isfinite(f_logits).all() and torch.isfinite(v_logits).all())
    return {"score": forgetting_score(attack.mean), "mia": attack.mean,
            "val_acc": top1(v_logits, v_y), "finite": finite}


def forget_vs_val(model: nn.Module, forget: DataLoader, val: DataLoader, device, *, seed: int,
                  n_splits: int = 10) -> dict:
    """Attack the model with forget samples as members and validation samples as non-members.

    Parameters
    ----------
    model : torch.nn.Module
        Evaluated in eval mode; its own mode is restored.
    forget, val : DataLoader
        Eval-transform loaders of the members (forget) and the non-members (validation).
    device : torch.device or str
    seed, n_splits : int
        Passed to :func:`dlfd.metrics.mia_from_losses` (balanced loss-MIA, CV splits).

    Returns
    -------
    dict
        ``score`` = FS = |MIA − 0.5|, ``mia`` = the attack's accuracy, and ``val_acc``, the
        validation accuracy that comes free with the validation losses.

    References
    ----------
    docs/method.md §3 (MIA, FS) and §5 D3 "test-set selection", D5 "unbalanced MIA".
    """
    f_logits, f_y = predict(model, forget, device)
    v_logits, v_y = predict(model, val, device)
    return attack_score(f_logits, f_y, v_logits, v_y, seed=seed, n_splits=n_splits)


def subsample(loader: DataLoader, n: int, seed: int) -> DataLoader:
    """An ordered loader over a fixed, seeded subset of ``n`` of the loader's samples."""
    dataset = loader.dataset
    if n >= len(dataset):
        indices = list(range(len(dataset)))
    else:
        generator = torch.Generator().manual_seed(seed)
        indices = sorted(torch.randperm(len(dataset), generator=generator)[:n].tolist())
    return DataLoader(Subset(dataset, indices), batch_size=loader.batch_size or 256,
                      shuffle=False)


def _tensors(loader: DataLoader, device) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs).to(device), torch.cat(ys).to(device)


class ForgettingMonitor:
    """:func:`forget_vs_val` on fixed loaders, called many times on a changing model.

    The images of both loaders are loaded onto the device once, on the first call (timed), and
    every call is then a batched forward pass over them plus :func:`attack_score`, with no
    per-call loading or transforms (benchmarks/attack_cost.py times both ways). It serves
    DLFD's dynamic forgetting (docs/method.md §2.2), on small fixed subsamples
    (:meth:`for_dlfd`), and checkpoint selection after every step
    (:class:`dlfd.unlearn.base.StepSelector`), on the whole validation split or, for the public
    code's protocol, test (§5 D3 "test-set selection"). Fixed samples make successive
    estimates differ because the model changed, not the sample.

    Parameters
    ----------
    forget, nonmembers : DataLoader
        Eval-transform loaders of the members and the non-members.
    device : torch.device or str
    seed, n_splits : int
        The attack's seed and CV splits (:func:`dlfd.metrics.mia_from_losses`).
    channels_last : bool
        Hold the cached images in channels-last layout. On CPU the convolutions then run about
        twice as fast (benchmarks/attack_cost.py), with logits that differ in the last float
        digits; checkpoint selection turns it on, DLFD's monitor keeps the default layout so
        that its synthesis decisions stay those of the recorded runs.
    chunk_pixels : int, optional
        Forward the cached images in chunks of at most this many input pixels each (at least
        one image). On CPU, small chunks keep the first layers' activations in the cache and
        the pass 1.2 to 1.8 times faster (benchmarks/attack_cost.py); the logits are those of
        larger chunks up to float rounding, because eval mode makes every image independent.
        None: chunks of the loaders' batch size, and at least 256 images (on a GPU, large
        chunks fill the device).
    """

    def __init__(self, forget: DataLoader, nonmembers: DataLoader, device, *, seed: int,
                 n_splits: int, channels_last: bool = False, chunk_pixels: int | None = None):
        self.forget, self.nonmembers = forget, nonmembers
        self.channels_last = channels_last
        self.device = device
        self.seed = seed
        self.n_splits = n_splits
        self.chunk = max(forget.batch_size or 1, nonmembers.batch_size or 1, 256)
        self.chunk_pixels = check_int("chunk_pixels", chunk_pixels, low=1, allow_none=True)
        self.seconds = 0.0
        self.forward_passes = 0
        self.calls = 0
        self._cache: tuple | None = None  # (x, y, n_forget), built on the first call (timed)

    @classmethod
    def for_dlfd(cls, data, cfg, device) -> "ForgettingMonitor":
        """DLFD's monitor: ``cfg.monitor_forget_n`` forget samples against
        ``cfg.monitor_val_n`` validation samples (all of validation for None), both fixed by
        ``cfg.seed``, with ``cfg.monitor_splits`` CV splits."""
        val = (data.val if cfg.monitor_val_n is None
               else subsample(data.val, cfg.monitor_val_n, cfg.seed + 1))
        return cls(subsample(data.forget_eval, cfg.monitor_forget_n, cfg.seed), val, device,
                   seed=cfg.seed, n_splits=cfg.monitor_splits)

    def logits(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The model's logits on the members then the non-members, their labels, and the
        number of members: one batched forward pass in eval mode."""
        if self._cache is None:
            x_f, y_f = _tensors(self.forget, self.device)
            x_v, y_v = _tensors(self.nonmembers, self.device)
            x = torch.cat([x_f, x_v])
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.chunk_pixels is not None:
                self.chunk = max(1, self.chunk_pixels // x[0].numel())
            self._cache = (x, torch.cat([y_f, y_v]), len(y_f))
        x, y, n = self._cache
        # Eval mode: BatchNorm uses running statistics, so batching both sides together gives
        # the same logits as two separate passes.
        with torch.no_grad(), eval_mode(model):
            logits = torch.cat([model(x[i:i + self.chunk]).float()
                                for i in range(0, len(x), self.chunk)])
        self.forward_passes += 1
        return logits, y, n

    def __call__(self, model: nn.Module) -> dict:
        t0 = time.perf_counter()
        logits, y, n = self.logits(model)
        estimate = attack_score(logits[:n], y[:n], logits[n:], y[n:], seed=self.seed,
                                n_splits=self.n_splits)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return estimate
