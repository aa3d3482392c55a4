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

import hashlib
import io
import json
import lzma
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..atomic import atomic_write
from ..labels import IMAGE_SIZE, LABELS, SPLITS, TRAIN_SPLIT

OnError = Literal["raise", "skip"]
PIXELS = IMAGE_SIZE * IMAGE_SIZE
CSV_HEADER = ("emotion", "pixels", "Usage")
#: What every ``--data`` option reads, in its help.
_CACHE_VERSION = "1"
_MAX_REPORTED = 10  # bad rows whose line numbers are kept in the report


class DataError(ValueError):
    """A data file that cannot be read as FER-2013: says which file, which line and why."""

    def __init__(self, file: str | os.PathLike, line: int | None, reason: str):
        self.file, self.line, self.reason = str(file), line, reason
        where = f"{self.file}:{line}" if line is not None else self.file
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class BadRow:
    """One row (or image file) left out because ``on_error="skip"`` was asked for."""

    file: str
    line: int | None
    reason: str


@dataclass(frozen=True)
class Split:
    """The faces of one split: ``images`` uint8 (N, 48, 48), ``labels`` int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, n: int, seed: int = 0) -> Split:
        """``n`` faces drawn without replacement (all of them if fewer), reproducibly."""
        pick = np.random.default_rng(seed).choice(len(self), size=min(n, len(self)), replace=False)
        return Split(self.images[pick], self.labels[pick])

    def counts(self) -> dict[str, int]:
        """Number of faces per label, in label order."""
        per = np.bincount(self.labels, minlength=len(LABELS))
        return {name: int(n) for name, n in zip(LABELS, per, strict=True)}


@dataclass
class FerDataset:
    """A FER-2013 file, read: its splits (in Kaggle's order) and what was skipped."""

    path: str
    format: Literal["csv", "folder", "compact"]
    splits: dict[str, Split]
    skipped: list[BadRow] = field(default_factory=list)
    n_skipped: int = 0

    def split(self, name: str) -> Split:
        """The split called ``name``; a :class:`DataError` listing the splits present if absent."""
        if name not in self.splits:
            present = ", ".join(self.splits) or "none"
            raise DataError(self.path, None, f"no split {name!r} (splits present: {present})")
        if len(self.splits[name]) == 0:
            raise DataError(self.path, None, f"split {name!r} is empty")
        return self.splits[name]

    @property
    def test_splits(self) -> list[str]:
        """Every split other than Training, in Kaggle's order."""
        return [s for s in self.splits if s != TRAIN_SPLIT]

    def skipped_message(self) -> str:
        """What ``--skip-bad`` left out, in one line: how many rows, and where the first were."""
        first = ", ".join(f"line {b.line}" if b.line else b.file for b in self.skipped)
        return f"skipped {self.n_skipped} bad rows of {self.path} (first: {first})"

    def summary(self) -> dict:
        """The ``ferkit data --json`` object (docs/CONTRACT.md)."""
        out: dict = {
            "path": self.path,
            "format": self.format,
            "splits": {k: {"n": len(s), "counts": s.counts()} for k, s in self.splits.items()},
        }
        if self.n_skipped:
            out["skipped"] = {
                "n": self.n_skipped,
                "first": [
                    {"line": b.line, "file": b.file, "reason": b.reason} for b in self.skipped
                ],
            }
        return out


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
    if not p.exists():
        raise DataError(p, None, "no such file or folder")
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


# --------------------------------------------------------------------------- CSV


def preview_faces(data: str | os.PathLike, n: int = 6, seed: int = 0) -> Split:
    """``n`` Training faces of ``data`` (the first split if it has no Training) for pictures."""
    ds = load_fer2013(data)
    return ds.split(TRAIN_SPLIT if TRAIN_SPLIT in ds.splits else next(iter(ds.splits))).sample(
        n, seed
    )


def _decompress(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip: every member (``cat a.gz b.gz`` is one valid
    gzip file), refusing a truncated stream or bytes after the last member (NUL padding aside)."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    parts, member = [], 0
    while data:
        member += 1
        d = zlib.decompressobj(47)
        try:
            # One call over each member is ~30% faster than streaming through gzip.open.
            parts.append(d.decompress(data))
        except zlib.error as e:
            raise DataError(path, None, f"corrupt gzip file, member {member} ({e})") from None
        if not d.eof:
            raise DataError(path, None, f"truncated gzip file (member {member} ends early)")
        data = d.unused_data
        if data.strip(b"\0") == b"":
            break
        if data[:2] != b"\x1f\x8b":
            raise DataError(
                path, None, f"{len(data)} bytes of trailing garbage after gzip member {member}"
            )
    return b"".join(parts)


def _is_text(head: bytes) -> bool:
    """Whether the start of a file reads as text (a multi-byte character may be cut at the end)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3
    return True


def _read_csv(path: Path, *, on_error: OnError) -> FerDataset:
    raw = _decompress(path)
    if not raw.strip():
        raise DataError(path, 1, "empty file")
    if b"\r" in raw:
        raw = raw.replace(b"\r", b"")
    if b'"' in raw:  # some exports quote the pixel field; the fields never contain commas
        raw = raw.replace(b'"', b"")
    head = raw[: raw.find(b"\n")] if b"\n" in raw[:200] else raw[:200]
    if b"\0" in raw[:512] or not _is_text(raw[:512]):
        raise DataError(
            path,
            None,
            "not a FER-2013 CSV (binary content: --data takes a fer2013.csv, plain or .gz, an "
            "image folder or a compact .npz[.xz]; for photos use ferkit predict)",
        )
    header = tuple(h.strip() for h in head.decode("utf-8", "replace").lstrip("\ufeff").split(","))
    if header != CSV_HEADER:
        raise DataError(
            path, 1, f"wrong header {','.join(header)!r} (expected {','.join(CSV_HEADER)!r})"
        )
    parsed = _parse_csv_fast(raw)
    if parsed is None:
        parsed = _parse_csv_slow(path, raw[len(head) + 1 :], on_error)
    images, labels, usages, skipped, n_skipped = parsed
    if len(labels) == 0 and n_skipped == 0:
        raise DataError(path, 2, "no data rows after the header")
    splits = {}
    for k, name in enumerate(SPLITS):
        sel = usages == k
        if sel.any():
            splits[name] = Split(np.ascontiguousarray(images[sel]), labels[sel])
    return FerDataset(str(path), "csv", splits, skipped, n_skipped)


_LABEL_CODES = {str(i).encode(): i for i in range(len(LABELS))}
_USAGE_CODES = {s.encode(): i for i, s in enumerate(SPLITS)}
_FAST_CHUNK = 512  # rows per vectorised chunk: small enough to stay in cache


def _parse_csv_fast(raw: bytes):
    """Vectorised parse of a well-formed file; None if any check fails (the slow path explains).

    Rows ``label,pixels,usage`` joined by newlines split on ``,`` into
    ``[emotion, pixels, "Usage\\nlabel_1", pixels_1, "usage_1\\nlabel_2", ..., "usage_n\\n"]``.
    """
    pieces = raw.split(b",")
    if len(pieces) < 5 or len(pieces) % 2 == 0:
        return None
    joints = [piece.split(b"\n") for piece in pieces[2:-1:2]]
    last = pieces[-1].rstrip(b"\n")
    if any(len(j) != 2 for j in joints) or b"\n" in last:
        return None
    try:
        labels = [_LABEL_CODES[j[1]] for j in joints]
        usages = [_USAGE_CODES[j[0]] for j in joints[1:]] + [_USAGE_CODES[last]]
    except KeyError:
        return None
    pixel_fields = pieces[3::2]
    if any(f.count(b" ") != PIXELS - 1 for f in pixel_fields):
        return None
    from concurrent.futures import ThreadPoolExecutor

    chunks = [pixel_fields[i : i + _FAST_CHUNK] for i in range(0, len(pixel_fields), _FAST_CHUNK)]
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        parts = list(pool.map(_parse_pixel_chunk, chunks))
    if any(p is None for p in parts):
        return None
    images = np.concatenate(parts).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
    return images, np.asarray(labels, np.int64), np.asarray(usages, np.int8), [], 0


def _parse_pixel_chunk(fields: list[bytes]) -> np.ndarray | None:
    """Decimal tokens (1-3 digits, single spaces) -> uint8, in numpy (which frees the GIL)."""
    a = np.frombuffer(b"  " + b" ".join(fields) + b" ", np.uint8)
    d = a.astype(np.int16) - 48  # digits 0..9, space -16
    if not (((d >= 0) & (d <= 9)) | (d == -16)).all():
        return None
    ends = np.flatnonzero(a[2:] == 32) + 2  # the space after each token
    gaps = np.diff(ends, prepend=1)
    if ends.size != PIXELS * len(fields) or gaps.min() < 2 or gaps.max() > 4:
        return None  # empty token (double space) or more than 3 digits
    d2, d3 = d[ends - 2], d[ends - 3]
    v = d[ends - 1] + np.where(d2 >= 0, 10 * d2 + np.where(d3 >= 0, 100 * d3, 0), 0)
    if v.max(initial=0) > 255:
        return None
    return v.astype(np.uint8)


def _parse_row(line: bytes) -> tuple[np.ndarray, int, int]:
    """One CSV row -> (pixels, label, usage code); ValueError with the reason if bad."""
    fields = line.split(b",")
    if len(fields) != 3:
        raise ValueError(f"expected 3 fields (emotion,pixels,Usage), found {len(fields)}")
    label_s, pixel_s, usage_s = (f.strip() for f in fields)
    if label_s not in _LABEL_CODES:
        raise ValueError(f"label {label_s.decode(errors='replace')!r} is not an integer in 0-6")
    if usage_s not in _USAGE_CODES:
        raise ValueError(
            f"unknown Usage {usage_s.decode(errors='replace')!r} (expected {', '.join(SPLITS)})"
        )
    tokens = pixel_s.split()
    if len(tokens) != PIXELS:
        raise ValueError(f"{len(tokens)} pixel values (expected {PIXELS} = 48x48)")
    for k, tok in enumerate(tokens):
        if not tok.isdigit():
            raise ValueError(f"pixel {k + 1} is {tok.decode(errors='replace')!r}, not an integer")
        if int(tok) > 255:
            raise ValueError(f"pixel {k + 1} is {int(tok)}, outside 0-255")
    pixels = np.array([int(t) for t in tokens], dtype=np.uint8)
    return pixels, _LABEL_CODES[label_s], _USAGE_CODES[usage_s]


class _BadRows:
    """Raise on the first bad row, or (``skip``) count them and keep the first few."""

    def __init__(self, on_error: OnError):
        self.on_error, self.first, self.n = on_error, [], 0

    def add(self, file: str | os.PathLike, line: int | None, reason: str) -> None:
        if self.on_error == "raise":
            raise DataError(file, line, f"{reason} (--skip-bad leaves bad rows out)")
        self.n += 1
        if len(self.first) < _MAX_REPORTED:
            self.first.append(BadRow(str(file), line, reason))


def _parse_csv_slow(path: Path, body: bytes, on_error: OnError):
    images, labels, usages = [], [], []
    bad = _BadRows(on_error)
    for lineno, line in enumerate(body.split(b"\n"), start=2):
        if not line.strip():
            continue
        try:
            pixels, label, usage = _parse_row(line)
        except ValueError as e:
            bad.add(path, lineno, str(e))
            continue
        images.append(pixels)
        labels.append(label)
        usages.append(usage)
    arr = np.stack(images).reshape(-1, IMAGE_SIZE, IMAGE_SIZE) if images else _no_images()
    return arr, np.asarray(labels, np.int64), np.asarray(usages, np.int8), bad.first, bad.n


def _no_images() -> np.ndarray:
    return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)


# --------------------------------------------------------------------------- image folders

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
    bad = _BadRows(on_error)
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


# --------------------------------------------------------------------------- cache


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


# --------------------------------------------------------------------------- compact


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


def _read_compact(path: Path) -> FerDataset:
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


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, per-class split of indices into (train, val); val gets ``fraction`` of each class."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(len(LABELS)):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        k = int(round(fraction * len(idx)))
        val.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
