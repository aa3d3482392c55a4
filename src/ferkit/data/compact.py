"""ferkit's compact ``.npz`` (optionally ``.npz.xz``: all of FER-2013 in ~60 MB), made by
``ferkit data --save``, and the cache of parsed files (keyed by path, size and mtime)."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..labels import IMAGE_SIZE, LABELS
from ..userfiles import read_head
from .dataset import BadRow, DataError, FerDataset, Split

#: What every ``--data`` option reads, in its help.
_CACHE_VERSION = "1"


def cache_dir() -> Path:
    """Where parsed data sets are cached: ``$FERKIT_CACHE``, else the XDG user cache."""
    if env := os.environ.get("FERKIT_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ferkit"


def _cache_key(path: Path, **options) -> str | None:
    try:
        p = path.resolve()
        if p.is_dir():
            files = [(f, f.stat()) for f in sorted(p.rglob("*")) if f.is_file()]
            stats = [(str(f.relative_to(p)), st.st_size, st.st_mtime_ns) for f, st in files]
        else:
            st = p.stat()
            stats = [(st.st_size, st.st_mtime_ns)]
    except OSError:
        return None
    ident = json.dumps([_CACHE_VERSION, str(p), stats, options], sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _cache_read(key: str, path: Path) -> FerDataset | None:
    try:
        return _npz_read(cache_dir() / "data" / f"{key}.npz", path)
    except (OSError, KeyError, ValueError):
        return None


def _cache_write(key: str, ds: FerDataset) -> None:
    """Write the cache atomically; an unwritable cache folder only costs speed."""
    try:
        with atomic_write(cache_dir() / "data" / f"{key}.npz") as fh:
            _npz_write(fh, ds)
    except OSError:
        pass


def _npz_write(fh, ds: FerDataset, compress: bool = False) -> None:
    """The splits as ``<split>/images`` and ``<split>/labels`` arrays plus a JSON ``meta``."""
    meta = {
        "format": ds.format,
        "splits": list(ds.splits),
        "skipped": [b.__dict__ for b in ds.skipped],
        "n_skipped": ds.n_skipped,
    }
    arrays = {"meta": np.array(json.dumps(meta))}
    for name, s in ds.splits.items():
        arrays[f"{name}/images"], arrays[f"{name}/labels"] = s.images, s.labels
    (np.savez_compressed if compress else np.savez)(fh, **arrays)


def _npz_read(source, path: Path) -> FerDataset:
    """Arrays only (``allow_pickle=False``): a data file can never run code."""
    with np.load(source, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        splits = {s: Split(z[f"{s}/images"], z[f"{s}/labels"]) for s in meta["splits"]}
    skipped = [BadRow(**b) for b in meta["skipped"]]
    return FerDataset(str(path), meta["format"], splits, skipped, meta["n_skipped"])


def save_compact(ds: FerDataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` as ``.npz`` (zip-deflated) or ``.npz.xz`` (xz over a plain npz: about
    60 MB for all of FER-2013, against 87 MB for Kaggle's CSV gzipped), atomically."""
    p = Path(path)
    if not p.name.endswith((".npz", ".npz.xz")):
        raise ValueError(f"{p}: a compact data file ends in .npz or .npz.xz")
    with atomic_write(p) as fh:
        if p.name.endswith(".xz"):
            buf = io.BytesIO()
            _npz_write(buf, ds)
            fh.write(lzma.compress(buf.getvalue(), preset=6))
        else:
            _npz_write(fh, ds, compress=True)
    return p


#: What a compact file starts with: xz's magic, or a zip's (an ``.npz``).
_MAGIC = {".xz": b"\xfd7zXZ\x00", ".npz": b"PK\x03\x04"}


def _read_compact(path: Path) -> FerDataset:
    kind = ".xz" if path.name.endswith(".xz") else ".npz"
    if read_head(path, len(_MAGIC[kind])) != _MAGIC[kind]:  # before reading it all into memory
        raise DataError(path, None, f"not a ferkit compact data file (no {kind} signature)")
    try:
        if path.name.endswith(".xz"):
            source = io.BytesIO(lzma.decompress(path.read_bytes()))
        else:
            source = path
        ds = _npz_read(source, path)
    except (lzma.LZMAError, OSError, KeyError, ValueError, TypeError) as e:
        raise DataError(path, None, f"not a ferkit compact data file ({e})") from None
    ds.format = "compact"
    for name, s in ds.splits.items():
        if s.images.dtype != np.uint8 or s.images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise DataError(path, None, f"split {name!r}: images are not uint8 48x48")
        if len(s.labels) != len(s.images) or (len(s.labels) and s.labels.max() >= len(LABELS)):
            raise DataError(path, None, f"split {name!r}: labels do not match the images")
    return ds
