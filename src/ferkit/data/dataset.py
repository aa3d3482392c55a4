"""FER-2013 in memory: a data set of splits (uint8 faces, int64 labels in Kaggle's order), the
error every reader raises for bad input, and the seeded stratified split."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..labels import IMAGE_SIZE, LABELS, TRAIN_SPLIT

OnError = Literal["raise", "skip"]


PIXELS = IMAGE_SIZE * IMAGE_SIZE


CSV_HEADER = ("emotion", "pixels", "Usage")


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
        pick = self.sample_indices(n, seed)
        return Split(self.images[pick], self.labels[pick])

    def sample_indices(self, n: int, seed: int = 0) -> np.ndarray:
        """Which faces :meth:`sample` draws, in its order."""
        return np.random.default_rng(seed).choice(len(self), size=min(n, len(self)), replace=False)

    def fingerprint(self) -> str:
        """SHA-256 of the faces and labels: the same for the same faces in any file format or
        place (a run resumed on moved or recompressed data), different for any other face."""
        import hashlib

        h = hashlib.sha256()
        for a in (self.images, self.labels.astype("<i8")):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

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


def _no_images() -> np.ndarray:
    return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)


class BadRows:
    """Raise on the first bad row, or (``skip``) count them and keep the first few."""

    def __init__(self, on_error: OnError):
        self.on_error, self.first, self.n = on_error, [], 0

    def add(self, file: str | os.PathLike, line: int | None, reason: str) -> None:
        if self.on_error == "raise":
            raise DataError(file, line, f"{reason} (--skip-bad leaves bad rows out)")
        self.n += 1
        if len(self.first) < _MAX_REPORTED:
            self.first.append(BadRow(str(file), line, reason))
