"""The loss-MIA's attack model (dlfd/logistic.py) against scikit-learn's LogisticRegression,
whose objective it solves, and the rank AUC against roc_auc_score."""

import warnings

import numpy as np
import pytest

from dlfd import metrics as M
from dlfd.logistic import cv_accuracy, fit_logistic_1d


def problems(seed: int):
    """(members, non-members) loss samples of the shapes evaluations produce: a clear gap,
    no gap, tiny vs large losses, a diverged model's 1e4 outlier, ties, separable data."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 200)), int(rng.integers(3, 400))
    yield rng.exponential(0.3, n), rng.exponential(1.0, k)
    yield rng.exponential(1.0, n), rng.exponential(1.0, k)
    yield rng.exponential(1e-3, n), 100 * rng.exponential(3.0, k)
    outlier = rng.exponential(1.0, n)
    outlier[0] = 1e4
    yield outlier, rng.exponential(1.0, k)
    yield rng.integers(0, 3, n).astype(float), rng.integers(0, 3, k).astype(float)
    yield rng.uniform(0.0, 0.01, n), rng.uniform(5.0, 6.0, k)


def sklearn_fit(x, y):
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs on unscaled 1e4 outliers warns; tol makes it exact
        lr = LogisticRegression(tol=1e-12, max_iter=100_000).fit(x[:, None], y)
    return lr.coef_[0, 0], lr.intercept_[0]


@pytest.mark.parametrize("seed", range(4))
def test_fit_matches_sklearn_optimum(seed):
    for m, u in problems(seed):
        x, y = np.r_[m, u], np.r_[np.ones(len(m)), np.zeros(len(u))]
        w, b = fit_logistic_1d(x[None], y[None])
        w_ref, b_ref = sklearn_fit(x, y)
        scale = np.std(x) or 1.0  # compare decision functions in the data's own units
        assert w[0] * scale == pytest.approx(w_ref * scale, abs=1e-5)
        assert b[0] == pytest.approx(b_ref, abs=1e-5)


def test_cv_accuracy_matches_cross_val_score():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

    rng = np.random.default_rng(5)
    for trial in range(20):
        n = int(rng.integers(5, 300))
        x = np.r_[rng.exponential(0.5, n), rng.exponential(1.0, n)]
        y = np.r_[np.ones(n), np.zeros(n)]
        cv = StratifiedShuffleSplit(n_splits=10, test_size=0.3, random_state=trial)
        expected = cross_val_score(LogisticRegression(), x[:, None], y, cv=cv)
        assert np.array_equal(cv_accuracy(x, y, cv.split(x[:, None], y)), expected)


def test_identical_losses_give_chance():
    # no feature to use: w = 0 and, on balanced folds, b = 0; every sample is called a
    # non-member (w·x + b > 0 fails), so each balanced fold is exactly half right
    x = np.full(40, 0.7)
    y = np.r_[np.ones(20), np.zeros(20)]
    from sklearn.model_selection import StratifiedShuffleSplit

    cv = StratifiedShuffleSplit(n_splits=5, test_size=0.3, random_state=0)
    assert np.allclose(cv_accuracy(x, y, cv.split(x[:, None], y)), 0.5)


def test_fit_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(B, n\) arrays of one shape; got \(3,\) and \(1, 3\)"):
        fit_logistic_1d(np.zeros(3), np.zeros((1, 3)))


def test_membership_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(6)
    for _ in range(50):
        m = rng.integers(0, 5, rng.integers(1, 40)).astype(float)
        u = rng.integers(0, 5, rng.integers(1, 40)).astype(float)
        labels = np.r_[np.ones(len(m)), np.zeros(len(u))]
        assert M.membership_auc(m, u) == pytest.approx(roc_auc_score(labels, -np.r_[m, u]),
                                                       abs=1e-12)
