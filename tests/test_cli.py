import importlib.util
import json

import numpy as np
import pytest
from cli_run import run_cli, run_cli_process
from synth import write_csv, write_folder

from ferkit.cli.main import command_names, main


def test_models_json(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["bkstart", "bkvgg8", "bkvgg10", "bkvgg12", "bkvgg14"]
    assert rows[3] == {
        "name": "bkvgg12",
        "params": 4_188_903,
        "macs": 123_424_640,
        "input": [1, 42, 42],
    }


def test_data_json_three_splits(tmp_path, capsys):
    p = write_csv(tmp_path / "f.csv", {"Training": 14, "PublicTest": 7, "PrivateTest": 7})
    assert main(["data", "--data", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "csv"
    assert list(out["splits"]) == ["Training", "PublicTest", "PrivateTest"]
    assert out["splits"]["Training"] == {
        "n": 14,
        "counts": dict.fromkeys(
            ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], 2
        ),
    }


def test_data_save_compact_then_read_it(tmp_path, capsys):
    p = write_csv(tmp_path / "f.csv", {"Training": 14, "PublicTest": 7})
    assert main(["data", "--data", str(p), "--json", "--save", str(tmp_path / "c.npz.xz")]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["data", "--data", str(tmp_path / "c.npz.xz"), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["format"] == "compact" and after["splits"] == before["splits"]
    assert main(["data", "--data", str(p), "--save", str(tmp_path / "c.tar")]) == 2


def test_data_bad_row_one_line_exit_1(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("emotion,pixels,Usage\n3,1 2 3,Training\n")
    r = run_cli("data", "--data", str(p))
    assert r.returncode == 1
    assert r.stderr.strip() == (
        f"ferkit: error: {p}:2: 3 pixel values (expected 2304 = 48x48) "
        "(--skip-bad leaves bad rows out)"
    )


def test_data_skip_bad_reports(tmp_path):
    p = write_csv(tmp_path / "f.csv", {"Training": 7})
    p.write_text(p.read_text() + "9,1 2,Training\n")
    r = run_cli("data", "--data", str(p), "--skip-bad", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["skipped"]["n"] == 1
    assert f"skipped 1 bad rows of {p} (first: line 9)" in r.stderr


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_skip_bad_on_train_and_evaluate(tmp_path, tiny_run, command):
    p = write_csv(tmp_path / "f.csv", {"Training": 70, "PublicTest": 14})
    p.write_text(p.read_text() + "9,1 2,Training\n")
    args = ["--data", str(p)]
    if command == "train":
        fast = ["--arch", "bkstart", "--batch-size", "32", "--epochs", "1", "--threads", "1"]
        args += [*fast, "--quiet", "--out", str(tmp_path / "run")]
    else:
        args += ["--model", str(tiny_run)]
    r = run_cli(command, *args)
    assert r.returncode == 1 and "(--skip-bad leaves bad rows out)" in r.stderr
    r = run_cli(command, *args, "--skip-bad")
    assert r.returncode == 0, r.stderr
    assert "skipped 1 bad rows" in r.stderr and "(first: line 86)" in r.stderr


@pytest.mark.parametrize("command", ["data", "evaluate"])
def test_resize_on_data_and_evaluate(tmp_path, tiny_run, command, capsys):
    from PIL import Image

    root = write_folder(tmp_path / "imgs", n_train=7, n_test=7)
    Image.fromarray(np.zeros((60, 50), np.uint8)).save(root / "test" / "sad" / "PublicTest_big.png")
    args = [command, "--data", str(root), "--json"]
    args += ["--model", str(tiny_run), "--threads", "1"] if command == "evaluate" else []
    assert main(args) == 1
    assert "50x60, not 48x48" in capsys.readouterr().err
    assert main([*args, "--resize"]) == 0
    out = json.loads(capsys.readouterr().out)
    n = out["splits"]["PublicTest"]["n"] if command == "data" else out["results"][0]["n"]
    assert n == 8  # the 50x60 face resized, not dropped


def test_usage_errors_exit_2():
    r = run_cli_process("frobnicate")  # the console entry point itself, as a shell runs it
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run_cli("train", "--data", "x.csv")
    assert r.returncode == 2 and "needs --data PATH and --out RUN" in r.stderr


@pytest.mark.parametrize("cmd", command_names())
def test_every_command_has_help(cmd):
    r = run_cli(cmd, "--help")
    assert r.returncode == 0 and f"usage: ferkit {cmd}" in r.stdout and len(r.stdout) > 150
    # every option says what it does
    from ferkit.cli.main import build_parser

    sub = build_parser()._subparsers._group_actions[0].choices[cmd]
    silent = [a.dest for a in sub._actions if a.help is None and a.dest != "help"]
    assert not silent, silent


def test_augment_preview(small_csv, tmp_path):
    out = tmp_path / "aug.png"
    assert (
        main(["augment-preview", "--data", str(small_csv), "--out", str(out), "--faces", "2"]) == 0
    )
    assert out.read_bytes()[:4] == b"\x89PNG"


def _benchmark_json(capsys, *args: str) -> dict:
    assert main(["benchmark", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


class _Clock:
    """A stand-in for ``time`` whose clock advances 0.5 s at every reading: a benchmark's
    figures then follow from what it counts, exactly, whatever the machine's speed."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.5
        return self.now


def test_benchmark_train_counts_only_the_timed_steps(capsys, monkeypatch):
    import ferkit.benchmark

    monkeypatch.setattr(ferkit.benchmark, "time", _Clock())
    r = _benchmark_json(capsys, "train", "--arch", "bkstart", "--batch-size", "8", "--steps", "3")
    # 3 timed steps of 8 images between two readings 0.5 s apart; the 2 warm-up steps not counted
    assert r["plain_fp32_images_per_s"] == r["ferkit_images_per_s"] == 48.0
    assert r["fast_procedure_images_per_s"] == 48.0 and r["fast_procedure_step_cost"] == 1.0
    assert r["fast_procedure_fp32_images_per_s"] == 48.0
    assert r["speedup"] == 1.0 and r["batch_size"] == 8
    assert "fast_procedure_fp32_compiled_images_per_s" not in r  # only with --compile


def test_benchmark_evaluate_counts_views(capsys, monkeypatch):
    import ferkit.benchmark

    monkeypatch.setattr(ferkit.benchmark, "time", _Clock())
    r = _benchmark_json(
        capsys, "evaluate", "--arch", "bkstart", "--method", "eval1", "--images", "3"
    )
    assert r["views_per_s"] == 3 * 10 / 0.5  # the warm-up's 2 images not counted
    assert r["minutes_for_3589_images"] == round(3589 * 10 / 60 / 60, 1)


def test_benchmark_predict(capsys):
    pytest.importorskip("cv2")
    r = _benchmark_json(capsys, "predict", "--arch", "bkstart")
    assert r["benchmark"] == "predict" and r["faces_in_photo"] == 1  # the astronaut
    assert r["arch"] == "bkstart"  # --arch wins over a shipped model of another network
    assert r["one_face_ms"] > 0 and r["faces_per_s_batch256"] > 0
    assert r["photo_640x480_ms"] > 0 and r["photo_640x480_eval1_ms"] > 0
    assert r["detector"] == "BlazeFaceDetector" and r["detect_640x480_ms"] > 0
    assert r["decode_640x480_ms"] > 0 and r["one_face_eval1_ms"] > 0
    assert r["detect_640x480_haar_ms"] > 0  # Haar's chain beside it, in the same run
    assert r["one_face_int8_ms"] > 0 and r["photo_640x480_int8_ms"] > 0  # on the CPU
    if importlib.util.find_spec("onnxruntime"):  # ONNX Runtime measured in the same run
        assert r["one_face_onnx_ms"] > 0 and r["faces_per_s_batch256_onnx"] > 0


def test_benchmark_video_tracks_the_face_of_every_frame(capsys, tiny_run):
    pytest.importorskip("cv2")
    r = _benchmark_json(capsys, "video", "--frames", "12", "--model", str(tiny_run))
    assert r["benchmark"] == "video" and r["frames"] == 12
    assert r["center_faces"] == r["eval1_faces"] == 12  # one face a frame, found in each
    assert r["center_frames_per_s"] > 0 and r["eval1_frames_per_s"] > 0


@pytest.mark.slow
def test_data_cli_on_real_file(real_fer):
    r = run_cli("data", "--data", str(real_fer), "--json")
    s = json.loads(r.stdout)["splits"]
    assert (s["Training"]["n"], s["PublicTest"]["n"]) == (28709, 3589)


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--port", "99999"], "argument --port: must be <= 65535"),
        (["serve", "--port", "-1"], "argument --port: must be >= 1"),
        (["serve", "--queue", "0"], "argument --queue: must be >= 1"),
        (["serve", "--max-upload-mb", "nan"], "argument --max-upload-mb: 'nan' is not a finite"),
        (["predict", "x.jpg", "--every", "0"], "argument --every: must be >= 1"),
        (["evaluate", "--threads", "-1"], "argument --threads: must be >= 1"),
        (["benchmark", "train", "--steps", "0"], "argument --steps: must be >= 1"),
        (["reproduce", "--epochs", "-3"], "argument --epochs: must be >= 1"),
    ],
)
def test_bad_numbers_are_usage_errors(capsys, args, message):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err
