"""A learner's own data: the generic split by fractions on a real folder of images
(scikit-learn's bundled digits written as PNGs), an original trained on it end to end, and the
warnings that say when a run's numbers cannot rank methods."""

import csv
import math

import numpy as np
import pytest
import torch
from PIL import Image

from dlfd import experiment, sanity
from dlfd.metrics import accuracy
from dlfd.data import fraction_counts, make_split
from dlfd.profiles import GENERIC_SPLIT, get_profile
from dlfd.source import Source
from dlfd.sources import get_source


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    """sklearn's 1,797 8×8 digits as 32×32 PNGs, one sub-folder per class."""
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path_factory.mktemp("digits")
    for i, (img, y) in enumerate(zip(d.images, d.target)):
        folder = root / f"digit{y}"
        folder.mkdir(exist_ok=True)
        pixels = np.round(img * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32), Image.NEAREST).save(folder / f"{i:04d}.png")
    return root


# --------------------------------------------------------------------------- the split


def test_own_data_gets_the_generic_split_protocol():
    for name in ("imagefolder", "csv", "image-folder"):
        p = get_profile("cpu", dataset=name)
        assert p.split_fractions == GENERIC_SPLIT["split_fractions"]
        assert (p.max_train, p.forget_frac) == (GENERIC_SPLIT["max_train"],
                                                GENERIC_SPLIT["forget_frac"])
    # the embedded faces and Fashion-MNIST keep their per-class counts
    assert get_profile("cpu", dataset="orl").split_fractions is None
    assert get_profile("cpu", dataset="fashion-mnist").split_fractions is None
    # a caller's own shares survive the adaptation
    mine = get_profile(get_profile("cpu", split_fractions=(0.3, 0.2, 0.5)), dataset="csv")
    assert mine.split_fractions == (0.3, 0.2, 0.5)


def test_fraction_counts():
    assert fraction_counts(180, (0.5, 0.15, 0.35)) == (90, 27, 63)
    assert fraction_counts(180, (0.5, 0.15, 0.35), max_train=50) == (50, 15, 35)
    assert fraction_counts(10, (0.4, 0.1, 0.2)) == (4, 1, 2)  # shares below 1: a rest unused


def test_digits_split_sizes_are_sensible(digits_root):
    source = get_source("imagefolder", digits_root)
    assert source.num_classes == 10 and len(source.keys) == 1797
    m = experiment.split_for(source, "cpu", seed=0)
    sizes = m.sizes()
    # at most 50 training images per class (max_train), 20% of them forgotten
    assert sizes == {"retain": 400, "forget": 100, "val": 150, "test": 350}
    for split in ("val", "test"):
        assert sorted(set(m.labels(split))) == list(range(10))
    train = m.labels("retain") + m.labels("forget")
    assert all(train.count(c) == 50 for c in range(10))
    assert m.meta["fractions"] == list(GENERIC_SPLIT["split_fractions"])
    assert experiment.split_for(source, "cpu", seed=0).hash == m.hash
    assert experiment.split_for(source, "cpu", seed=1).hash != m.hash


def test_csv_of_the_same_images_splits_alike(digits_root, tmp_path):
    source = get_source("imagefolder", digits_root)
    listing = tmp_path / "labels.csv"
    with open(listing, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        for key, y in zip(source.keys, source.labels):
            w.writerow([str(digits_root / key), source.class_names[y]])
    m = experiment.split_for(get_source("csv", listing), "smoke", seed=0)
    assert m.sizes() == {"retain": 400, "forget": 100, "val": 150, "test": 350}


def _array_source(counts):
    labels = [c for c, n in enumerate(counts) for _ in range(n)]
    images = np.arange(len(labels), dtype=np.int64)
    return Source("imagefolder", "-", [str(i) for i in range(len(labels))], labels,
                  lambda k: np.frombuffer(images[int(k)].tobytes(), np.uint8).reshape(2, 4),
                  [f"class{c}" for c in range(len(counts))])


def test_a_class_too_small_for_every_split_is_named():
    with pytest.raises(ValueError, match=r"'class1' has 3 images.*1 train, 0 val and 2 test"):
        make_split(_array_source([40, 3]), fractions=(0.5, 0.15, 0.35))
    with pytest.raises(ValueError, match="fractions="):
        make_split(_array_source([40, 40]), fractions=(0.7, 0.2, 0.3))


# --------------------------------------------------------------------------- end to end


def test_digits_folder_trains_an_original_well_above_chance(digits_root, tmp_path):
    torch.set_num_threads(1)
    prep = experiment.prepare("smoke", 0, tmp_path, dataset="imagefolder",
                              dataset_root=str(digits_root), device="cpu", progress=False)
    assert prep.folder.name == "imagefolder_smoke_seed0"
    assert prep.profile.split_fractions == GENERIC_SPLIT["split_fractions"]
    # measured: 0.994 on test (chance 0.1), 42 s on the shared 2-core machine
    test_acc = accuracy(prep.original, prep.loaders.test, prep.device)
    assert test_acc > 0.8


# --------------------------------------------------------------------------- the warnings


def _rec(test_acc, mia, mia_se=0.02, **extra):
    return dict(test_acc=test_acc, mia=mia, mia_se=mia_se, **extra)


def test_warnings_quiet_when_the_numbers_can_rank():
    assert sanity.rank_warnings(_rec(0.9, 0.70), _rec(0.88, 0.50), num_classes=10) == []


def test_warning_original_near_chance():
    out = sanity.rank_warnings(_rec(0.14, 0.70), _rec(0.13, 0.50), num_classes=10)
    assert out == [sanity.WARN_CHANCE]
    assert "near chance" in out[0] and "cannot rank methods" in out[0]
    # the class count may come with the record
    assert sanity.rank_warnings(_rec(0.14, 0.7, num_classes=10), _rec(0.1, 0.5)) == out


def test_warning_mia_gap_within_noise():
    # gap 0.05 < 2 * sqrt(0.02² + 0.02²) ≈ 0.057
    out = sanity.rank_warnings(_rec(0.9, 0.55), _rec(0.9, 0.50), num_classes=10)
    assert out == [sanity.WARN_MIA] and "within its noise" in out[0]
    assert sanity.rank_warnings(_rec(0.9, 0.56), _rec(0.9, 0.50), num_classes=10) == []


def test_warning_uses_the_binomial_standard_error_without_mia_se():
    orig, retr = dict(test_acc=0.9, mia=0.6), dict(test_acc=0.9, mia=0.5)
    # n_forget = 100: se = 0.05 each, combined 0.0707; a 0.1 gap is within 2 × that
    assert sanity.rank_warnings(orig, retr, 10, n_forget=100) == [sanity.WARN_MIA]
    # n_forget = 1000: combined se ≈ 0.0224; a 0.1 gap is not
    assert sanity.rank_warnings(orig, retr, 10, n_forget=1000) == []
    assert sanity.rank_warnings({**orig, "mia_n": 1000}, {**retr, "mia_n": 1000}, 10) == []
    with pytest.raises(ValueError, match="n_forget"):
        sanity.rank_warnings(orig, retr, 10)
    assert math.isclose(0.5 / math.sqrt(100), 0.05)
