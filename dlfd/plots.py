"""Figures the notebooks share. Each function draws on a new figure (or a given axis) and
returns it, so the notebooks stay narrative and the drawing code is tested once."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .data import SPLITS, SplitData


def face_grid(data: SplitData, per_split: int = 8, splits=SPLITS):
    """A row of example images per split (what each split holds, at the model's resolution)."""
    fig, axes = plt.subplots(len(splits), per_split, figsize=(1.2 * per_split, 1.35 * len(splits)),
                             squeeze=False)
    for r, s in enumerate(splits):
        imgs, labels = data.images[s], data.labels[s]
        for c in range(per_split):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(imgs):
                ax.imshow(imgs[c].permute(1, 2, 0).numpy(), cmap="gray")
                ax.set_title(f"{s} · id {int(labels[c])}", fontsize=7)
    fig.tight_layout()
    return fig


def learning_curves(histories: dict[str, dict]):
    """Train loss and train/val accuracy per epoch for each named model's history."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.2))
    for name, h in histories.items():
        a1.plot(h["loss"], label=name)
        a2.plot(h["acc"], label=f"{name} train")
        if h.get("val_acc"):
            a2.plot(h["val_acc"], "--", label=f"{name} val")
    a1.set(xlabel="epoch", ylabel="train loss", yscale="log")
    a2.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    a1.legend()
    a2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def class_colours(n: int) -> np.ndarray:
    """``n`` distinguishable RGBA colours: tab20, then tab20b and tab20c (60 in all), so that
    ORL's 40 people do not share colours; beyond 60 the hues of a continuous map."""
    base = np.concatenate([plt.get_cmap(m)(np.arange(20)) for m in ("tab20", "tab20b", "tab20c")])
    return base[:n] if n <= len(base) else plt.get_cmap("hsv")(np.linspace(0, 1, n, endpoint=False))


def embedding_scatter(points: np.ndarray, labels: np.ndarray, title: str = "", ax=None):
    """2-D points coloured by true label: separable classes form tight clusters."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    labels = np.asarray(labels)
    colours = class_colours(int(labels.max()) + 1 if len(labels) else 1)
    ax.scatter(points[:, 0], points[:, 1], c=colours[labels], s=12, alpha=0.85)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.figure


def loss_histograms(member: np.ndarray, nonmember: np.ndarray, title: str = "", ax=None):
    """Forget (member) vs unseen (non-member) losses: what the MIA tries to tell apart."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3))
    hi = float(max(np.max(member), np.max(nonmember), 1e-3))
    bins = np.linspace(0, hi, 25)
    ax.hist(nonmember, bins=bins, alpha=0.55, density=True, label="unseen (test)")
    ax.hist(member, bins=bins, alpha=0.55, density=True, label="forget")
    ax.set(title=title, xlabel="cross-entropy", ylabel="density")
    ax.legend(fontsize=9)
    return ax.figure


def heatmap(matrix, title: str = "", ax=None, cmap: str = "viridis"):
    """A matrix (tensor or array) as an image with a colour bar, e.g. a transport plan."""
    m = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.5))
    im = ax.imshow(m, cmap=cmap)
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    return ax.figure


def tradeoff(summary: dict[str, dict], x: str = "fs", y: str = "test_acc",
             reference: str = "retrained"):
    """Test accuracy against forgetting score (mean ± std over seeds); ideal is top-left.

    Labels are placed by adjustText so that methods with close scores stay readable."""
    from adjustText import adjust_text  # lazy: only this figure needs it

    fig, ax = plt.subplots(figsize=(6, 4.5))
    texts = []
    for name, rec in summary.items():
        mx, my = rec[f"{x}_mean"], rec[f"{y}_mean"]
        sx, sy = (np.nan_to_num(rec.get(f"{k}_std", np.nan)) for k in (x, y))
        ax.errorbar(mx, my, xerr=sx, yerr=sy, fmt="*" if name == reference
                    else "o", ms=14 if name == reference else 6, capsize=2)
        texts.append(ax.text(mx, my, name, fontsize=8))
    ax.set(xlabel="forgetting score |MIA − 0.5| (lower is better)", ylabel="test accuracy")
    ax.grid(alpha=0.3)
    adjust_text(texts, ax=ax, arrowprops=dict(arrowstyle="-", color="grey", lw=0.5))
    fig.tight_layout()
    return fig


def trace_plot(trace: list[dict], tau: float | None = None):
    """DLFD's per-batch trace: OT distance, CE, the score estimate and where synthesis ran."""
    b = [r["batch"] for r in trace]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    axes[0].plot(b, [r.get("ot_after", np.nan) for r in trace], label="OT after")
    axes[0].plot(b, [r.get("ot_before", np.nan) for r in trace], label="OT before")
    axes[0].set(title="OT(φ(x'), φ(x_f))", xlabel="batch")
    axes[0].legend(fontsize=7)
    axes[1].plot(b, [r.get("ce", np.nan) for r in trace])
    axes[1].set(title="CE of the update", xlabel="batch")
    # no estimate before the first monitoring point (and none without the dynamic switch)
    axes[2].plot(b, [np.nan if r.get("score") is None else r["score"] for r in trace],
                 label="score estimate")
    if tau is not None:
        axes[2].axhline(tau, ls="--", c="k", label="τ")
    syn = [r["batch"] for r in trace if r.get("synthesised")]
    axes[2].scatter(syn, [0] * len(syn), marker="|", c="r", label="synthesised")
    axes[2].set(title="forgetting score (val)", xlabel="batch")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return fig


def collapse_curve(sweeps: dict[str, list[tuple[float, dict]]], points: dict[str, dict],
                   measures=(("probe_acc", "linear probe accuracy (test)"),
                             ("separability", "Fisher separability (test)")),
                   x: str = "mia"):
    """Correlation collapse as a curve: each collapse measure against the forgetting reached.

    ``sweeps`` maps a method to ``[(strength, record), ...]`` (one line per method, its points
    labelled by strength); ``points`` maps a model (original, retrained, Fine-tune, DLFD) to
    one record, drawn as a marker. Forgetting moves right to left: the retrained model's MIA
    is the target. A method collapses where its line falls while its MIA is still above the
    retrained model's (notebook 02; docs/method.md §1).
    """
    fig, axes = plt.subplots(1, len(measures), figsize=(5.2 * len(measures), 4), squeeze=False)
    markers = dict(zip(points, "*sDP^v"))
    for ax, (key, label) in zip(axes[0], measures):
        for method, rows in sweeps.items():
            rows = sorted(rows, key=lambda r: r[0])
            xs, ys = [r[x] for _, r in rows], [r[key] for _, r in rows]
            (line,) = ax.plot(xs, ys, "o-", label=method, alpha=0.85)
            for (strength, _), xi, yi in zip(rows, xs, ys):
                ax.annotate(f"{strength:g}", (xi, yi), fontsize=7, color=line.get_color(),
                            xytext=(3, 3), textcoords="offset points")
        for name, rec in points.items():
            ax.plot(rec[x], rec[key], markers[name], color="k" if name == "retrained" else None,
                    ms=13 if name == "retrained" else 8, ls="none", label=name)
        ax.set(xlabel="MIA (forget vs test; 0.5 = forgotten)", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("collapse measures against forgetting; numbers are learning rates", fontsize=10)
    fig.tight_layout()
    return fig
