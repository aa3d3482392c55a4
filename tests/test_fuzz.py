"""Seeded fuzzing: mutated image bytes and FER-2013 files give a result or ferkit's own clean
error (ImageError, DataError), never another exception."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from PIL import Image
from synth import csv_rows, synth_faces

from ferkit.data.fer2013 import DataError, load_fer2013
from ferkit.images import ImageError, load_image

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
#: Formats whose checksums reject every mutant (PNG's chunk CRCs; gzip's CRC for .csv.gz)
CHECKSUMMED = {"PNG", "csv.gz"}


def _mutants(seed_bytes: bytes, n: int, rng: np.random.Generator) -> list[bytes]:
    """``n`` variants: flipped bytes, truncations, insertions, cut-and-repeat, random header."""
    out = []
    for _ in range(n):
        b = bytearray(seed_bytes)
        kind = rng.integers(6)
        if kind == 0:  # a few random bytes changed (most likely in a header or a length)
            for i in rng.integers(0, len(b), int(rng.integers(1, 8))):
                b[i] = int(rng.integers(256))
        elif kind == 1:  # truncated
            b = b[: int(rng.integers(0, len(b)))]
        elif kind == 2:  # random bytes inserted
            i = int(rng.integers(0, len(b)))
            b[i:i] = rng.integers(0, 256, int(rng.integers(1, 64))).astype(np.uint8).tobytes()
        elif kind == 3:  # a piece repeated
            i, j = sorted(rng.integers(0, len(b), 2))
            b[j:j] = b[i:j]
        elif kind == 4:  # the first 32 bytes random
            b[:32] = rng.integers(0, 256, 32).astype(np.uint8).tobytes()
        else:  # a large size field: bytes 16-24 set to 0xff
            b[16:24] = b"\xff" * 8
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_images_decode_or_fail_cleanly(fmt):
    rng = np.random.default_rng(FORMATS.index(fmt))
    img = Image.fromarray(rng.integers(0, 256, (40, 56, 3)).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    decoded = 0
    for data in _mutants(buf.getvalue(), 400, rng):
        try:
            out = load_image(data, max_pixels=1_000_000)
        except ImageError:
            continue
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        decoded += 1
    if fmt not in CHECKSUMMED:  # some mutants still decode: the fuzzing reaches the decoder
        assert decoded > 0


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_mutated_fer2013_files_load_or_fail_cleanly(tmp_path, gz):
    rng = np.random.default_rng(7 + gz)
    imgs, labels = synth_faces(6)
    text = "\n".join(["emotion,pixels,Usage", *csv_rows(imgs, labels, "Training")]) + "\n"
    raw = gzip.compress(text.encode()) if gz else text.encode()
    path = tmp_path / ("f.csv.gz" if gz else "f.csv")
    loaded = 0
    for i, data in enumerate(_mutants(raw, 300, rng)):
        path.write_bytes(data)
        for skip in (False, True):
            try:
                ds = load_fer2013(path, on_error="skip" if skip else "raise", cache=False)
            except DataError:
                continue
            for split in ds.splits.values():
                assert split.images.dtype == np.uint8 and split.images.shape[1:] == (48, 48), i
                assert len(split.images) == len(split.labels)
                assert split.labels.min(initial=0) >= 0 and split.labels.max(initial=0) < 7, i
            loaded += 1
    if not gz:
        assert loaded > 0
