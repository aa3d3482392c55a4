"""The photo pipeline on a real face: scikit-image's public-domain astronaut photo (NASA)."""

import io
import json
import subprocess
import sys
from importlib.resources import files

import numpy as np
import pytest
from cli_run import run_cli, run_cli_process
from PIL import Image

import ferkit
from ferkit.fermodel.files import shipped_model_path
from ferkit.images import ImageError, load_image
from ferkit.predict.detect import Box
from ferkit.predict.ray_engine import RECORD_KEYS
from ferkit.predict.recognizer import crop_face

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    p = files("skimage") / "data" / "astronaut.png"
    if not p.is_file():
        pytest.skip("scikit-image's astronaut.png is not installed")
    return np.asarray(Image.open(str(p)).convert("RGB"))


@pytest.fixture(scope="module")
def rec(tiny_run):
    return ferkit.Recognizer(tiny_run)


@pytest.fixture
def photo(astronaut, tmp_path):
    p = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(p, quality=92)
    return p


def test_finds_the_face_and_labels_it(rec, photo):
    faces = rec.predict(photo)
    assert len(faces) >= 1
    f = faces[0]
    # the astronaut's face is around x 170-270, y 40-160 in the 512x512 photo
    assert 140 < f.box.x + f.box.w / 2 < 300 and 40 < f.box.y + f.box.h / 2 < 170
    assert f.label in ferkit.LABELS
    assert list(f.probabilities) == list(ferkit.LABELS)
    assert sum(f.probabilities.values()) == pytest.approx(1, abs=1e-5)
    assert f.confidence == max(f.probabilities.values()) == f.probabilities[f.label]
    box, label, scores = f  # fer-style unpacking
    assert label == f.label and scores == f.scores


def test_every_input_kind_gives_the_same_answer(rec, photo, astronaut):
    rgb = load_image(photo)
    ref = rec.predict(photo)[0]
    for src, color in [
        (rgb, "rgb"),
        (rgb[..., ::-1].copy(), "bgr"),
        (photo.read_bytes(), "rgb"),
        (Image.open(photo), "rgb"),
        (str(photo), "rgb"),
    ]:
        got = rec.predict(src, color=color)[0]
        assert got.box == ref.box and got.label == ref.label
        assert got.scores == pytest.approx(ref.scores, abs=1e-5)


def test_batch_equals_one_by_one(rec, photo, astronaut):
    many = rec.predict_many([photo, astronaut[:, ::-1].copy(), photo])
    assert many[0][0].scores == pytest.approx(rec.predict(photo)[0].scores, abs=1e-5)
    assert many[2][0].scores == pytest.approx(many[0][0].scores, abs=1e-5)


def test_no_detect_treats_input_as_a_face(rec, astronaut):
    face = astronaut[40:170, 160:290]
    (f,) = rec.predict(face, detect=False)
    assert f.box == Box(0, 0, 130, 130)


@pytest.mark.parametrize("precision, dtype", [("fp32", None), ("bf16", "bfloat16")])
def test_recognizer_computes_in_the_precision_asked(tiny_run, astronaut, precision, dtype):
    import torch

    rec = ferkit.Recognizer(tiny_run, precision=precision)
    seen = []
    rec.model.net.register_forward_hook(
        lambda *_: seen.append(
            str(torch.get_autocast_dtype("cpu")).removeprefix("torch.")
            if torch.is_autocast_enabled("cpu")
            else None
        )
    )
    assert rec.predict(astronaut, detect=False) and set(seen) == {dtype}


def test_an_unknown_precision_is_refused(tiny_run):
    with pytest.raises(ValueError, match="unknown precision 'fp64'"):
        ferkit.Recognizer(tiny_run, precision="fp64")
    r = run_cli("predict", "--model", str(tiny_run), "--precision", "fp64", "x.png")
    assert r.returncode == 2 and "invalid choice: 'fp64'" in r.stderr


def test_crop_face_pads_at_the_border():
    grey = np.full((100, 100), 200, np.uint8)
    crop = crop_face(grey, Box(80, 80, 30, 30), margin=0.5)
    assert crop.shape == (48, 48) and (crop == 200).all()


def test_cli_json_matches_api(rec, tiny_run, photo):
    r = run_cli("predict", str(photo), "--model", str(tiny_run), "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    api = rec.predict(photo)
    assert len(rows) == len(api)
    for row, f in zip(rows, api, strict=True):
        assert row["file"] == str(photo) and row["frame"] is None
        assert row["box"] == f.box.to_dict() and row["label"] == f.label
        assert row["scores"] == pytest.approx(f.scores, abs=1e-5)
        assert tuple(row) == RECORD_KEYS  # in the contract's order (test_contract)


def test_annotated_copy_and_labels_summary(tiny_run, photo, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nastronaut.jpg,happy\n")
    out = tmp_path / "ann"
    r = run_cli(
        "predict",
        str(photo.parent),
        "--model",
        str(tiny_run),
        "--out",
        str(out),
        "--labels",
        str(labels),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert summary["files"] == 1 and summary["with_face"] == 1 and summary["labelled"] == 1
    said = ferkit.Recognizer(tiny_run).predict(str(photo))[0].label
    assert summary["correct"] == int(said == "happy") and "largest face's label right" in r.stderr
    assert summary["per_class"]["happy"]["labelled"] == 1 and "right per true label" in r.stderr
    ann = np.asarray(Image.open(out / "astronaut.jpg"))
    assert ann.shape == np.asarray(Image.open(photo)).shape
    assert (
        np.abs(ann.astype(int) - np.asarray(Image.open(photo)).astype(int)).max() > 100
    )  # drawn on


def _save(tmp_path, name, im, **kw):
    p = tmp_path / name
    im.save(p, **kw)
    return p


@pytest.mark.parametrize("mode", ["I;16", "CMYK", "RGBA", "P", "L"])
def test_image_modes_are_read(rec, astronaut, tmp_path, mode):
    im = Image.fromarray(astronaut)
    if mode == "I;16":
        a16 = np.asarray(im.convert("L")).astype(np.uint16) * 257
        im = Image.fromarray(a16)
        assert im.mode.startswith("I;16")
        p = _save(tmp_path, "a16.png", im)
    elif mode == "CMYK":
        p = _save(tmp_path, "cmyk.jpg", im.convert("CMYK"))
    elif mode == "RGBA":
        im = im.convert("RGBA")
        p = _save(tmp_path, "rgba.png", im)
    else:
        p = _save(tmp_path, f"{mode}.png", im.convert(mode))
    assert Image.open(p).mode.startswith(mode[:3]) or mode == "I;16"
    assert len(rec.predict(p)) >= 1


def test_exif_orientation_is_honoured(rec, astronaut, tmp_path):
    upright = rec.predict(astronaut)[0].box
    # stored turned by 90 degrees, with the EXIF tag that says how to turn it back
    stored = Image.fromarray(astronaut).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    p = tmp_path / "rotated.jpg"
    stored.save(p, exif=exif, quality=95)
    got = rec.predict(p)[0].box
    assert abs(got.x - upright.x) < 12 and abs(got.y - upright.y) < 12


def test_unreadable_truncated_and_no_face_go_on(tiny_run, photo, tmp_path):
    (tmp_path / "notes.jpg").write_text("this is not an image")
    data = photo.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("RGB", (300, 300), (128, 128, 128)).save(tmp_path / "blank.png")
    Image.new("RGB", (6, 5), (20, 20, 20)).save(tmp_path / "tiny.png")
    r = run_cli("predict", str(tmp_path), "--model", str(tiny_run), "--json")
    assert r.returncode == 1  # unreadable inputs make the status 1 ...
    files_done = {json.loads(line)["file"] for line in r.stdout.splitlines()}
    assert files_done == {str(photo)}  # ... and the batch went on
    err = r.stderr
    assert f"{tmp_path / 'notes.jpg'}: unreadable image" in err
    assert f"{tmp_path / 'truncated.jpg'}: unreadable image" in err
    assert f"{tmp_path / 'blank.png'}: no face found" in err
    assert f"{tmp_path / 'tiny.png'}: no face found" in err
    assert "Traceback" not in err


def test_no_face_alone_is_exit_0(tiny_run, tmp_path):
    Image.new("RGB", (300, 300), (128, 128, 128)).save(tmp_path / "blank.png")
    r = run_cli("predict", str(tmp_path / "blank.png"), "--model", str(tiny_run))
    assert r.returncode == 0 and "no face found" in r.stderr


def test_oversized_image_is_refused(tiny_run, photo):
    r = run_cli("predict", str(photo), "--model", str(tiny_run), "--max-megapixels", "0.1")
    assert r.returncode == 1
    assert "512x512 = 0.3 megapixels, over the limit of 0 (a decompression-bomb guard)" in r.stderr
    with pytest.raises(ImageError, match="decompression-bomb"):
        load_image(photo, max_pixels=1000)


def test_video_frames_and_annotated_video(tiny_run, astronaut, tmp_path):
    import cv2

    video = tmp_path / "clip.mp4"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (512, 512))
    for k in range(4):
        w.write(np.ascontiguousarray(np.roll(astronaut, 8 * k, axis=1)[..., ::-1]))
    w.release()
    out = tmp_path / "ann"
    r = run_cli("predict", str(video), "--model", str(tiny_run), "--json", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted({row["frame"] for row in rows}) == [0, 1, 2, 3]
    cap = cv2.VideoCapture(str(out / "clip.annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4


def test_camera_without_gui_is_a_clear_error(tiny_run):
    r = run_cli("predict", "--camera", "0", "--model", str(tiny_run))
    assert r.returncode == 2 and "camera" in r.stderr and "Traceback" not in r.stderr


def test_bytes_that_are_not_an_image():
    with pytest.raises(ImageError, match="<bytes>: unreadable image"):
        load_image(b"GIF89a broken")
    with pytest.raises(ImageError):
        load_image(io.BytesIO)  # not an image source at all


def test_mirrored_search_maps_boxes_back(astronaut):
    from ferkit.predict.detect import HaarDetector, create_detector, list_detectors

    grey = np.asarray(Image.fromarray(astronaut).convert("L"))
    plain = HaarDetector().detect(np.ascontiguousarray(grey[:, ::-1]))[0]
    mirrored = HaarDetector(mirror=True).detect(grey)[0]
    assert mirrored == Box(grey.shape[1] - plain.x - plain.w, plain.y, plain.w, plain.h)
    assert "haar" in list_detectors()
    assert create_detector("haar").detect(np.full((200, 200), 127, np.uint8)) == []
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("yolo")


def test_to_grey_is_itu_601_luma():
    from ferkit.images import to_grey

    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], np.uint8)
    assert to_grey(px).tolist() == [[76, 150, 29, 255, 0]]


@pytest.mark.parametrize(
    "mode, fmt, orientation",
    [
        ("RGB", "JPEG", 1),
        ("RGB", "JPEG", 6),  # stored turned, EXIF says how to turn it back
        ("L", "PNG", 1),
        ("RGBA", "PNG", 1),
        ("P", "PNG", 1),
        ("CMYK", "JPEG", 1),
        ("I;16", "PNG", 1),
    ],
)
def test_grey_loading_gives_the_rgb_paths_pixels(astronaut, mode, fmt, orientation):
    """``load_grey`` (what detection and the server read) skips the RGB copy, never a pixel."""
    from ferkit.images import load_grey, to_grey

    small = astronaut[::3, ::2]  # not square: a turn shows in the shape
    if mode == "I;16":
        im = Image.fromarray(
            np.asarray(Image.fromarray(small).convert("L")).astype(np.uint16) * 257
        )
    elif mode == "RGBA":  # uneven transparency: composited on white, as the RGB path does
        alpha = np.random.default_rng(0).integers(0, 256, small.shape[:2], dtype=np.uint8)
        im = Image.fromarray(np.dstack([small, alpha]))
    else:
        im = Image.fromarray(small).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    im.save(buf, format=fmt, exif=exif) if fmt == "JPEG" else im.save(buf, format=fmt)
    data = buf.getvalue()
    got = load_grey(data)
    assert got.dtype == np.uint8 and got.ndim == 2
    assert np.array_equal(got, to_grey(load_image(data)))
    if orientation == 6:  # upright = the stored pixels turned 90 degrees clockwise
        stored = Image.open(io.BytesIO(data)).convert("RGB")
        turned = to_grey(np.asarray(stored.transpose(Image.Transpose.ROTATE_270)))
        assert got.shape == (small.shape[1], small.shape[0]) and np.array_equal(got, turned)
    assert np.array_equal(load_grey(astronaut), to_grey(astronaut))
    assert load_grey(got) is got  # a grey array is used as it is


def test_summary_counts_per_true_label_and_missing_faces():
    from ferkit.predict.files import BatchSummary

    s = BatchSummary(files=4, with_face=3)
    for truth, pred in [("happy", "happy"), ("happy", "sad"), ("sad", None), ("angry", "angry")]:
        s.add_labelled(truth, pred)
    d = s.to_dict()
    assert (d["labelled"], d["correct"], d["accuracy"]) == (4, 2, 0.5)
    assert list(d["per_class"]) == ["angry", "happy", "sad"]  # the labels' order
    assert d["per_class"]["happy"] == {"labelled": 2, "correct": 1, "accuracy": 0.5}
    assert d["confusion"]["sad"] == {"none": 1}


@pytest.mark.skipif(shipped_model_path() is None, reason="no shipped model")
def test_shipped_model_is_the_default(photo):
    r = run_cli("predict", str(photo), "--json")
    assert r.returncode == 0, r.stderr
    (row,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert row["label"] in ferkit.LABELS and sum(row["probabilities"].values()) == pytest.approx(1)
    shipped = ferkit.Recognizer(shipped_model_path()).predict(str(photo))
    assert row["label"] == shipped[0].label
    assert row["scores"] == pytest.approx(shipped[0].to_dict()["scores"], abs=1e-4)


def test_out_mirrors_relative_paths_and_never_writes_over_an_input(tiny_run, photo, tmp_path):
    import shutil

    root = tmp_path / "photos"
    for sub in ("a", "b"):
        (root / sub).mkdir(parents=True)
        shutil.copy(photo, root / sub / "face.jpg")
    originals = {p: p.read_bytes() for p in root.rglob("*.jpg")}
    out = tmp_path / "ann"
    r = run_cli("predict", str(root), "--model", str(tiny_run), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg")) == [
        "a/face.jpg",
        "b/face.jpg",
    ]
    # --out onto the inputs' own folder: every copy would replace its input: all refused
    r = run_cli("predict", str(root), "--model", str(tiny_run), "--out", str(root))
    assert r.returncode == 1 and r.stderr.count("refused to write its annotated copy") == 2
    assert {p: p.read_bytes() for p in root.rglob("*.jpg")} == originals


def test_out_refuses_two_inputs_sharing_one_copy(tiny_run, photo, tmp_path, monkeypatch):
    import shutil

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(photo, tmp_path / sub / "face.jpg")
    out = tmp_path / "ann"
    a, b = str(tmp_path / "a" / "face.jpg"), str(tmp_path / "b" / "face.jpg")  # absolute
    r = run_cli("predict", a, b, "--model", str(tiny_run), "--out", str(out))
    assert r.returncode == 1 and "would replace another input's" in r.stderr
    assert [p.name for p in out.iterdir()] == ["face.jpg"]
    # relative paths are mirrored, so the same two files both get their copy
    monkeypatch.chdir(tmp_path)
    r = run_cli("predict", "a/face.jpg", "b/face.jpg", "--model", str(tiny_run), "--out", "rel")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rel" / "a" / "face.jpg").exists()
    assert (tmp_path / "rel" / "b" / "face.jpg").exists()


def test_a_fifo_in_a_folder_is_skipped_not_waited_on(tiny_run, photo, tmp_path):
    import os

    os.mkfifo(photo.parent / "stuck.jpg")
    r = run_cli_process(  # a new process: before the fix it blocked forever opening the FIFO
        "predict", str(photo.parent), "--model", str(tiny_run), timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "stuck.jpg: skipped: not a regular file" in r.stderr
    assert "astronaut.jpg: " in r.stdout


# cv2's package, as it loads: it takes itself out of sys.modules while its native part (a
# module with no `data`, and not a package) stands in, then puts itself back.
_SLOW_CV2 = """
import sys, time, types
_package = sys.modules.pop("cv2")
sys.modules["cv2"] = types.ModuleType("cv2")
time.sleep(0.5)
sys.modules["cv2"] = _package
"""

_TWO_THREADS = """
import threading
from ferkit.predict.detect import opencv
got, errors = [], []
def first_use():
    try:
        got.append(opencv().data.haarcascades)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=first_use) for _ in range(2)]
threads[0].start()
import time; time.sleep(0.2)  # the second comes while the first is inside cv2's loading
threads[1].start()
for t in threads:
    t.join()
print(got, errors)
assert got == ["cascades/", "cascades/"] and not errors
"""


def test_two_threads_importing_opencv_at_once_both_get_all_of_it(tmp_path):
    """The server's first concurrent requests each make a detector; without a lock around the
    import, the second thread got cv2 without `cv2.data` and the request answered 500."""
    pkg = tmp_path / "cv2"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text(_SLOW_CV2)
    (pkg / "data" / "__init__.py").write_text("haarcascades = 'cascades/'\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-c", _TWO_THREADS], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stdout + r.stderr
