"""``predict --engine ray``: the local path's records from a local Ray cluster of 2 CPUs."""

from __future__ import annotations

import json
import sys
from importlib.resources import files

import numpy as np
import pytest
from PIL import Image

from ferkit.cli.main import main
from ferkit.predict.files import iter_frames, predict_paths
from ferkit.predict.recognizer import Recognizer

SKIMAGE = files("skimage") / "data"
PHOTOS = 200


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'ferkit[ray]')")
    from ferkit.predict.ray_engine import start_ray, stop_ray

    start_ray(cpus=2)
    yield
    stop_ray()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """200 photos of a real face (crops, shifts, flips and scales of the astronaut), real
    photos with no face, one truncated JPEG and a 60-frame generated video, in subfolders."""
    cv2 = pytest.importorskip("cv2")
    root = tmp_path_factory.mktemp("inputs")
    astronaut = Image.open(SKIMAGE / "astronaut.png").convert("RGB")
    rng = np.random.default_rng(0)
    for i in range(PHOTOS):
        side = int(rng.integers(220, 512))
        x, y = int(rng.integers(0, 512 - side + 1)), int(rng.integers(0, 512 - side + 1))
        img = astronaut.crop((x, y, x + side, y + side)).resize((160, 160))
        if i % 3 == 0:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        sub = root / f"set{i % 4}"
        sub.mkdir(exist_ok=True)
        img.save(sub / f"p{i:03d}.{'png' if i % 2 else 'jpg'}")
    for name in ("coffee.png", "chelsea.png", "camera.png"):
        Image.open(SKIMAGE / name).save(root / name)
    (root / "broken.jpg").write_bytes((root / "set0" / "p000.jpg").read_bytes()[:300])
    frames = np.asarray(astronaut.resize((160, 160)))[..., ::-1]
    video = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 160))
    for k in range(60):
        video.write(np.ascontiguousarray(np.roll(frames, k // 2, axis=1)))
    video.release()
    return root


#: The centre crop only: the engines' records are compared, not the views (10x less network time).
VIEWS = "center"
#: fp32 on both sides: bf16 autocast rounds differently with the workers' thread counts.
SAME = dict(views=VIEWS, precision="fp32")


def _local(model, paths, **kw) -> list[dict]:
    """The local path's records, on one torch thread as each Ray worker runs (BlazeFace's
    boxes can move by a pixel with the thread count: the sums are split differently)."""
    import torch

    out: list[dict] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predict_paths(
            Recognizer(model, **SAME), [str(p) for p in paths], as_json=True, progress=False,
            emit=lambda line: out.append(json.loads(line)), **kw,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return out


def _same(a: list[dict], b: list[dict]) -> None:
    """Identical files, frames, boxes and labels, in the same order; scores within fp error."""
    assert [(r["file"], r["frame"], r["box"], r["label"]) for r in a] == [
        (r["file"], r["frame"], r["box"], r["label"]) for r in b
    ]
    for x, y in zip(a, b, strict=True):
        for key in ("scores", "probabilities"):
            assert list(x[key]) == list(y[key])
            assert np.allclose(list(x[key].values()), list(y[key].values()), atol=1e-4)


def test_same_records_as_the_local_path(ray_cluster, inputs, tiny_run, capsys):
    from ferkit.predict.ray_engine import RecognizerSpec, predict_paths_ray

    local = _local(tiny_run, [inputs])
    capsys.readouterr()
    warned: list[str] = []
    got: list[dict] = []
    summary = predict_paths_ray(
        [str(inputs)],
        RecognizerSpec(model=str(tiny_run), **SAME),
        workers=2,
        video_chunk=16,  # the 60-frame video as 4 frame ranges, spread over both workers
        emit=lambda line: got.append(json.loads(line)),
        warn=warned.append,
    )
    assert len(local) > PHOTOS  # every photo has its face, and the video's frames too
    _same(got, local)
    assert summary.files == PHOTOS + 5 and summary.failed == 1
    assert summary.faces == len(local)
    assert sum("broken.jpg" in w for w in warned) == 1  # a failed input: one line, run goes on
    assert len(warned) == 1 + sum("no face found" in w for w in warned)


def test_a_video_split_into_ranges_gives_the_frames_of_one_pass(ray_cluster, inputs, tiny_run):
    from ferkit.predict.ray_engine import RecognizerSpec, predict_paths_ray

    video = inputs / "clip.mp4"
    assert [k for k, _ in iter_frames(str(video), 40, 45)] == [40, 41, 42, 43, 44]
    local = _local(tiny_run, [video], every=3)
    got: list[dict] = []
    predict_paths_ray(
        [str(video)],
        RecognizerSpec(model=str(tiny_run), every=3, **SAME),
        workers=2,
        video_chunk=7,  # ranges that do not line up with every 3rd frame
        emit=lambda line: got.append(json.loads(line)),
    )
    assert sorted({r["frame"] for r in got}) == list(range(0, 60, 3))  # a face in each
    _same(got, local)


def test_records_files_jsonl_and_parquet(ray_cluster, inputs, tiny_run, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    photos = inputs / "set1"
    local = _local(tiny_run, [photos])
    args = ["predict", str(photos), "--model", str(tiny_run), "--engine", "ray", "--views", VIEWS]
    args += ["--precision", "fp32"]
    assert main([*args, "--out", str(tmp_path / "r.jsonl")]) == 0
    lines = (tmp_path / "r.jsonl").read_text().splitlines()
    _same([json.loads(x) for x in lines], local)
    assert main([*args, "--out", str(tmp_path / "r.parquet"), "--workers", "1"]) == 0
    _same(pq.read_table(tmp_path / "r.parquet").to_pylist(), local)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "r.csv")]) == 2
    assert ".jsonl or .parquet" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_a_dataset_of_decoded_images_in_records_out(ray_cluster, inputs, tiny_run):
    import ray

    from ferkit.predict.ray_engine import RecognizerSpec, predict_dataset

    photos = sorted((inputs / "set1").glob("*.png"))
    ds = ray.data.read_images([str(p) for p in photos], include_paths=True, mode="RGB")
    rows = predict_dataset(ds, RecognizerSpec(model=str(tiny_run), **SAME), workers=1).take_all()
    got = sorted((r for r in rows if r["error"] is None), key=lambda r: r["file"])
    local = _local(tiny_run, photos)
    for r in got:
        r["file"] = str(inputs / "set1" / r["file"].rsplit("/", 1)[-1])  # Ray drops the leading /
    _same([{k: r[k] for k in local[0]} for r in got], local)


def test_without_ray_it_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails, as without the extra
    assert main(["predict", str(tmp_path), "--engine", "ray"]) == 2
    assert "pip install 'ferkit[ray]'" in capsys.readouterr().err


@pytest.mark.parametrize("precision, dtype", [("fp32", None), ("bf16", "bfloat16")])
def test_each_worker_builds_the_recognizer_the_command_asked_for(tiny_run, precision, dtype):
    """Every option of ``predict`` that shapes the recognizer reaches the workers' spec (one
    of the two precisions differs from auto's on any CPU)."""
    from ferkit.predict.ray_engine import RecognizerSpec

    spec = RecognizerSpec(model=str(tiny_run), views="center", margin=0.1, precision=precision)
    rec = spec.build()
    got = str(rec._dtype).removeprefix("torch.") if rec._dtype else None
    assert (rec.views, rec.margin, got) == ("center", 0.1, dtype)
