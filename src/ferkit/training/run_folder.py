"""The run folder ``ferkit train --out RUN`` writes, in one place: its file names, the
``checkpoint.pt`` schema (everything ``--resume`` needs), ``metrics.jsonl`` (one
:class:`EpochMetrics` a line) and the settings stored for ``--resume``. ``train`` writes it,
``reproduce`` and ``cli`` read it; the model file itself is ``checkpoint``'s.

Loading never runs code from a file: ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..fermodel.files import MODEL_FILE  # the best weights so far, self-describing
from ..userfiles import path_problem
from .config import TrainConfig

CHECKPOINT_FILE = "checkpoint.pt"  # the last finished epoch, for --resume
METRICS_FILE = "metrics.jsonl"  # one EpochMetrics per finished epoch
CURVES_FILE = "curves.png"  # Fig. 2 of the run
#: What makes a folder a run: ``train`` never writes over these without ``overwrite``.
RUN_FILES = (MODEL_FILE, CHECKPOINT_FILE, METRICS_FILE)
#: What every checkpoint ``ferkit train`` writes holds.
CHECKPOINT_KEYS = ("model", "optimizer", "epoch", "best_val_acc", "best_epoch", "config", "rng")


class CheckpointError(ValueError):
    """A ``checkpoint.pt`` that cannot be resumed from (corrupt, truncated, foreign, crafted)."""


@dataclass
class EpochMetrics:
    """One line of ``metrics.jsonl``."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None  # None: a run without validation faces (--val-fraction 0)
    val_acc: float | None
    lr: float
    images_per_s: float
    seconds: float


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a training checkpoint atomically (tensors and plain data only); the one before it
    stays whole when this fails, and the failure is an OSError (torch reports a full disk as
    a RuntimeError)."""
    try:
        with atomic_write(path) as fh:
            torch.save(state, fh)
    except RuntimeError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        raise OSError(f"{path}: could not be written ({first})") from None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint without executing anything from it; CheckpointError naming
    the file for anything else (never advice to unpickle it)."""
    import pickle

    if (problem := path_problem(path)) is not None:  # before torch opens it: a FIFO blocks
        word = "no such checkpoint" if problem == "no such file or folder" else problem
        raise CheckpointError(f"{path}: {word}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: it holds objects other than tensors and plain data, which ferkit "
            "never unpickles (not a checkpoint ferkit wrote)"
        ) from None
    except Exception as e:  # truncated zip, random bytes, ...: torch raises many kinds
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({first})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a ferkit checkpoint (a {type(state).__name__})")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a ferkit checkpoint (no {', '.join(missing)})")
    return state


class RunLocked(ValueError):
    """Another ``ferkit train`` works in the run folder."""


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold ``folder``'s lock for a run (one process: rank 0 under torchrun); a second
    ``train`` in the same folder is refused at once. The lock is on the folder itself (no lock
    file to leave behind) and the kernel drops it when the process ends, however it ends."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunLocked(
                f"{folder}: another ferkit train is working in this run folder: wait for it to "
                "end, or choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)


class _InRun:
    """One of a run's files as an attribute: ``RunFolder(p).model`` is ``p / MODEL_FILE``."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, run: RunFolder, owner: type | None = None) -> Path:
        return run.path / self.name


@dataclass(frozen=True)
class RunFolder:
    """A run folder and what it holds."""

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    model = _InRun(MODEL_FILE)
    checkpoint = _InRun(CHECKPOINT_FILE)
    metrics = _InRun(METRICS_FILE)
    curves = _InRun(CURVES_FILE)

    def run_files(self) -> list[str]:
        """The files that make this folder a run, those present."""
        return [f for f in RUN_FILES if (self.path / f).exists()]

    def check_writable(self) -> None:
        """Create the folder if needed; a ValueError naming it when it cannot be written."""
        probe = self.path / ".write-test"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with atomic_write(probe) as fh:
                fh.write(b"")
            probe.unlink()
        except OSError as e:
            raise ValueError(
                f"cannot write to the run folder {self.path}: {e.strerror or e}"
            ) from None

    def read_metrics(self, upto: int | None = None) -> list[EpochMetrics]:
        """The finished epochs (up to ``upto``), none if the run has not started."""
        if not self.metrics.exists():
            return []
        lines = self.metrics.read_text().splitlines()
        rows = [EpochMetrics(**json.loads(line)) for line in lines if line.strip()]
        return [m for m in rows if upto is None or m.epoch <= upto]

    def write_metrics(self, history: list[EpochMetrics]) -> None:
        with atomic_write(self.metrics, "w") as fh:
            for m in history:
                fh.write(json.dumps(dataclasses.asdict(m)) + "\n")

    def curve(self) -> list[list[float]]:
        """[epoch, validation accuracy %, wall hours so far, training accuracy %] per epoch
        (training accuracy as measured during the epoch: dropout on, batches augmented when
        the run augments)."""
        rows, hours = [], 0.0
        for m in self.read_metrics():
            hours += m.seconds / 3600
            rows.append(
                [m.epoch, round(100 * m.val_acc, 2), round(hours, 3), round(100 * m.train_acc, 2)]
            )
        return rows

    def wall_seconds(self) -> float | None:
        """Training time of the finished epochs, as measured; None before the first."""
        epochs = self.read_metrics()
        return sum(m.seconds for m in epochs) if epochs else None

    def config(self) -> TrainConfig:
        """The settings stored in the run's checkpoint; CheckpointError for bad ones."""
        from ..data.fer2013 import DataError

        if (problem := path_problem(self.path, folder_ok=True)) is not None:
            raise DataError(self.path, None, f"not a run folder ({problem})")
        if not self.path.is_dir():
            raise DataError(self.path, None, "is a file, not a run folder")
        p = self.checkpoint
        if not os.path.lexists(p):
            raise DataError(
                self.path,
                None,
                f"a folder without {CHECKPOINT_FILE}: not a ferkit run, or one that never "
                "finished an epoch (nothing to resume)",
            )
        raw = load_checkpoint(p)["config"]
        try:
            stored = json.loads(raw)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{p}: bad stored settings (not JSON: {e})") from None
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        if not isinstance(stored, dict) or (unknown := sorted(set(stored) - known)):
            what = (
                "not an object" if not isinstance(stored, dict) else f"unknown {', '.join(unknown)}"
            )
            raise CheckpointError(f"{p}: bad stored settings ({what})")
        if missing := [k for k in ("data", "out") if k not in stored]:
            raise CheckpointError(f"{p}: bad stored settings (no {', '.join(missing)})")
        try:
            cfg = TrainConfig(**stored)
            cfg.validate()
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{p}: bad stored settings ({e})") from None
        return cfg


def load_run_config(run: str | os.PathLike) -> TrainConfig:
    """The settings stored in a run's ``checkpoint.pt`` (what ``--resume RUN`` continues)."""
    return RunFolder(run).config()
