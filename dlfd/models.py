"""Networks: the paper's ResNet-18 with an MLP head, and a small CNN for quick CPU runs.

Both expose ``embed(x)`` (the penultimate features, the input of the last linear layer) and
``head(z)`` (that last layer), with ``forward(x) == head(embed(x))``: later steps work in
feature space (docs/method.md §2.3: φ is the logits or the penultimate embedding).
``blocks()`` lists the parametrised stages from input to output, which CF-k and EU-k use to
pick "the last k layers".
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torchvision

from .checks import check_choice, check_int

ARCHS = ("resnet18_mlp", "small_cnn")


class _Embedder(nn.Module):
    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def _mlp(in_features: int, num_classes: int, dropout: float) -> tuple[nn.Sequential, nn.Linear]:
    body = nn.Sequential(nn.Linear(in_features, 256), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(256, 128), nn.ReLU(inplace=True), nn.Dropout(dropout))
    return body, nn.Linear(128, num_classes)


class ResNet18MLP(_Embedder):
    """ResNet-18 from scratch; fc replaced by 512→256→ReLU→Dropout→128→ReLU→Dropout→classes."""

    def __init__(self, num_classes: int, dropout: float = 0.0):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        net.fc = nn.Identity()
        self.backbone = net
        self.mlp, self.head = _mlp(512, num_classes, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.backbone(x))

    def blocks(self) -> list[nn.Module]:
        b = self.backbone
        return [nn.ModuleList([b.conv1, b.bn1]), b.layer1, b.layer2, b.layer3, b.layer4,
                self.mlp[0], self.mlp[3], self.head]


class SmallCNN(_Embedder):
    """Four conv-BN-ReLU stages with pooling, then the same MLP head shape (for CPU profiles)."""

    def __init__(self, num_classes: int, width: int = 32, dropout: float = 0.0):
        super().__init__()

        def stage(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.MaxPool2d(2))

        w = width
        self.features = nn.Sequential(stage(3, w), stage(w, 2 * w), stage(2 * w, 4 * w),
                                      stage(4 * w, 8 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.mlp, self.head = _mlp(8 * w, num_classes, dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.features(x))

    def blocks(self) -> list[nn.Module]:
        return [*self.features[:4], self.mlp[0], self.mlp[3], self.head]


def build_model(arch: str, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """A fresh, randomly initialised network by name (see ``ARCHS``)."""
    num_classes = check_int("num_classes", num_classes, low=2)
    check_choice("arch", arch, ARCHS)
    if arch == "resnet18_mlp":
        return ResNet18MLP(num_classes, dropout)
    return SmallCNN(num_classes, dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


@contextmanager
def eval_mode(model: nn.Module):
    """Put every submodule in eval mode and restore each one's own flag afterwards.

    ``model.train(was_training)`` would not do: a model may hold submodules whose mode
    differs from its own (a frozen BatchNorm in a training model, say).
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in modes:
            m.training = flag
