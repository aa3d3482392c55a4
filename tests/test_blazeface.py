"""The BlazeFace port (issue 34): the PyTorch graph against the TFLite runtime on the same
inputs, op for op, and the decoded faces on real photos; the shipped weights tied to the
originals by SHA-256; nothing fetched from the network."""

from __future__ import annotations

import functools
import hashlib
import json
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.images import load_image, sample_photo
from ferkit.predict.blazeface import (
    VARIANTS,
    compiled_graph,
    decode,
    detect_faces,
    letterbox,
    load_graph,
    weighted_nms,
    weights_path,
)

ORIGINALS = Path(__file__).parent / "data" / "blazeface"
ORIGINAL = {
    "short-range": "face_detection_short_range.tflite",
    "full-range": "face_detection_full_range.tflite",
}
WILD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "wild-dev" / "images"


def _photos() -> list[np.ndarray]:
    """The sample photo, moved, scaled and mirrored on larger canvases, and the first wild-dev
    photos where the data is present."""
    face = load_image(sample_photo())
    out = [face, face[:, ::-1].copy()]
    for side, (x, y) in ((640, (30, 60)), (900, (400, 200))):
        canvas = np.full((side * 3 // 4, side, 3), 90, np.uint8)
        small = np.asarray(Image.fromarray(face).resize((side // 3, side // 3)))
        canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
        out.append(canvas)
    if WILD.is_dir():
        out += [load_image(p) for p in sorted(WILD.iterdir())[:8]]
    return out


def _tflite(variant: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(ORIGINALS / ORIGINAL[variant]), num_threads=1)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    regressors, scores = (it.get_tensor(o["index"]) for o in it.get_output_details())
    return regressors, scores


@pytest.mark.parametrize("graph", [load_graph, compiled_graph], ids=["eager", "compiled"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_port_computes_what_the_tflite_runtime_does(variant, graph):
    """Both the readable graph and the traced, frozen one that ``detect_faces`` runs."""
    pytest.importorskip("ai_edge_litert")
    found = 0
    for rgb in _photos():
        x, *_ = letterbox(rgb, VARIANTS[variant].side)
        with torch.inference_mode():
            ours = [t[0].numpy() for t in graph(variant)(x)]
        theirs = [t[0] for t in _tflite(variant, x.permute(0, 2, 3, 1).numpy())]
        for a, b in zip(ours, theirs, strict=True):
            assert a.shape == b.shape
            assert np.abs(a - b).max() <= 1e-3 * max(1.0, np.abs(b).max())
        faces_ours, s_ours = weighted_nms(*decode(*ours, variant))
        faces_theirs, s_theirs = weighted_nms(*decode(*theirs, variant))
        assert len(faces_ours) == len(faces_theirs)  # the same faces
        side = VARIANTS[variant].side
        assert np.abs(faces_ours - faces_theirs).max(initial=0) * side < 0.5  # < 0.5 input px
        found += len(faces_ours)
    if variant == "short-range":
        assert found >= 4  # the sample photo's face, however it is placed


def test_the_letterbox_is_dense_channels_last_and_centred():
    """The graph's input in the layout oneDNN's convolutions take without a copy (a batch
    stride of a whole image: 1.6 against 2.6 ms a graph run), the photo centred on black."""
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[:, :, 0] = 255  # a red photo
    x, n, pad_x, pad_y = letterbox(rgb, 128)
    assert x.shape == (1, 3, 128, 128) and x.stride() == (128 * 128 * 3, 1, 128 * 3, 3)
    assert (n, pad_x, pad_y) == (640, 0.0, 80.0)
    assert torch.all(x[0, :, :16] == -1) and torch.all(x[0, :, -16:] == -1)  # the black bands
    assert torch.all(x[0, 0, 16:-16] == 1) and torch.all(x[0, 1:, 16:-16] == -1)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_shipped_weights_are_the_originals(variant):
    from safetensors import safe_open

    with safe_open(str(weights_path(variant)), "np") as f:
        meta = f.metadata()
    original = (ORIGINALS / ORIGINAL[variant]).read_bytes()
    assert meta["source_sha256"] == hashlib.sha256(original).hexdigest()
    assert meta["source"] == ORIGINAL[variant] and json.loads(meta["ops"])


def test_faces_in_image_pixels_with_eye_keypoints(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("BlazeFace tried to open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    load_graph.cache_clear()
    face = load_image(sample_photo())
    (det,) = detect_faces(face)
    x, y, w, h = det.box
    assert det.score > 0.8 and 100 < x < 160 and 30 < y < 90 and 55 < w < 95
    right_eye, left_eye = det.keypoints[:2]  # the person's: on the image's left, then right
    assert x < right_eye[0] < left_eye[0] < x + w and y < right_eye[1] < y + h / 2
    canvas = np.full((424, 424, 3), 90, np.uint8)
    canvas[30:414, 20:404] = face  # the same face, moved by (20, 30)
    (moved,) = detect_faces(canvas)
    assert abs(moved.box[0] - (x + 20)) < 3 and abs(moved.box[1] - (y + 30)) < 3


def test_weighted_nms_blends_overlaps_and_keeps_apart_faces():
    a = np.array([0.1, 0.1, 0.3, 0.3] + [0.2] * 12)
    b = a + 0.01  # overlaps a
    c = np.array([0.6, 0.6, 0.8, 0.8] + [0.7] * 12)
    faces, scores = weighted_nms(np.stack([b, a, c]), np.array([0.6, 0.9, 0.7]))
    assert scores.tolist() == [0.9, 0.7]
    assert np.allclose(faces[0], (0.9 * a + 0.6 * b) / 1.5) and np.allclose(faces[1], c)
    assert weighted_nms(np.zeros((0, 16)), np.zeros(0))[0].shape == (0, 16)


@pytest.mark.parametrize("graph", [load_graph, compiled_graph], ids=["eager", "compiled"])
def test_the_graph_runs_batches(graph):
    x = torch.rand(3, 3, 128, 128) * 2 - 1
    with torch.inference_mode():
        regressors, scores = graph("short-range")(x)
        one = graph("short-range")(x[1:2])
    assert regressors.shape == (3, 896, 16) and scores.shape == (3, 896, 1)
    assert torch.allclose(one[0][0], regressors[1], atol=1e-3)  # each photo on its own


def test_as_a_detector_its_box_is_the_fer_frame_like_haars(monkeypatch):
    """BlazeFace's tighter, lower box turned into FER-2013's frame lands where Haar's box (0.98
    of that frame) does on the same face."""
    pytest.importorskip("cv2")
    from ferkit.images import load_grey
    from ferkit.predict.detect import create_detector

    grey = load_grey(sample_photo())
    (haar,) = create_detector("haar").detect(grey)
    (blaze,) = create_detector("blazeface").detect(grey)
    for a, b in ((haar.x, blaze.x), (haar.y, blaze.y), (haar.w, blaze.w), (haar.h, blaze.h)):
        assert abs(a - b) < 0.1 * haar.w
    raw = create_detector("blazeface")
    raw.to_fer_frame = False
    (tight,) = raw.detect(grey)
    assert tight.w < blaze.w and tight.y > blaze.y  # the conversion did something


def test_the_detector_option_offers_every_registered_detector():
    from ferkit.argtypes import DETECTORS
    from ferkit.predict.detect import list_detectors

    assert tuple(list_detectors()) == DETECTORS


def test_predict_with_blazeface(tiny_run):
    pytest.importorskip("cv2")
    from cli_run import run_cli

    r = run_cli("predict", "--sample", "--model", str(tiny_run), "--detector", "blazeface")
    assert r.returncode == 0, r.stderr
    assert "astronaut.jpg: " in r.stdout and " at x=12" in r.stdout  # the frame Haar gives too


def _astronaut() -> np.ndarray:
    from importlib.resources import files

    p = files("skimage") / "data" / "astronaut.png"
    if not p.is_file():
        pytest.skip("scikit-image's astronaut.png is not installed")
    return np.asarray(Image.open(str(p)).convert("RGB"))


def test_the_eyes_give_the_faces_roll():
    """Turning the photo about the face turns the measured roll by as much (within 4 deg)."""
    from ferkit.predict.detect import BlazeFaceDetector, Box

    assert Box(0, 0, 9, 9, ((10, 20), (30, 20))).roll == 0
    assert Box(0, 0, 9, 9, ((10, 20), (30, 40))).roll == pytest.approx(45)  # left eye lower
    assert Box(0, 0, 9, 9).roll == 0  # no eyes (Haar)
    photo, det = _astronaut(), BlazeFaceDetector()
    (face,) = det.detect(photo)
    centre = (face.x + face.w / 2, face.y + face.h / 2)
    for turn in (15, -25):  # PIL turns counter-clockwise: the roll goes down by as much
        turned = np.asarray(Image.fromarray(photo).rotate(turn, Image.BILINEAR, center=centre))
        (got,) = det.detect(turned)
        assert got.roll == pytest.approx(face.roll - turn, abs=4)


def test_an_aligned_crop_of_a_turned_face_is_the_upright_crop():
    from ferkit.images import to_grey
    from ferkit.predict.detect import BlazeFaceDetector
    from ferkit.predict.recognizer import crop_face

    photo, det = _astronaut(), BlazeFaceDetector()
    (face,) = det.detect(photo)
    upright = crop_face(to_grey(photo), face, roll=face.roll).astype(float)
    centre = (face.x + face.w / 2, face.y + face.h / 2)
    turned = Image.fromarray(photo).rotate(-15, Image.BILINEAR, center=centre, fillcolor=(90,) * 3)
    turned = np.asarray(turned)
    (found,) = det.detect(turned)
    aligned = crop_face(to_grey(turned), found, roll=found.roll).astype(float)
    as_is = crop_face(to_grey(turned), found).astype(float)

    def corr(a, b):
        return np.corrcoef(a.ravel(), b.ravel())[0, 1]

    # (not 1: BlazeFace's box for a turned face is a little smaller, 106 px against 114 here)
    assert corr(aligned, upright) > 0.8 > corr(as_is, upright) + 0.3


def test_faces_are_cropped_as_they_lie_unless_align_is_asked(tiny_run, monkeypatch):
    from ferkit import Recognizer
    from ferkit.cli.main import build_parser
    from ferkit.predict import recognizer

    rolls = []
    monkeypatch.setattr(
        recognizer,
        "crop_face",
        lambda grey, box, margin, roll: rolls.append(roll) or np.zeros((48, 48), np.uint8),
    )
    photo = Image.fromarray(_astronaut()).rotate(-15, Image.BILINEAR, fillcolor=(90,) * 3)
    for rec in (Recognizer(tiny_run), Recognizer(tiny_run, align=True)):
        rec.predict(np.asarray(photo))
    assert rolls[0] == 0.0 and abs(rolls[1]) > 10  # upright only when asked
    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    assert predict.parse_args(["x.jpg"]).align is False
    assert predict.parse_args(["x.jpg", "--align"]).align is True


def test_a_level_line_stays_level_and_a_tilted_one_is_levelled():
    from ferkit.predict.detect import Box
    from ferkit.predict.recognizer import crop_face

    img = np.zeros((200, 200), np.uint8)
    img[98:102, 20:180] = 255
    box = Box(50, 50, 100, 100)
    assert np.array_equal(crop_face(img, box, roll=0.0), crop_face(img, box))
    tilted = np.asarray(Image.fromarray(img).rotate(-20, Image.BILINEAR))  # clockwise 20 deg
    rows = crop_face(tilted, box, roll=20).argmax(axis=0)  # the line's row in each column
    assert rows.max() - rows.min() <= 1
    rows = crop_face(tilted, box).argmax(axis=0)
    assert rows.max() - rows.min() > 8


def test_a_face_that_fills_the_frame_is_found_with_a_border():
    from ferkit.predict.detect import BlazeFaceDetector

    tight = _astronaut()[91:163, 197:255]  # the face alone, edge to edge
    assert BlazeFaceDetector(border=0).detect(tight) == []
    (face,) = BlazeFaceDetector().detect(tight)
    assert face.x == 0 and face.y == 0 and face.w >= 50  # the FER frame, clipped to the crop
    (rx, ry), (lx, ly) = face.eyes  # in the crop's pixels, not the bordered image's
    assert 0 < rx < lx < tight.shape[1] and 0 < ry < tight.shape[0] / 2


def test_the_detector_sees_colour_and_the_default_is_blazeface(tiny_run):
    from ferkit import Recognizer
    from ferkit.images import to_grey
    from ferkit.predict.detect import BlazeFaceDetector

    seen = []

    class Spy(BlazeFaceDetector):
        def detect(self, image):
            seen.append(image.shape)
            return super().detect(image)

    photo = _astronaut()
    (face,) = Recognizer(tiny_run, detector=Spy()).predict(photo)
    assert seen == [photo.shape] and face.box.eyes is not None
    assert isinstance(Recognizer(tiny_run).detector, BlazeFaceDetector)
    grey_only = Recognizer(tiny_run, detector="haar") if _has_haar() else None
    if grey_only:
        assert grey_only.decode(photo).shape == photo.shape[:2]  # a grey detector: grey decode
    rgb_rec = Recognizer(tiny_run)
    assert rgb_rec.decode(photo).shape == photo.shape
    assert np.array_equal(rgb_rec.decode(photo, detect=False), to_grey(photo))


def _has_haar() -> bool:
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(cv2, "CascadeClassifier")


def test_haar_on_opencv_5_says_what_to_install(monkeypatch, capsys):
    import types

    import ferkit.predict.detect as detect

    fake = types.SimpleNamespace(__version__="5.1.0", data=types.SimpleNamespace())
    monkeypatch.setattr(detect, "opencv", lambda: fake)
    with pytest.raises(RuntimeError, match=r"OpenCV 5\.1\.0.*ferkit\[haar\]"):
        detect.create_detector("haar")
    from ferkit.cli.main import main

    for command in (["predict", "--sample"], ["serve", "--port", "1"]):  # one line, no work
        assert main([*command, "--detector", "haar"]) == 2
        assert "ferkit[haar]" in capsys.readouterr().err


def test_the_compiled_graph_is_made_once_when_threads_ask_together(monkeypatch):
    import threading

    import ferkit.predict.blazeface as bf

    made = []
    real = bf._compiled.__wrapped__

    @functools.cache
    def counting(variant):
        made.append(variant)
        return real(variant)

    monkeypatch.setattr(bf, "_compiled", counting)
    threads = [threading.Thread(target=bf.compiled_graph) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made == ["short-range"]
