"""Faces followed through video (issue 34): ids that persist as two faces move, scale and
cross, smoothing over time, and the per-track timeline."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.labels import LABELS
from ferkit.predict.detect import Box
from ferkit.predict.recognizer import Face
from ferkit.predict.tracking import FaceTracker, iou


def _face(x: float, y: float, side: float, p: list[float] | None = None) -> Face:
    p = p or [1 / 7] * 7
    probs = dict(zip(LABELS, p, strict=True))
    k = int(np.argmax(p))
    return Face(Box(round(x), round(y), round(side), round(side)), LABELS[k], probs, probs, p[k])


def _crossing(frames: int = 40):
    """Truth and faces of two boxes that swap sides, overlapping half-way (IoU up to ~0.6)."""
    for t in range(frames):
        a = (40 + 8 * t, 100, 100 + t)  # moves right and grows
        b = (360 - 8 * t, 130, 120 - t // 2)  # moves left and shrinks
        yield t, a, b


def test_two_faces_that_cross_keep_their_ids():
    tracker, ids = FaceTracker(), {"a": set(), "b": set()}
    for t, a, b in _crossing():
        order = [("a", a), ("b", b)] if t % 2 else [("b", b), ("a", a)]  # largest first varies
        faces = tracker.update(_face(*box) for _, box in order)
        for (name, _), f in zip(order, faces, strict=True):
            ids[name].add(f.track)
    assert ids == {"a": {1}, "b": {2}} or ids == {"a": {2}, "b": {1}}
    assert max(iou((*a[:2], a[2], a[2]), (*b[:2], b[2], b[2])) for _, a, b in _crossing()) > 0.5


def test_a_face_missed_for_a_few_frames_keeps_its_id_and_a_new_one_gets_a_new_id():
    tracker = FaceTracker(max_missed=3)
    assert [f.track for f in tracker.update([_face(100, 100, 80)])] == [1]
    for _ in range(3):
        assert tracker.update([]) == []
    assert [f.track for f in tracker.update([_face(104, 100, 80)])] == [1]
    for _ in range(4):
        tracker.update([])
    assert [f.track for f in tracker.update([_face(104, 100, 80)])] == [2]  # ended: a new id


def test_smoothing_mixes_each_tracks_probabilities_over_time():
    happy = [0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0]
    sad = [0.0, 0.0, 0.0, 0.1, 0.9, 0.0, 0.0]
    tracker = FaceTracker(smoothing=0.75)
    first = tracker.update([_face(10, 10, 50, happy)])[0]
    second = tracker.update([_face(12, 10, 50, sad)])[0]
    assert first.probabilities["happy"] == pytest.approx(0.9)
    assert second.probabilities["happy"] == pytest.approx(0.75 * 0.9 + 0.25 * 0.1)
    assert second.label == "happy" and second.confidence == pytest.approx(0.7)
    assert second.scores["sad"] == pytest.approx(0.9)  # the frame's own scores stay
    plain = FaceTracker().update([_face(12, 10, 50, sad)])[0]
    assert plain.label == "sad" and plain.probabilities["sad"] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="smoothing"):
        FaceTracker(smoothing=1.0)


def _two_faces_clip(path):
    """scripts/make_demo_clip.py's clip (the README's timeline is made from it)."""
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_demo_clip.py"
    spec = importlib.util.spec_from_file_location("make_demo_clip", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.two_faces_clip(path)


def test_a_clip_of_two_real_faces_that_cross_keeps_their_ids(tiny_run, tmp_path):
    pytest.importorskip("cv2")
    from cli_run import run_cli

    clip = tmp_path / "two.mp4"
    truth = _two_faces_clip(clip)
    r = run_cli(
        "predict", str(clip), "--model", str(tiny_run), "--json", "--views", "center",
        "--timeline", str(tmp_path / "tl"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    ids: dict[int, set[int]] = {0: set(), 1: set()}
    frames_with_both = 0
    for k, squares in enumerate(truth):
        found = [row for row in rows if row["frame"] == k]
        frames_with_both += len(found) == 2
        centres = [x + s / 2 for x, _, s in squares]
        for row in found:
            b = row["box"]
            who = int(np.argmin([abs(b["x"] + b["w"] / 2 - c) for c in centres]))
            if len(found) == 1 and abs(centres[0] - centres[1]) < 0.4 * squares[1][2]:
                who = 1  # passing: the second face is drawn over the first, which is hidden
            ids[who].add(row["track"])
    assert frames_with_both >= 0.8 * len(truth)  # the detector sees both most of the time
    assert len(ids[0]) == len(ids[1]) == 1 and ids[0] != ids[1]
    with open(tmp_path / "tl" / "two.timeline.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == len(rows)
    assert {int(row["track"]) for row in table} == ids[0] | ids[1]
    assert list(table[0])[-7:] == list(LABELS)
    assert sum(float(table[0][k]) for k in LABELS) == pytest.approx(1, abs=1e-3)
    png = Image.open(tmp_path / "tl" / "two.timeline.png")
    assert png.size[0] > 400 and png.size[1] > 300
