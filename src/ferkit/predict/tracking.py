"""Faces followed through a video: each face keeps an id from frame to frame, and its
probabilities can be smoothed over time.

A track's next box is predicted from its last one and its velocity; each frame's faces are
matched to the predicted boxes by overlap (IoU), greedily, best pairs first; a face left over
starts a new track, and a track unseen for ``max_missed`` analysed frames ends. The velocity is
what keeps two faces that cross apart: at the moment they overlap, each face's box is nearer
its own track's prediction than the other's last position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .recognizer import Face


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    box: np.ndarray  # (x, y, w, h), float
    velocity: np.ndarray  # per analysed frame
    missed: int = 0
    probabilities: np.ndarray | None = None  # smoothed

    def predicted(self) -> tuple[float, float, float, float]:
        x, y, w, h = self.box + self.velocity * (1 + self.missed)
        return float(x), float(y), float(max(w, 1.0)), float(max(h, 1.0))


class FaceTracker:
    """Gives each :class:`Face` of consecutive frames a ``track`` id (1, 2, ...).

    ``smoothing`` in [0, 1): each track's probabilities become ``s * previous + (1 - s) *
    this frame's`` (its label and confidence follow them; raw ``scores`` stay the frame's);
    0 leaves them as they are. ``min_iou``: the least overlap between a face and a track's
    predicted box that continues it.
    """

    def __init__(self, smoothing: float = 0.0, min_iou: float = 0.2, max_missed: int = 10):
        if not 0 <= smoothing < 1:
            raise ValueError(f"smoothing must be in [0, 1), not {smoothing}")
        self.smoothing, self.min_iou, self.max_missed = smoothing, min_iou, max_missed
        self._tracks: list[_Track] = []
        self._next_id = 1

    def update(self, faces: Iterable[Face]) -> list[Face]:
        """The faces of the next analysed frame, each with its track id (in the given order)."""
        faces = list(faces)
        boxes = [np.array([f.box.x, f.box.y, f.box.w, f.box.h], float) for f in faces]
        pairs = sorted(
            (
                (iou(t.predicted(), tuple(b)), ti, fi)
                for ti, t in enumerate(self._tracks)
                for fi, b in enumerate(boxes)
            ),
            reverse=True,
        )
        track_of: dict[int, _Track] = {}
        taken: set[int] = set()
        for overlap, ti, fi in pairs:
            if overlap < self.min_iou:
                break
            if ti in taken or fi in track_of:
                continue
            taken.add(ti)
            track_of[fi] = self._tracks[ti]
        for ti, t in enumerate(self._tracks):
            if ti not in taken:
                t.missed += 1
        out = []
        for fi, (face, box) in enumerate(zip(faces, boxes, strict=True)):
            t = track_of.get(fi)
            if t is None:
                t = _Track(self._next_id, box, np.zeros(4))
                self._next_id += 1
                self._tracks.append(t)
            else:
                step = (box - t.box) / (1 + t.missed)
                t.velocity = 0.5 * t.velocity + 0.5 * step
                t.box, t.missed = box, 0
            out.append(self._smoothed(face, t))
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        return out

    def _smoothed(self, face: Face, track: _Track) -> Face:
        p = np.array(list(face.probabilities.values()))
        if self.smoothing and track.probabilities is not None:
            p = self.smoothing * track.probabilities + (1 - self.smoothing) * p
        track.probabilities = p
        labels = list(face.probabilities)
        k = int(np.argmax(p))
        return dataclasses.replace(
            face,
            probabilities=dict(zip(labels, p.tolist(), strict=True)),
            label=labels[k],
            confidence=float(p[k]),
            track=track.id,
        )


#: The timeline CSV's columns before the seven probabilities.
TIMELINE_COLUMNS = ("frame", "time_s", "track", "label", "confidence", "x", "y", "w", "h")


def timeline_rows(frames: list[tuple[int, list[Face]]], fps: float) -> list[list]:
    """One row per tracked face per analysed frame (:data:`TIMELINE_COLUMNS`, then each
    label's probability), in frame order."""
    rows = []
    for k, faces in frames:
        for f in faces:
            b = f.box
            head = [k, round(k / fps, 3), f.track, f.label, round(f.confidence, 4)]
            rows.append(
                head + [b.x, b.y, b.w, b.h] + [round(p, 4) for p in f.probabilities.values()]
            )
    return rows


def write_timeline(
    frames: list[tuple[int, list[Face]]], fps: float, csv_path, png_path, title: str
) -> None:
    """A video's timeline: the CSV of :func:`timeline_rows` and a picture of each track's
    seven probabilities over time (both written whole or not at all)."""
    import csv
    import io

    from ..atomic import atomic_write
    from ..figures import track_timelines
    from ..labels import LABELS

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*TIMELINE_COLUMNS, *LABELS])
    rows = timeline_rows(frames, fps)
    writer.writerows(rows)
    with atomic_write(csv_path) as fh:
        fh.write(buf.getvalue().encode())
    analysed = {k: i for i, (k, _) in enumerate(frames)}
    tracks: dict[int, tuple[list[float], list[list[float]]]] = {}
    last: dict[int, int] = {}
    for row in rows:
        times, probs = tracks.setdefault(row[2], ([], []))
        i = analysed[row[0]]
        if row[2] in last and i > last[row[2]] + 1:  # unseen for a while: a gap in the lines
            times.append(row[1])
            probs.append([float("nan")] * len(LABELS))
        last[row[2]] = i
        times.append(row[1])
        probs.append(row[len(TIMELINE_COLUMNS) :])
    track_timelines(tracks, png_path, title)
