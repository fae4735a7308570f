"""Correlation collapse, measured (docs/method.md §1).

Error-maximising unlearning weakens the correlation between image features and true labels;
in feature space, classes that were separable become mixed. This module turns that picture
into numbers on the penultimate embedding (``model.embed``, the space DLFD works in):

* :func:`linear_probe_accuracy` — how much label information a *linear* read-out still finds
  (fit on retain embeddings, scored on test embeddings);
* :func:`knn_accuracy` — the same, read out locally by nearest neighbours;
* :func:`separability` — a class-separability index (Fisher trace ratio, or silhouette);
* :func:`linear_cka` — how similar the whole representation still is to the original's;
* :func:`project_2d` — PCA / t-SNE coordinates for the pictures.

:func:`collapse_report` bundles the numbers for one model (:func:`collapse_from_embeddings`
from embeddings a caller already has). scikit-learn is imported inside the
functions that use it because importing it takes about a second.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from .checks import check_choice, require
from .models import eval_mode


@torch.no_grad()
def embeddings(model: nn.Module, loader: DataLoader, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Penultimate embeddings ``Z`` (n × d, float32) and labels ``y`` (n,), in eval mode.

    The model's mode is restored afterwards.
    """
    zs, ys = [], []
    with eval_mode(model):
        for x, y in loader:
            zs.append(model.embed(x.to(device)).float().cpu())
            ys.append(torch.as_tensor(y))
    if not zs:
        return np.empty((0, 0), np.float32), np.empty(0, np.int64)
    return torch.cat(zs).numpy(), torch.cat(ys).long().numpy()


def _check_xy(Z, y, what: str):
    """``Z`` as float64 (n, d) and ``y`` as (n,), n > 0; else a ValueError naming ``what``."""
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y).ravel()
    require(Z.ndim == 2 and len(Z) == len(y) and len(y) > 0, f"{what}: expected Z of shape "
            f"(n, d) and y of shape (n,), n > 0; got {Z.shape} and {y.shape}.")
    return Z, y


def linear_probe_accuracy(Z_train, y_train, Z_test, y_test, *, C: float = 1.0,
                          max_iter: int = 2000) -> float:
    """Test accuracy of a logistic-regression probe fit on (standardised) training embeddings.

    Standardising makes the probe indifferent to the overall scale of the features, which
    unlearning methods change a lot; what is left is whether the *directions* still carry
    the label. The fit is deterministic (lbfgs), so no seed is needed.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Z_train, y_train = _check_xy(Z_train, y_train, "linear_probe_accuracy (train)")
    Z_test, y_test = _check_xy(Z_test, y_test, "linear_probe_accuracy (test)")
    require(len(np.unique(y_train)) >= 2,
            "linear_probe_accuracy needs at least two classes in the training set.")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    probe.fit(Z_train, y_train)
    return float(probe.score(Z_test, y_test))


def knn_accuracy(Z_train, y_train, Z_test, y_test, k: int = 5, metric: str = "cosine") -> float:
    """Test accuracy of a k-nearest-neighbour classifier (k = 5) on the embeddings.

    Cosine is the default because it is the geometry DLFD's OT cost uses (C_ij = 1 − cos,
    docs/method.md §2.3) and because post-ReLU embeddings change norm under unlearning
    without that meaning anything about class structure. ``metric="euclidean"`` is the
    alternative. ``k`` is capped at the training-set size.
    """
    from sklearn.neighbors import KNeighborsClassifier

    check_choice("metric", metric, ("cosine", "euclidean"))
    Z_train, y_train = _check_xy(Z_train, y_train, "knn_accuracy (train)")
    Z_test, y_test = _check_xy(Z_test, y_test, "knn_accuracy (test)")
    knn = KNeighborsClassifier(n_neighbors=max(1, min(int(k), len(y_train))), metric=metric,
                               algorithm="brute")
    knn.fit(Z_train, y_train)
    return float(knn.score(Z_test, y_test))


def separability(Z, y, method: str = "fisher") -> float:
    """A class-separability index of embeddings ``Z`` with labels ``y``.

    ``"fisher"`` (default): the trace ratio tr(S_B) / tr(S_W), between-class over within-class
    scatter, with S_B = Σ_c n_c ‖μ_c − μ‖² and S_W = Σ_i ‖z_i − μ_{y_i}‖². It is invariant
    to translation, rotation and isotropic scaling, unbounded above, and ≈ (C − 1)/(n − C)
    for label-shuffled data; collapse drives it down. ``inf`` when every class is a point.
    ``"silhouette"``: sklearn's mean silhouette (cosine), in [−1, 1].
    """
    Z, y = _check_xy(Z, y, "separability")
    classes = np.unique(y)
    require(len(classes) >= 2, "separability needs at least two classes.")
    check_choice("method", method, ("fisher", "silhouette"))
    if method == "silhouette":
        from sklearn.metrics import silhouette_score

        return float(silhouette_score(Z, y, metric="cosine"))
    mu = Z.mean(0)
    between = within = 0.0
    for c in classes:
        Zc = Z[y == c]
        mc = Zc.mean(0)
        between += len(Zc) * float(((mc - mu) ** 2).sum())
        within += float(((Zc - mc) ** 2).sum())
    if within == 0.0:
        return float("inf") if between > 0 else float("nan")
    return between / within


def linear_cka(Z1, Z2) -> float:
    """Linear centred kernel alignment (Kornblith et al., 2019) between two representations of
    the same n samples: ‖Y̅ᵀX̅‖²_F / (‖X̅ᵀX̅‖_F ‖Y̅ᵀY̅‖_F) with column-centred X̅, Y̅.

    1 for identical representations; invariant to orthogonal transforms and isotropic
    scaling (not to arbitrary invertible linear maps), so it compares what the features
    encode rather than their coordinates. The widths may differ.
    """
    X = np.asarray(Z1, dtype=np.float64)
    Y = np.asarray(Z2, dtype=np.float64)
    require(X.ndim == 2 and Y.ndim == 2 and len(X) == len(Y), f"linear_cka needs two (n, d) "
            f"arrays over the same n samples; got {X.shape} and {Y.shape}.")
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    # The feature-space form costs O(n·d²) instead of the Gram form's O(n²·d).
    num = np.linalg.norm(Y.T @ X) ** 2
    den = np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)
    return float(num / den) if den > 0 else float("nan")


def project_2d(Z, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D coordinates of the embeddings for plotting (n × 2).

    ``"pca"`` is linear and faithful to global geometry; ``"tsne"`` shows local clusters but
    distorts distances (do not read cluster gaps as distances). t-SNE's perplexity is capped
    at (n − 1)/3 so that small sets still work; ``seed`` fixes its layout.
    """
    Z = np.asarray(Z, dtype=np.float64)
    require(Z.ndim == 2 and len(Z) >= 3,
            f"project_2d needs an (n, d) array with n ≥ 3; got {Z.shape}.")
    check_choice("method", method, ("pca", "tsne"))
    if method == "pca":
        from sklearn.decomposition import PCA

        k = min(2, Z.shape[1], len(Z))
        P = PCA(n_components=k, random_state=seed).fit_transform(Z)
        return np.pad(P, ((0, 0), (0, 2 - k))) if k < 2 else P
    from sklearn.manifold import TSNE

    perp = float(min(perplexity, max(1.0, (len(Z) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(Z)


def collapse_report(model: nn.Module, loaders, original: nn.Module | None = None,
                    device="cpu", k: int = 5) -> dict:
    """Correlation-collapse numbers for one model (docs/method.md §1).

    ``loaders`` is a :class:`dlfd.data.Loaders`. Probes are fit on retain (eval transform)
    embeddings and scored on test embeddings, so they measure label information that
    *generalises*. Keys: see :func:`collapse_from_embeddings`.
    """
    Zr, yr = embeddings(model, loaders.retain_eval, device)
    Zt, yt = embeddings(model, loaders.test, device)
    Zo = embeddings(original, loaders.test, device)[0] if original is not None else None
    return collapse_from_embeddings(Zr, yr, Zt, yt, Zo, k=k)


def collapse_from_embeddings(Z_retain, y_retain, Z_test, y_test, Z_original_test=None,
                             k: int = 5) -> dict:
    """:func:`collapse_report` from embeddings a caller already has.

    Keys: ``probe_acc``, ``knn_acc``, ``separability`` (Fisher, on test),
    ``separability_retain`` (Fisher, on retain) and, with ``Z_original_test`` (the original
    model's test embeddings, same order), ``cka_to_original`` (linear CKA); all NaN when the
    model's embeddings are not finite (it diverged).
    """
    keys = ["probe_acc", "knn_acc", "separability", "separability_retain"]
    if Z_original_test is not None:
        keys.append("cka_to_original")
    if not (np.isfinite(Z_retain).all() and np.isfinite(Z_test).all()):
        # a diverged model (NegGrad at a large learning rate, say) has no features left to
        # measure: NaN says so, where a probe fit on NaNs would stop the whole evaluation
        return dict.fromkeys(keys, float("nan"))
    out = {
        "probe_acc": linear_probe_accuracy(Z_retain, y_retain, Z_test, y_test),
        "knn_acc": knn_accuracy(Z_retain, y_retain, Z_test, y_test, k=k),
        "separability": separability(Z_test, y_test),
        "separability_retain": separability(Z_retain, y_retain),
    }
    if Z_original_test is not None:
        out["cka_to_original"] = linear_cka(Z_test, Z_original_test)
    return out
