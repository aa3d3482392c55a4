"""Atomic file writes: a temporary file in the same folder, then one rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    Readers see either the old file or the complete new one, never a half-written file,
    even if the process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            _check_complete(fh.fileno(), fh.tell(), path)
            os.fsync(fh.fileno())
        _publish(Path(tmp), path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) for a writer that opens files by name
    (OpenCV's ``VideoWriter``); on success the file written there replaces ``path`` in one
    rename, after an fsync. A writer that wrote nothing is an error, not an empty file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp"
    )
    os.close(fd)
    # the writer's own name: same suffix (its container format), hidden, unique
    work = Path(tmp[: -len(".tmp")])
    try:
        yield work
        if not work.is_file() or work.stat().st_size == 0:
            raise OSError(f"{path}: nothing was written")
        with open(work, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish(work, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(work)
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _check_complete(fd: int, expected: int, path: Path) -> None:
    """A writer that hands the descriptor to C code (PIL's encoders) may ignore a short write
    on a full disk: compare the file's size with what was written."""
    size = os.fstat(fd).st_size
    if size != expected:
        raise OSError(f"{path}: incomplete write ({size} of {expected} bytes: is the disk full?)")


def _publish(tmp: Path, path: Path) -> None:
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    os.replace(tmp, path)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_write` left in ``folder`` (their
    targets are intact); returns what was removed. Call it only where no other process is
    writing into ``folder``."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file() and tmp.name.count(".") >= 3:  # .NAME.RANDOM.tmp
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
