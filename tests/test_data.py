"""The ORL source, the seeded split protocol, manifests and loaders (real embedded faces)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dlfd import sources
from dlfd.data import (Manifest, Normalization, SplitLeakError, content_hash, get_source,
                       load_split_data, make_loaders, make_split, validate_manifest)
from dlfd.source import SPLITS
from dlfd.sources import orl_root, orl_source


@pytest.fixture(scope="module")
def src():
    return orl_source()


@pytest.fixture(scope="module")
def split(src):
    return make_split(src, seed=0, n_train=3, n_val=1)


@pytest.fixture(scope="module")
def data(src, split):
    return load_split_data(src, split, image_size=16)


def _by_split(m: Manifest) -> dict[str, set[str]]:
    return {s: set(m.paths(s)) for s in SPLITS}


# --------------------------------------------------------------------------- the ORL source


def test_orl_identity_order_is_numeric(src):
    assert src.name == "orl" and get_source("orl").keys == src.keys
    assert get_source is sources.get_source  # dlfd.data re-exports the one dispatch
    assert src.num_classes == 40
    assert src.class_names == [f"s{i}" for i in range(1, 41)]
    assert len(src.keys) == 400 and all(k.endswith(".pgm") for k in src.keys)
    assert (orl_root() / "s10" / "target.jpg").exists()  # shipped, and ignored
    assert not any("target" in k for k in src.keys)
    for key, label in zip(src.keys, src.labels):
        person, _ = key.split("/")
        assert label == int(person[1:]) - 1, key
    assert src.labels == sorted(src.labels)  # s1, s2, ..., s10 (not s1, s10, s11, ...)
    assert [k.split("/")[1] for k in src.keys[:10]] == [f"{i}.pgm" for i in range(1, 11)]
    a = src.load("s1/1.pgm")
    assert a.dtype == np.uint8 and a.shape == (112, 92)


# --------------------------------------------------------------------------- split protocol


def test_split_is_deterministic(src, split):
    again = make_split(src, seed=0, n_train=3, n_val=1)
    assert again.to_csv() == split.to_csv() and again.hash == split.hash
    other = make_split(src, seed=1, n_train=3, n_val=1)
    assert other.to_csv() != split.to_csv() and other.hash != split.hash


def test_split_sizes_and_disjointness(src, split):
    sizes = split.sizes()
    assert sizes["retain"] + sizes["forget"] == 120
    assert sizes["forget"] == round(0.25 * 120) == 30
    assert sizes["val"] == 40 and sizes["test"] == 240
    parts = _by_split(split)
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not parts[a] & parts[b], (a, b)
    assert set().union(*parts.values()) == set(src.keys)
    per_class = {}
    for r in split.rows:
        s = "train" if r["split"] in ("retain", "forget") else r["split"]
        per_class.setdefault(r["label"], {}).setdefault(s, 0)
        per_class[r["label"]][s] += 1
    assert all(c == {"train": 3, "val": 1, "test": 6} for c in per_class.values())
    # the forget set is drawn across classes, not from a few of them
    assert len(set(split.labels("forget"))) > 10
    assert [r["sha256"] for r in split.rows if r["path"] == "s1/1.pgm"] == [
        content_hash(src.load("s1/1.pgm"))]


def test_forget_identities_takes_every_train_image_of_those_people(src):
    m = make_split(src, seed=3, n_train=3, n_val=1, forget="identities", forget_ids=[0, 7])
    forget = [r for r in m.rows if r["split"] == "forget"]
    train_of = [r for r in m.rows if r["split"] in ("retain", "forget") and r["label"] in (0, 7)]
    assert sorted(r["path"] for r in forget) == sorted(r["path"] for r in train_of)
    assert len(forget) == 6
    assert not {0, 7} & set(m.labels("retain"))
    assert {0, 7} <= set(m.labels("val")) and {0, 7} <= set(m.labels("test"))


@pytest.mark.parametrize("kwargs, named", [
    (dict(forget="bogus"), "bogus"),
    (dict(n_train=0), "n_train=0"),
    (dict(n_train=2.5), "n_train=2.5"),
    (dict(n_val=-1), "n_val=-1"),
    (dict(n_test=-2), "n_test=-2"),
    (dict(forget_frac=1.5), "forget_frac=1.5"),
    (dict(forget_frac=0.0), "forget_frac=0.0"),
    (dict(forget="identities", forget_ids=[99]), "99"),
    (dict(forget="identities", forget_ids=[]), "forget_ids=[]"),
    (dict(n_train=9, n_val=1), "'s1'"),  # asks for 10 + test images of a person with 10
    (dict(n_train=5, n_val=3, n_test=4), "'s1'"),
])
def test_bad_split_arguments_raise_naming_the_value(src, kwargs, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        make_split(src, seed=0, **kwargs)


# --------------------------------------------------------------------------- manifests


def test_validate_manifest_catches_a_duplicated_image(split):
    rows = [dict(r) for r in split.rows]
    a = next(r for r in rows if r["split"] == "forget")
    b = next(r for r in rows if r["split"] == "test")
    b["sha256"] = a["sha256"]  # b now "has the same pixels" as a
    with pytest.raises(SplitLeakError) as e:
        validate_manifest(Manifest("orl", rows))
    assert a["path"] in str(e.value) and b["path"] in str(e.value)


def test_validate_manifest_catches_a_repeated_path_and_bad_split(split):
    rows = [dict(r) for r in split.rows]
    v = next(r for r in rows if r["split"] == "val")
    rows.append(dict(v, split="retain"))
    with pytest.raises(SplitLeakError, match=re.escape(v["path"])):
        validate_manifest(Manifest("orl", rows))
    with pytest.raises(ValueError, match="train"):
        validate_manifest(Manifest("orl", [dict(split.rows[0], split="train")]))


def test_manifest_round_trip(split, tmp_path):
    p = split.save(tmp_path / "m.csv")
    back = Manifest.load(p)
    assert back.rows == split.rows
    assert back.hash == split.hash and back.to_csv() == split.to_csv()
    assert p.read_text().splitlines()[0] == "path,label,split,sha256"
    assert all(isinstance(r["label"], int) for r in back.rows)


def test_manifest_save_refuses_to_overwrite_a_different_file(src, split, tmp_path):
    p = split.save(tmp_path / "m.csv")
    before = p.read_text()
    assert split.save(p) == p  # the same split again is fine
    other = make_split(src, seed=5, n_train=3, n_val=1)
    with pytest.raises(FileExistsError, match="m.csv"):
        other.save(p)
    assert p.read_text() == before
    other.save(p, overwrite=True)
    assert Manifest.load(p).hash == other.hash
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.csv"]  # no temporary file left
    with pytest.raises(FileNotFoundError):
        Manifest.load(tmp_path / "nope.csv")


# --------------------------------------------------------------------------- transforms


def test_normalization_round_trip_and_projection():
    torch.manual_seed(0)
    for norm in (Normalization(), Normalization((0.2, 0.4, 0.6), (0.1, 0.3, 0.5))):
        p = torch.rand(4, 3, 5, 5)
        assert torch.allclose(norm.to_pixels(norm.from_pixels(p)), p, atol=1e-6)
        assert torch.allclose(norm.to_pixels(norm.from_pixels(p[0])), p[0], atol=1e-6)
        wild = torch.randn(4, 3, 5, 5) * 10
        px = norm.to_pixels(norm.project(wild))
        assert px.min() >= -1e-6 and px.max() <= 1 + 1e-6
        # values that are already valid images are left alone
        valid = norm.from_pixels(p)
        assert torch.allclose(norm.project(valid), valid, atol=1e-6)
        # negative normalised values survive (the public code's clamp would zero them)
        assert (norm.project(valid) < 0).any()


# --------------------------------------------------------------------------- tensors, loaders


def test_load_split_data_shapes(split, data):
    for s in SPLITS:
        x, y = data.images[s], data.labels[s]
        assert x.dtype == torch.uint8 and x.shape == (len(split.paths(s)), 3, 16, 16)
        assert y.tolist() == split.labels(s)
    assert data.num_classes == 40 and data.class_names[:2] == ["s1", "s2"]
    assert len(data.train_dataset()) == 120
    with pytest.raises(ValueError, match="image_size=4"):
        load_split_data(orl_source(), split, image_size=4)


def test_load_split_data_detects_changed_content(src, split):
    rows = [dict(r) for r in split.rows[:3]]
    rows[0]["sha256"] = "0" * 64
    with pytest.raises(SplitLeakError, match=re.escape(rows[0]["path"])):
        load_split_data(src, Manifest("orl", rows), image_size=16)


def test_loaders_yield_normalised_float_batches(data):
    ld = make_loaders(data, batch_size=8, seed=0)
    for loader in (ld.retain_train, ld.retain_eval, ld.forget_eval, ld.val, ld.test):
        x, y = next(iter(loader))
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 16, 16)
        assert y.dtype == torch.long
        assert x.min() >= -1 - 1e-6 and x.max() <= 1 + 1e-6 and x.min() < 0
    assert len(ld.retain_train.dataset) == 90 and len(ld.forget_train.dataset) == 30
    with pytest.raises(ValueError, match="batch_size=0"):
        make_loaders(data, batch_size=0)


def test_train_loaders_are_shuffled_and_seeded(data):
    def first(seed, which="retain_train", augment=False):
        x, y = next(iter(getattr(make_loaders(data, batch_size=16, seed=seed, augment=augment),
                                 which)))
        return x, y

    for which in ("retain_train", "forget_train"):
        x0, y0 = first(0, which)
        x1, y1 = first(0, which)
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
        x2, y2 = first(1, which)
        assert not torch.equal(x0, x2)
    # shuffled: not the manifest order that the eval loader keeps
    _, y_eval = next(iter(make_loaders(data, batch_size=16).retain_eval))
    assert not torch.equal(first(0)[1], y_eval[:16])
    # the order comes from the loader's own generator, flips from the global seed
    torch.manual_seed(0)
    xa, ya = first(0, augment=True)
    torch.manual_seed(0)
    xb, yb = first(0, augment=True)
    assert torch.equal(xa, xb) and torch.equal(ya, first(0)[1])
