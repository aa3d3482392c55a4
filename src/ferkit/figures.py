"""Figures that people would rather look at than read: the augmentation grid (Fig. 1), the
validation curves of many runs side by side."""

from __future__ import annotations

import os

import numpy as np
import torch

from .atomic import atomic_write


def augment_preview(
    data: str | os.PathLike, out: str | os.PathLike, n_faces: int = 6, n_aug: int = 7, seed: int = 0
) -> None:
    """Original faces (first column) beside ``n_aug`` augmented versions each, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .augment import augment
    from .data import load_fer2013
    from .labels import LABELS, TRAIN_SPLIT
    from .preprocess import standardize_images

    ds = load_fer2013(data)
    split = ds.split(TRAIN_SPLIT if TRAIN_SPLIT in ds.splits else next(iter(ds.splits)))
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(split), size=min(n_faces, len(split)), replace=False)
    # Shown after step 1 only (per-image standardisation): the geometry is what matters here, and
    # per-pixel normalisation would make the faces hard to read.
    x = standardize_images(split.images[pick]).unsqueeze(1)
    gen = torch.Generator().manual_seed(seed)
    views = [augment(x, gen) for _ in range(n_aug)]
    fig, axes = plt.subplots(
        len(pick), n_aug + 1, figsize=(1.3 * (n_aug + 1), 1.4 * len(pick)), squeeze=False
    )
    for r, i in enumerate(pick):
        axes[r, 0].imshow(split.images[i], cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_title(LABELS[split.labels[i]], fontsize=8)
        for c, v in enumerate(views, start=1):
            axes[r, c].imshow(v[r, 0].numpy(), cmap="gray", vmin=-8, vmax=8)
        for ax in axes[r]:
            ax.set_axis_off()
    axes[0, 1].set_title("augmented (mirror, rotate, rescale, crop)", fontsize=8, loc="left")
    fig.tight_layout()
    with atomic_write(out) as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)


def validation_curves(summaries: list[dict], out: str | os.PathLike) -> None:
    """Each run's validation accuracy against epochs and against training hours, one line per
    run (``ferkit reproduce`` summaries; recipes dashed), as a PNG: budgets side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [s for s in summaries if s.get("curve")]
    fig, (by_epoch, by_hour) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    colours = plt.get_cmap("tab20").colors
    for i, s in enumerate(runs):
        curve = np.asarray([row[:3] for row in s["curve"]], dtype=float)  # epoch, val %, hours
        style = {
            "color": colours[i % len(colours)],
            "linestyle": "--" if s.get("table") == "recipe" else "-",
            "linewidth": 1.2,
        }
        by_epoch.plot(curve[:, 0], curve[:, 1], label=s["experiment"], **style)
        by_hour.plot(curve[:, 2], curve[:, 1], **style)
    by_epoch.set(xlabel="epoch", ylabel="validation accuracy (%)")
    by_hour.set(xlabel="training hours (wall clock, as measured)")
    for ax in (by_epoch, by_hour):
        ax.grid(alpha=0.3)
    if runs:
        fig.legend(loc="center right", fontsize=8, frameon=False)
    fig.suptitle("Validation accuracy of every run (recipes dashed)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    with atomic_write(out) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


def reliability_diagrams(results: list, path: str | os.PathLike) -> None:
    """For each evaluated (split, method): accuracy against confidence per bin, the plain
    softmax beside the probabilities at the model's temperature (a calibrated model lies on
    the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.calibration]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.6 * len(shown), 4.4), squeeze=False)
    for ax, r in zip(axes[0], shown, strict=True):
        cal = r.calibration
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="calibrated")
        for key, name, colour in (
            ("reliability_softmax", f"softmax, ECE {100 * cal['ece_softmax']:.1f} %", "tab:red"),
            ("reliability", f"T = {cal['temperature']}, ECE {100 * cal['ece']:.1f} %", "tab:blue"),
        ):
            rel = cal[key]
            pts = [
                (c, a)
                for c, a, n in zip(
                    rel["bin_confidence"], rel["bin_accuracy"], rel["bin_count"], strict=True
                )
                if n
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", color=colour, label=name)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top class's probability)",
            ylabel="accuracy",
            title=f"{r.split}, {r.method}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_write(path) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
