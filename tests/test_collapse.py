"""Correlation collapse as numbers (docs/method.md §1)."""

import copy

import numpy as np
import pytest
import torch

from helpers import toy_loaders
from dlfd import collapse as C
from dlfd.data import Loaders


def _blobs(n_per_class=100, classes=3, d=16, spread=4.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (classes, d))
    y = np.repeat(np.arange(classes), n_per_class)
    return centres[y] + rng.normal(0, 1, (len(y), d)), y


def test_embeddings_shape_and_mode(toy_vector_net, toy_vector_loader):
    torch.manual_seed(0)
    net = toy_vector_net().train()
    X, y = torch.randn(70, 6), torch.arange(70) % 3
    Z, yy = C.embeddings(net, toy_vector_loader(X, y, batch_size=32))
    assert Z.shape == (70, 8) and Z.dtype == np.float32
    assert np.array_equal(yy, y.numpy())
    with torch.no_grad():
        assert np.allclose(Z, net.embed(X).numpy(), atol=1e-6)
    assert net.training  # mode restored


def test_probe_and_knn_separable_blobs():
    Z, y = _blobs(seed=0)
    Zt, yt = Z + np.random.default_rng(9).normal(0, 0.5, Z.shape), y
    assert C.linear_probe_accuracy(Z, y, Zt, yt) > 0.95
    assert C.knn_accuracy(Z, y, Zt, yt) > 0.95
    assert C.knn_accuracy(Z, y, Zt, yt, metric="euclidean") > 0.95
    with pytest.raises(ValueError):
        C.knn_accuracy(Z, y, Zt, yt, metric="manhattan")


class _NoiseEmbedNet(torch.nn.Module):
    """A 'collapsed' model: its embedding ignores the input entirely."""

    def __init__(self, d=16, classes=3):
        super().__init__()
        self.d = d
        self.head = torch.nn.Linear(d, classes)
        self.g = torch.Generator().manual_seed(0)

    def embed(self, x):
        return torch.randn(len(x), self.d, generator=self.g)

    def forward(self, x):
        return self.head(self.embed(x))


def test_collapsed_model_scores_chance(toy_vector_loader):
    # Chance is 1/3; with 900 test samples the accuracy's SE is √(1/3·2/3/900) ≈ 0.016, so
    # 0.08 is 5 SE.
    g = torch.Generator().manual_seed(1)
    X, Xt = torch.randn(300, 6, generator=g), torch.randn(900, 6, generator=g)
    y, yt = torch.arange(300) % 3, torch.arange(900) % 3
    ld = Loaders(None, toy_vector_loader(X, y), None, None, None, toy_vector_loader(Xt, yt))
    rep = C.collapse_report(_NoiseEmbedNet(), ld)
    assert abs(rep["probe_acc"] - 1 / 3) < 0.08
    assert abs(rep["knn_acc"] - 1 / 3) < 0.08
    assert rep["separability"] < 0.02  # ≈ (C − 1)/(n − C) ≈ 0.002 for label-free features
    assert "cka_to_original" not in rep


def test_separability_orders_and_invariances():
    Z, y = _blobs(seed=2)
    shuffled = np.random.default_rng(0).permutation(y)
    s, s_shuf = C.separability(Z, y), C.separability(Z, shuffled)
    assert s > 10 * s_shuf and s > 1.0
    assert s_shuf < 5 * (3 - 1) / (len(y) - 3) + 0.01
    Q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(16, 16)))
    assert C.separability(3.0 * Z @ Q + 5.0, y) == pytest.approx(s, rel=1e-9)
    assert C.separability(Z, y, "silhouette") > C.separability(Z, shuffled, "silhouette")
    with pytest.raises(ValueError):
        C.separability(Z, y, "lda")
    with pytest.raises(ValueError):
        C.separability(Z, np.zeros(len(y)))


def test_linear_cka_properties():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    assert C.linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert C.linear_cka(X, 2.5 * X @ Q) == pytest.approx(1.0, abs=1e-10)
    assert C.linear_cka(X, X + 7.0) == pytest.approx(1.0, abs=1e-10)  # centred
    Y = rng.normal(size=(300, 5))  # independent, other width
    cka = C.linear_cka(X, Y)
    assert 0.0 <= cka < 0.2
    assert C.linear_cka(Y, X) == pytest.approx(cka, rel=1e-12)
    with pytest.raises(ValueError):
        C.linear_cka(X, Y[:10])


def test_project_2d():
    Z, _ = _blobs(n_per_class=10, seed=3)
    P = C.project_2d(Z, "pca")
    assert P.shape == (30, 2) and np.allclose(P.mean(0), 0, atol=1e-9)
    T1, T2 = C.project_2d(Z, "tsne", seed=0), C.project_2d(Z, "tsne", seed=0)
    assert T1.shape == (30, 2) and np.allclose(T1, T2)
    with pytest.raises(ValueError):
        C.project_2d(Z, "umap")


def test_collapse_report_on_toy_model(toy_data, toy_original):
    ld = toy_loaders(toy_data)
    rep = C.collapse_report(toy_original, ld, original=copy.deepcopy(toy_original))
    assert set(rep) == {"probe_acc", "knn_acc", "separability", "separability_retain",
                        "cka_to_original"}
    assert rep["cka_to_original"] == pytest.approx(1.0, abs=1e-6)
    assert rep["probe_acc"] > 0.5  # chance is 1/3; the original generalises
    assert rep["separability_retain"] > rep["separability"] > 0  # fits train better than test


def test_collapse_of_a_diverged_model_is_nan_not_a_crash():
    Z = np.random.default_rng(0).normal(size=(12, 4))
    y = np.arange(12) % 3
    bad = Z.copy()
    bad[3, 1] = np.nan
    rep = C.collapse_from_embeddings(Z, y, bad, y, Z)
    assert set(rep) == {"probe_acc", "knn_acc", "separability", "separability_retain",
                        "cka_to_original"}
    assert all(np.isnan(v) for v in rep.values())
