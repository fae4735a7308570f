"""Evaluation metrics (PAPER.md, "Evaluation protocol").

Accuracies, per-sample losses and the balanced loss-based membership-inference attack (MIA),
the forgetting score FS = |MIA − 0.5| and NoMUS = λ·TA + (1 − λ)·(1 − 2·FS).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels over a loader, in eval mode (the model's mode is restored)."""
    was_training = model.training
    model.eval()
    outs, ys = [], []
    for x, y in loader:
        outs.append(model(x.to(device)).float().cpu())
        ys.append(y)
    model.train(was_training)
    if not outs:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(outs), torch.cat(ys)


def accuracy(model: nn.Module, loader: DataLoader, device="cpu") -> float:
    """Top-1 accuracy on a loader."""
    logits, y = predict(model, loader, device)
    return float((logits.argmax(1) == y).float().mean()) if len(y) else float("nan")


def per_sample_losses(model: nn.Module, loader: DataLoader, device="cpu") -> np.ndarray:
    """Cross-entropy of every sample (no reduction)."""
    logits, y = predict(model, loader, device)
    return F.cross_entropy(logits, y, reduction="none").numpy()


@dataclass
class MIAResult:
    """Mean and std of the attack's CV accuracy, the samples per side, and the loss AUC.

    ``auc`` is the ROC AUC of "lower loss ⇒ member": a lower-variance view of the same
    signal (NOTES.md, item 2); 0.5 means no signal.
    """

    mean: float
    std: float
    n_per_side: int
    auc: float

    def as_dict(self) -> dict:
        return asdict(self)


def mia_from_losses(member_losses, nonmember_losses, seed: int = 0, n_splits: int = 10,
                    test_size: float = 0.3) -> MIAResult:
    """Balanced loss-MIA: logistic regression on per-sample losses, scored by stratified
    shuffled cross-validation (PAPER.md protocol; defect 5 fixed by balancing).

    The larger side is subsampled with ``seed`` so that chance is exactly 0.5.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedShuffleSplit, cross_val_score

    m = np.asarray(member_losses, dtype=np.float64).ravel()
    u = np.asarray(nonmember_losses, dtype=np.float64).ravel()
    if len(m) < 2 or len(u) < 2:
        raise ValueError(f"MIA needs at least 2 samples per side; got {len(m)} members and "
                         f"{len(u)} non-members.")
    if not (np.isfinite(m).all() and np.isfinite(u).all()):
        raise ValueError("MIA got non-finite losses.")
    rng = np.random.default_rng(seed)
    n = min(len(m), len(u))
    m = m[rng.choice(len(m), n, replace=False)] if len(m) > n else m
    u = u[rng.choice(len(u), n, replace=False)] if len(u) > n else u
    x = np.concatenate([m, u])[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    cv = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=seed)
    scores = cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="accuracy")
    auc = roc_auc_score(y, -x[:, 0])
    return MIAResult(float(scores.mean()), float(scores.std()), n, float(auc))


def mia(model: nn.Module, forget: DataLoader, unseen: DataLoader, seed: int = 0,
        n_splits: int = 10, device="cpu") -> MIAResult:
    """Loss-MIA with forget samples as members and unseen (test) samples as non-members;
    both loaders must use eval transforms."""
    return mia_from_losses(per_sample_losses(model, forget, device),
                           per_sample_losses(model, unseen, device), seed, n_splits)


def forgetting_score(mia_value: float) -> float:
    """FS = |MIA − 0.5|; 0 is best."""
    return abs(float(mia_value) - 0.5)


def nomus(test_acc: float, fs: float, lam: float = 0.5) -> float:
    """NoMUS = λ·TA + (1 − λ)·(1 − 2·FS), in [0, 1], higher is better."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam={lam!r}; expected a value in [0, 1].")
    return lam * float(test_acc) + (1.0 - lam) * (1.0 - 2.0 * float(fs))
