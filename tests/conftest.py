"""Shared fixtures, built from the helpers in ``helpers.py``. The ``toy_*`` fixtures
(metrics/collapse/baselines tests) are the synthetic 3-class, 16×16 image task and a briefly
trained ``small_cnn`` original; everything is seeded and takes a few seconds on CPU."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlfd.models import build_model
from dlfd.train import TrainConfig, seed_everything, train_model
from dlfd.unlearn import UnlearnData
from helpers import TOY_CLASSES, ToyVectorNet, toy_loaders, toy_split_data

# The machine's 2 cores are shared: with 2 intra-op threads and one busy core every small
# step waits on a spinning peer (measured ~1.3 s vs ~0.02 s per small_cnn step).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_data():
    return toy_split_data()


@pytest.fixture(scope="session")
def toy_original(toy_data):
    """small_cnn trained on retain ∪ forget for a few epochs (the 'original' model)."""
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

    def make(original="copy"):
        ld = toy_loaders(toy_data)
        orig = copy.deepcopy(toy_original) if original == "copy" else original
        return UnlearnData(retain=ld.retain_train, forget=ld.forget_train,
                           retain_eval=ld.retain_eval, forget_eval=ld.forget_eval, val=ld.val,
                           num_classes=TOY_CLASSES, norm=toy_data.norm, original=orig)

    return make


@pytest.fixture
def toy_vector_net():
    """Factory for :class:`helpers.ToyVectorNet` (seeded by the caller)."""
    return ToyVectorNet


@pytest.fixture
def toy_vector_loader():
    """Factory: an ordered loader over (X, y) tensors."""

    def make(X, y, batch_size: int = 64):
        return DataLoader(TensorDataset(torch.as_tensor(X, dtype=torch.float32),
                                        torch.as_tensor(y, dtype=torch.long)),
                          batch_size=batch_size, shuffle=False)

    return make


@pytest.fixture
def batches(toy_unlearn_data):
    """A retain batch, its labels and a forget batch of 12 toy images each."""
    data = toy_unlearn_data(original=None)
    xr, yr = next(iter(data.retain_eval))
    xf, _ = next(iter(data.forget_eval))
    return xr[:12], yr[:12], xf[:12]
