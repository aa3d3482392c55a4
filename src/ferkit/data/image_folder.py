"""The image-folder layout: ``train/<label>/*.png`` and ``test/<label>/*.png``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..labels import IMAGE_SIZE, LABELS, SPLITS
from .dataset import BadRows, DataError, FerDataset, OnError, Split

_FOLDER_SPLITS = {"train": "Training", "test": "PublicTest"}


def _folder_files(root: Path) -> Iterator[tuple[Path, str, int]]:
    """Yield (file, split, label) for ``root/<train|test>/<label>/<file>``."""
    for top in sorted(root.iterdir()):
        if not top.is_dir() or top.name.startswith("."):
            continue
        top_split = _FOLDER_SPLITS.get(top.name.lower())
        if top_split is None:
            raise DataError(top, None, "unexpected folder (expected train/ and test/)")
        for label_dir in sorted(top.iterdir()):
            if label_dir.name.startswith("."):
                continue
            if not label_dir.is_dir() or label_dir.name.lower() not in LABELS:
                raise DataError(
                    label_dir, None, f"not a label folder (expected one of {', '.join(LABELS)})"
                )
            label = LABELS.index(label_dir.name.lower())
            for f in sorted(label_dir.iterdir()):
                if f.name.startswith(".") or not f.is_file():
                    continue
                split = next((s for s in SPLITS if f.name.startswith(s + "_")), top_split)
                yield f, split, label


def _read_image(path: Path, resize: bool) -> np.ndarray:
    from PIL import Image

    from ..images import ImageError, open_image

    try:
        with open_image(path, path.name) as im:
            im = im.convert("L")
    except ImageError as e:  # the bad row names the file already
        raise ValueError(str(e).removeprefix(f"{path.name}: ")) from None
    if im.size != (IMAGE_SIZE, IMAGE_SIZE):
        if not resize:
            w, h = im.size
            raise ValueError(f"image is {w}x{h}, not 48x48 (pass resize=True / --resize)")
        im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _read_folder(root: Path, *, on_error: OnError, resize: bool) -> FerDataset:
    per_split: dict[str, tuple[list, list]] = {}
    bad = BadRows(on_error)
    for f, split, label in _folder_files(root):
        try:
            img = _read_image(f, resize)
        except ValueError as e:
            bad.add(f, None, str(e))
            continue
        imgs, labs = per_split.setdefault(split, ([], []))
        imgs.append(img)
        labs.append(label)
    if not per_split and bad.n == 0:
        raise DataError(root, None, "no images found (expected train/<label>/* and test/<label>/*)")
    splits = {
        s: Split(np.stack(per_split[s][0]), np.asarray(per_split[s][1], np.int64))
        for s in SPLITS
        if s in per_split
    }
    return FerDataset(str(root), "folder", splits, bad.first, bad.n)
