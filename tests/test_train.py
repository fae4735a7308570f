"""dlfd.train: devices, the recipe's config, safe checkpoints and train_or_load (tiny CPU runs)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlfd import train as train_mod
from dlfd.models import build_model
from dlfd.train import (CheckpointMismatchError, TrainConfig, load_checkpoint, save_checkpoint,
                        select_device, train_model, train_or_load)

META = dict(arch="small_cnn", num_classes=3, manifest_hash="abc123")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids oversubscribing the shared CPU cores (much faster)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _toy_loader(n=24, seed=0, batch_size=8):
    """Three classes told apart by which colour channel is bright: easy to fit."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 3, 16, 16, generator=g) * 0.3
    x[torch.arange(n), y] += 1.5
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("small_cnn", 3).eval()


@pytest.fixture
def x():
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------- devices, config


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="tpu"):
        select_device("tpu")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here; the CPU-only assertions do not apply")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if not has_mps:
        assert select_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda")
    with pytest.raises(RuntimeError, match="cuda:1"):
        select_device("cuda:1")


@pytest.mark.parametrize("kwargs, named", [
    (dict(epochs=0), "epochs=0"),
    (dict(epochs=2.5), "epochs=2.5"),
    (dict(lr=0.0), "lr=0.0"),
    (dict(lr=-0.1), "lr=-0.1"),
    (dict(batch_size=0), "batch_size=0"),
    (dict(batch_size="32"), "batch_size='32'"),
])
def test_train_config_validation(kwargs, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        TrainConfig(**kwargs)


def test_train_config_defaults():
    cfg = TrainConfig()
    assert cfg.momentum == 0.9 and cfg.weight_decay == 5e-4 and cfg.epochs >= 1


# --------------------------------------------------------------------------- training


def test_short_training_reduces_the_loss():
    torch.manual_seed(0)
    m = build_model("small_cnn", 3)
    hist = train_model(m, _toy_loader(), TrainConfig(epochs=8, lr=0.05, batch_size=8),
                       progress=False, val_loader=_toy_loader(seed=1))
    assert len(hist.loss) == len(hist.acc) == len(hist.val_acc) == 8
    assert hist.loss[-1] < 0.5 * hist.loss[0]
    assert hist.acc[-1] > hist.acc[0] and hist.seconds > 0


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path, model, x):
    p = save_checkpoint(tmp_path / "ck" / "m.pt", model, dict(META, note="hi"))
    loaded, meta = load_checkpoint(p, "small_cnn", 3, "abc123")
    assert meta["note"] == "hi" and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert not list((tmp_path / "ck").glob("*.tmp"))  # written atomically, nothing left over


@pytest.mark.parametrize("field, kwargs", [
    ("arch", dict(arch="resnet18_mlp")),
    ("num_classes", dict(num_classes=4)),
    ("manifest_hash", dict(manifest_hash="other")),
])
def test_checkpoint_for_something_else_is_refused(tmp_path, model, field, kwargs):
    p = save_checkpoint(tmp_path / "m.pt", model, META)
    with pytest.raises(CheckpointMismatchError, match=field) as e:
        load_checkpoint(p, **kwargs)
    assert str(p) in str(e.value) and repr(kwargs[field]) in str(e.value)


def test_checkpoint_is_not_overwritten(tmp_path, model):
    p = save_checkpoint(tmp_path / "m.pt", model, META)
    before = p.read_bytes()
    torch.manual_seed(5)
    other = build_model("small_cnn", 3)
    with pytest.raises(FileExistsError, match="m.pt"):
        save_checkpoint(p, other, META)
    assert p.read_bytes() == before
    save_checkpoint(p, other, META, overwrite=True)
    assert p.read_bytes() != before


def test_checkpoint_errors(tmp_path, model):
    with pytest.raises(ValueError, match="manifest_hash"):
        save_checkpoint(tmp_path / "m.pt", model, dict(arch="small_cnn", num_classes=3))
    assert not (tmp_path / "m.pt").exists()
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_train_or_load_reuses_and_refuses(tmp_path, x, monkeypatch):
    cfg = TrainConfig(epochs=1, lr=0.01, batch_size=8)
    p = tmp_path / "orig.pt"
    m1, meta1 = train_or_load(p, "small_cnn", 3, "abc123", _toy_loader(), cfg, progress=False)
    assert p.is_file() and meta1["config"]["epochs"] == 1 and "history" in meta1
    before = p.read_bytes()

    def no_training(*a, **k):
        raise AssertionError("a matching checkpoint must be reused, not retrained")

    monkeypatch.setattr(train_mod, "train_model", no_training)
    m2, meta2 = train_or_load(p, "small_cnn", 3, "abc123", _toy_loader(), cfg, progress=False)
    with torch.no_grad():
        assert torch.equal(m1(x), m2(x))
    assert meta2["config"] == meta1["config"] and p.read_bytes() == before
    with pytest.raises(CheckpointMismatchError, match="lr"):
        train_or_load(p, "small_cnn", 3, "abc123", _toy_loader(),
                      TrainConfig(epochs=1, lr=0.02, batch_size=8), progress=False)
    with pytest.raises(CheckpointMismatchError, match="manifest_hash"):
        train_or_load(p, "small_cnn", 3, "zzz", _toy_loader(), cfg, progress=False)
    with pytest.raises(CheckpointMismatchError, match="num_classes"):
        train_or_load(p, "small_cnn", 4, "abc123", _toy_loader(), cfg, progress=False)
    assert p.read_bytes() == before
