"""Shared tiny fixtures. The ``toy_*`` fixtures (metrics/collapse/baselines tests) build a
synthetic 3-class, 16×16 image task through the real SplitData/make_loaders pipeline and a
briefly trained ``small_cnn`` original; everything is seeded and takes a few seconds on CPU."""

from __future__ import annotations

import copy

import pytest
import torch

# The machine's 2 cores are shared: with 2 intra-op threads and one busy core every small
# step waits on a spinning peer (measured ~1.3 s vs ~0.02 s per small_cnn step).
torch.set_num_threads(1)

TOY_CLASSES = 3
TOY_SIZE = 16
TOY_SPLITS = {"retain": 60, "forget": 24, "val": 24, "test": 60}


def toy_split_data(seed: int = 0, offset: float = 20.0, noise: float = 80.0):
    """SplitData of uint8 images: a shared random image plus a small per-class offset plus
    Gaussian pixel noise. A small CNN then fits the training set in a few epochs but keeps a
    generalisation gap (train loss ≈ 0.1, test ≈ 0.7), as an original model should."""
    from dlfd.data import Manifest, SplitData

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


def toy_loaders(data, seed: int = 0, batch_size: int = 12):
    from dlfd.data import make_loaders

    # No augmentation: the flips would make per-step losses noisier for no benefit here.
    return make_loaders(data, batch_size=batch_size, seed=seed, eval_batch_size=64, augment=False)


@pytest.fixture(scope="session")
def toy_data():
    return toy_split_data()


@pytest.fixture(scope="session")
def toy_original(toy_data):
    """small_cnn trained on retain ∪ forget for a few epochs (the 'original' model)."""
    from torch.utils.data import DataLoader

    from dlfd.models import build_model
    from dlfd.train import TrainConfig, seed_everything, train_model

    seed_everything(0)
    model = build_model("small_cnn", TOY_CLASSES)
    loader = DataLoader(toy_data.train_dataset(augment=False), batch_size=12, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    train_model(model, loader, TrainConfig(epochs=5, lr=0.02, batch_size=12), progress=False)
    return model.eval()


@pytest.fixture
def toy_unlearn_data(toy_data, toy_original):
    """Factory: UnlearnData over *fresh* loaders (their shuffle generators carry state, so
    two runs are only comparable on fresh loaders); ``original`` defaults to a copy of the
    toy original."""
    from dlfd.unlearn import UnlearnData

    def make(original="copy"):
        ld = toy_loaders(toy_data)
        orig = copy.deepcopy(toy_original) if original == "copy" else original
        return UnlearnData(retain=ld.retain_train, forget=ld.forget_train,
                           retain_eval=ld.retain_eval, forget_eval=ld.forget_eval, val=ld.val,
                           num_classes=TOY_CLASSES, norm=toy_data.norm, original=orig)

    return make

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


@pytest.fixture
def toy_vector_net():
    """Factory for :class:`ToyVectorNet` (seeded by the caller)."""
    return ToyVectorNet


@pytest.fixture
def toy_vector_loader():
    """Factory: an ordered loader over (X, y) tensors."""
    from torch.utils.data import DataLoader, TensorDataset

    def make(X, y, batch_size: int = 64):
        return DataLoader(TensorDataset(torch.as_tensor(X, dtype=torch.float32),
                                        torch.as_tensor(y, dtype=torch.long)),
                          batch_size=batch_size, shuffle=False)

    return make
