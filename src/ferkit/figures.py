"""Figures that people would rather look at than read: the augmentation grid (Fig. 1)."""

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
