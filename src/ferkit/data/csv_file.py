"""Kaggle's ``fer2013.csv`` (plain or gzip): a vectorised fast path for well-formed files, and a
line-by-line reader that finds the exact bad line as soon as any global check fails."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

from ..labels import IMAGE_SIZE, LABELS, SPLITS
from ..userfiles import HEAD_BYTES, looks_binary, read_head
from .dataset import (
    CSV_HEADER,
    PIXELS,
    BadRows,
    DataError,
    FerDataset,
    OnError,
    Split,
    _no_images,
)

_NOT_CSV = (
    "not a FER-2013 CSV (binary content: --data takes a fer2013.csv, plain or .gz, an image "
    "folder or a compact .npz[.xz]; for photos use ferkit predict)"
)


def _sniff(path: Path) -> None:
    """Refuse a binary file from its first few KB (gunzipped when it is gzip), before the whole
    is read: a 2 GB sparse file of zeros costs 4 KB, not 2 GB."""
    head = read_head(path)
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(47).decompress(head, HEAD_BYTES)
        except zlib.error:
            return  # a corrupt stream: _decompress says where
    if looks_binary(head[:512]):
        raise DataError(path, None, _NOT_CSV)


def _decompress(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip: every member (``cat a.gz b.gz`` is one valid
    gzip file), refusing a truncated stream or bytes after the last member (NUL padding aside)."""
    _sniff(path)
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


def _read_csv(path: Path, *, on_error: OnError) -> FerDataset:
    raw = _decompress(path)
    if not raw.strip():
        raise DataError(path, 1, "empty file")
    if b"\r" in raw:
        raw = raw.replace(b"\r", b"")
    if b'"' in raw:  # some exports quote the pixel field; the fields never contain commas
        raw = raw.replace(b'"', b"")
    head = raw[: raw.find(b"\n")] if b"\n" in raw[:200] else raw[:200]
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


def _parse_csv_slow(path: Path, body: bytes, on_error: OnError):
    images, labels, usages = [], [], []
    bad = BadRows(on_error)
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
