"""Teacher files for knowledge distillation: one or more models' probabilities for every
Training face, stored once (28,709 x 7 numbers), so that a student trains towards them
(``train --distill``) without the teachers' weights at hand.

A file is an ``.npz`` (read with ``allow_pickle=False``: nothing in it can run) holding
``probabilities`` (N, 7) float32 in the Training split's order, the split's ``fingerprint``
(its faces and labels' SHA-256: a file made from other faces is refused), the views that
scored them and the teachers' names.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass

import numpy as np

from ..atomic import atomic_write
from ..data.dataset import DataError, FerDataset, Split
from ..labels import TRAIN_SPLIT

TEACHER_FORMAT = "ferkit-teacher/1"


@dataclass
class TeacherSummary:
    """What ``ferkit teach`` reports: faces scored, the teachers' accuracy on them, the views."""

    faces: int
    accuracy: float
    method: str
    teachers: str


def write_teacher_file(
    model,
    data: FerDataset,
    out: str | os.PathLike,
    method: str = "eval1",
    progress: bool = True,
    precision: str = "auto",
) -> TeacherSummary:
    """Score every Training face of ``data`` with ``model`` (a model or an ensemble) and write
    its calibrated probabilities to ``out`` (whole or not at all)."""
    import torch

    from ..device import autocast_dtype

    split = data.split(TRAIN_SPLIT)
    dtype = autocast_dtype(model.norm_mean.device, precision)
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=len(split), desc=f"teacher {method}", unit="img", file=sys.stderr)
    with torch.no_grad():
        scores = model.score(split.images, method, 128, dtype, bar and bar.update)
        probs = model.probabilities(scores).cpu().numpy().astype(np.float32)
    if bar:
        bar.close()
    buf = io.BytesIO()
    np.savez(
        buf,
        probabilities=probs,
        fingerprint=np.array(split.fingerprint()),
        format=np.array(TEACHER_FORMAT),
        method=np.array(method),
        teachers=np.array(model.meta.arch),
        labels=np.array(json.dumps(list(model.labels))),
    )
    with atomic_write(out) as fh:
        fh.write(buf.getbuffer())
    accuracy = float((probs.argmax(1) == split.labels).mean()) if len(split) else 0.0
    return TeacherSummary(len(split), accuracy, method, model.meta.arch)


def read_teacher_file(path: str | os.PathLike, split: Split) -> np.ndarray:
    """The (N, 7) teacher probabilities a file holds for ``split`` (the Training faces a run
    reads); a file of other faces, another format or broken numbers is a DataError."""
    from ..userfiles import path_problem

    if (problem := path_problem(path)) is not None:
        raise DataError(path, None, problem)
    try:
        with np.load(path, allow_pickle=False) as z:
            fmt, fingerprint = str(z["format"]), str(z["fingerprint"])
            probs = z["probabilities"]
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise DataError(path, None, f"not a teacher file (ferkit teach): {e}") from None
    if fmt != TEACHER_FORMAT:
        raise DataError(path, None, f"teacher file format {fmt!r}, expected {TEACHER_FORMAT}")
    if fingerprint != split.fingerprint():
        raise DataError(
            path,
            None,
            "made from other Training faces than this run's: run ferkit teach on its --data",
        )
    if probs.shape != (len(split), 7) or not np.isfinite(probs).all():
        raise DataError(path, None, f"probabilities of shape {probs.shape}, not ({len(split)}, 7)")
    if np.abs(probs.sum(1) - 1).max() > 1e-3 or probs.min() < 0:
        raise DataError(path, None, "its rows are not probabilities (each >= 0, summing to 1)")
    return probs
