"""Reading FER-2013: Kaggle's ``fer2013.csv`` (plain or gzip), the image-folder layout, and
ferkit's compact ``.npz`` (optionally ``.npz.xz``: all of FER-2013 in ~60 MB) made by
``ferkit data --save``.

Both give, per split, a ``uint8`` array ``(N, 48, 48)`` and an ``int64`` label array in
Kaggle's label order. Bad input never yields a silently smaller data set: by default the
first bad row raises :class:`DataError` naming the file, the line and the reason; with
``on_error="skip"`` bad rows are left out and listed in :attr:`FerDataset.skipped`.

The CSV reader has a vectorised fast path for well-formed files and falls back to a
line-by-line reader (which finds the exact bad line) as soon as any global check fails.
Parsed files are cached in the user cache folder, keyed by path, size and mtime.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..labels import TRAIN_SPLIT
from ..userfiles import path_problem
from .compact import _cache_key, _cache_read, _cache_write, _read_compact, cache_dir, save_compact
from .csv_file import _read_csv
from .dataset import (
    CSV_HEADER,
    PIXELS,
    BadRow,
    DataError,
    FerDataset,
    OnError,
    Split,
    stratified_split,
)
from .image_folder import _read_folder

__all__ = [
    "CSV_HEADER",
    "PIXELS",
    "BadRow",
    "DataError",
    "FerDataset",
    "OnError",
    "Split",
    "cache_dir",
    "load_fer2013",
    "preview_faces",
    "save_compact",
    "stratified_split",
]


def load_fer2013(
    path: str | os.PathLike,
    *,
    on_error: OnError = "raise",
    resize: bool = False,
    cache: bool = True,
) -> FerDataset:
    """Read FER-2013 from a Kaggle CSV (``.csv`` or ``.csv.gz``), an image folder or a
    compact ``.npz`` / ``.npz.xz`` written by :func:`save_compact`.

    ``resize=True`` lets the folder reader resize images that are not 48x48 (otherwise an
    error). ``cache=False`` neither reads nor writes the parsed-data cache.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    p = Path(path)
    if (problem := path_problem(p, folder_ok=True)) is not None:  # before any open: a FIFO blocks
        raise DataError(p, None, problem)
    key = _cache_key(p, on_error=on_error, resize=resize) if cache else None
    if key is not None and (hit := _cache_read(key, p)) is not None:
        return hit
    if p.is_dir():
        ds = _read_folder(p, on_error=on_error, resize=resize)
    elif p.name.endswith((".npz", ".npz.xz")):
        ds = _read_compact(p)
    else:
        ds = _read_csv(p, on_error=on_error)
    if key is not None:
        _cache_write(key, ds)
    return ds


def preview_faces(data: str | os.PathLike, n: int = 6, seed: int = 0) -> Split:
    """``n`` Training faces of ``data`` (the first split if it has no Training) for pictures."""
    ds = load_fer2013(data)
    return ds.split(TRAIN_SPLIT if TRAIN_SPLIT in ds.splits else next(iter(ds.splits))).sample(
        n, seed
    )
