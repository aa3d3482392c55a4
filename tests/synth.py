"""Tiny synthetic FER-2013 files for tests: learnable classes (a bright blob whose position
encodes the label), written in Kaggle's CSV layout or the image-folder layout."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ferkit.labels import LABELS


def synth_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 48x48 uint8 images and labels; class c has a blob at a class-specific place."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(LABELS)
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:48, 0:48]
    imgs = rng.integers(40, 90, size=(n, 48, 48)).astype(np.float64)
    for i, c in enumerate(labels):
        cy, cx = 12 + 24 * (c // 4), 8 + 10 * (c % 4)
        imgs[i] += 140 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
    return np.clip(imgs, 0, 255).astype(np.uint8), labels.astype(np.int64)


def csv_rows(images: np.ndarray, labels: np.ndarray, usage: str) -> list[str]:
    return [
        f"{c},{' '.join(map(str, img.ravel()))},{usage}"
        for img, c in zip(images, labels, strict=True)
    ]


def write_csv(path: Path, splits: dict[str, int], seed: int = 0, gz: bool = False) -> Path:
    """A Kaggle-layout CSV with ``splits`` = {usage: rows}."""
    lines = ["emotion,pixels,Usage"]
    for k, (usage, n) in enumerate(splits.items()):
        imgs, labs = synth_faces(n, seed + k)
        lines += csv_rows(imgs, labs, usage)
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def tiny_config(data: Path | str, out: Path | str, **changes):
    """A BKStart training run on these files, small and quick; ``changes`` override."""
    from ferkit.training.config import TrainConfig

    base = dict(arch="bkstart", batch_size=64, lr=0.002, quiet=True, threads=1)
    return TrainConfig(data=str(data), out=str(out), **{**base, **changes})


def write_folder(root: Path, n_train: int = 14, n_test: int = 7, seed: int = 0) -> Path:
    """The image-folder layout: root/train/<label>/Training_N.png, root/test/<label>/PublicTest_N.png."""
    from PIL import Image

    for top, prefix, n, s in (
        ("train", "Training", n_train, seed),
        ("test", "PublicTest", n_test, seed + 1),
    ):
        imgs, labs = synth_faces(n, s)
        for i, (img, c) in enumerate(zip(imgs, labs, strict=True)):
            d = root / top / LABELS[c]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(d / f"{prefix}_{i}.png")
    return root
