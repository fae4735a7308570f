"""Shared test helpers: a synthetic 3-class, 16×16 image task built through the real
SplitData/make_loaders pipeline, and a tiny vector net with the model interface.

Fixtures live in ``conftest.py`` and are built from these; tests that need a helper directly
import it (``from helpers import toy_loaders``). Everything is seeded and takes a few seconds
on CPU.
"""

from __future__ import annotations

import torch

from dlfd.data import Loaders, Manifest, SplitData, make_loaders

TOY_CLASSES = 3
TOY_SIZE = 16
TOY_SPLITS = {"retain": 60, "forget": 24, "val": 24, "test": 60}


def toy_split_data(seed: int = 0, offset: float = 20.0, noise: float = 80.0) -> SplitData:
    """SplitData of uint8 images: a shared random image plus a small per-class offset plus
    Gaussian pixel noise. A small CNN then fits the training set in a few epochs but keeps a
    generalisation gap (train loss ≈ 0.1, test ≈ 0.7), as an original model should."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, TOY_SIZE, TOY_SIZE, generator=g) * 255
    protos = base + offset * torch.randn(TOY_CLASSES, 3, TOY_SIZE, TOY_SIZE, generator=g)
    images, labels = {}, {}
    for split, n in TOY_SPLITS.items():
        y = torch.arange(n) % TOY_CLASSES
        x = protos[y] + noise * torch.randn(n, 3, TOY_SIZE, TOY_SIZE, generator=g)
        images[split] = x.round().clamp(0, 255).to(torch.uint8)
        labels[split] = y
    return SplitData(Manifest("toy", []), images, labels, TOY_CLASSES, TOY_SIZE)


def toy_loaders(data: SplitData, seed: int = 0, batch_size: int = 12) -> Loaders:
    """Fresh seeded loaders over the toy task."""
    # No augmentation: the flips would make per-step losses noisier for no benefit here.
    return make_loaders(data, batch_size=batch_size, seed=seed, eval_batch_size=64, augment=False)


class ToyVectorNet(torch.nn.Module):
    """A tiny net on vectors with the model interface (embed/head/blocks)."""

    def __init__(self, d_in: int = 6, d_emb: int = 8, num_classes: int = TOY_CLASSES):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(d_in, d_emb), torch.nn.ReLU())
        self.head = torch.nn.Linear(d_emb, num_classes)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.embed(x))

    def blocks(self):
        return [self.body[0], self.head]
