"""The loss-MIA's attack model: L2-regularised logistic regression on one feature (the loss),
fitted exactly by Newton's method for every cross-validation split at once.

:func:`dlfd.metrics.mia_from_losses` fits it on 10 splits, the averaged MIA repeats that on 10
subsamples (docs/method.md §3), DLFD's monitor runs it tens of times per run (§2.2), and
test-set selection (§5 D3 "test-set selection") after every step. scikit-learn's
``LogisticRegression`` spends milliseconds per fit on set-up for a problem with two parameters,
which made these attacks most of an unlearning run's cost. The objective here is scikit-learn's
(``C = 1``, the intercept not penalised), so the predictions agree with it
(``tests/test_logistic.py`` checks them against scikit-learn).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

__all__ = ["fit_logistic_1d", "cv_accuracy"]


def _objective(w, b, x, s, lam):
    """Σ log(1 + exp(−s·(w·x + b))) + λ/2·w² per row (s = ±1)."""
    return np.logaddexp(0.0, -s * (w[:, None] * x + b[:, None])).sum(1) + 0.5 * lam * w ** 2


def fit_logistic_1d(x, y, C: float = 1.0, max_iter: int = 100, tol: float = 1e-10):
    """Fit ``p(y = 1 | x) = σ(w·x + b)`` on each row of ``x`` by minimising

    .. math:: \\sum_i \\log\\left(1 + e^{-s_i (w x_i + b)}\\right) + \\frac{w^2}{2C},
              \\qquad s_i = 2 y_i - 1,

    the objective of scikit-learn's ``LogisticRegression(C=C)`` (L2 on ``w`` only).

    Parameters
    ----------
    x, y : array_like, shape (B, n)
        B independent problems of n samples each; ``y`` in {0, 1}.
    C : float, default 1.0
        Inverse regularisation strength, as in scikit-learn.
    max_iter, tol : int, float
        Newton iterations at most, and the step size (in standardised units) that stops them.

    Returns
    -------
    w, b : ndarray, shape (B,)
        Slope and intercept in the units of ``x``.

    Notes
    -----
    Each row is standardised first (the intercept absorbs the shift and the penalty is
    rescaled by the variance, so the optimum is unchanged), which keeps the 2×2 Newton systems
    well conditioned even for losses of 10⁴. A backtracking line search makes every step
    decrease the objective, so the iteration converges from w = b = 0. The objective is
    strictly convex whenever both classes are present, so the minimiser is unique.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"fit_logistic_1d: x and y must be (B, n) arrays of one shape; got "
                         f"{x.shape} and {y.shape}.")
    mu = x.mean(1)
    sd = x.std(1)
    sd = np.where(sd > 0, sd, 1.0)
    z = (x - mu[:, None]) / sd[:, None]
    s = 2.0 * y - 1.0
    lam = 1.0 / (C * sd ** 2)  # the penalty on w in standardised units
    w = np.zeros(len(x))
    b = np.zeros(len(x))
    f = _objective(w, b, z, s, lam)
    for _ in range(max_iter):
        p = expit(w[:, None] * z + b[:, None])
        r = p - y
        h = p * (1.0 - p)
        gw = (r * z).sum(1) + lam * w
        gb = r.sum(1)
        hww = (h * z * z).sum(1) + lam
        hwb = (h * z).sum(1)
        hbb = h.sum(1) + 1e-12
        det = hww * hbb - hwb ** 2
        dw = -(hbb * gw - hwb * gb) / det
        db = -(hww * gb - hwb * gw) / det
        t = np.ones(len(x))
        slope = gw * dw + gb * db
        for _ in range(40):  # halve each row's step until it decreases that row's objective
            f_new = _objective(w + t * dw, b + t * db, z, s, lam)
            bad = f_new > f + 1e-4 * t * slope
            if not bad.any():
                break
            t = np.where(bad, t / 2, t)
        w, b = w + t * dw, b + t * db
        f = _objective(w, b, z, s, lam)
        if np.max(np.abs(t * dw) + np.abs(t * db)) < tol:
            break
    return w / sd, b - w * mu / sd


def cv_accuracy(x, y, splits, C: float = 1.0) -> np.ndarray:
    """Held-out accuracy of :func:`fit_logistic_1d` on each ``(train, test)`` index pair of
    ``splits`` (equal-sized, as a shuffled splitter gives); a sample is predicted a member
    (1) when ``w·x + b > 0``, as scikit-learn's ``predict`` does."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    train, test = (np.stack(idx) for idx in zip(*splits))
    w, b = fit_logistic_1d(x[train], y[train], C=C)
    predicted = (w[:, None] * x[test] + b[:, None]) > 0
    return (predicted == (y[test] == 1)).mean(1)
