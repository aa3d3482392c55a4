"""int8 inference: every network quantises, a calibration file ties itself to its weights, the
int8 model scores like the fp32 one, and the commands take --int8."""

import json
import shutil

import numpy as np
import pytest
import torch
from synth import synth_faces

import ferkit.fermodel.int8 as fq
from ferkit.cli.main import main
from ferkit.data.preprocess import Normalizer
from ferkit.fermodel.files import (
    CALIBRATION_FORMAT,
    ModelFileError,
    load_model,
    meta_dict,
    save_model,
)
from ferkit.fermodel.model import FerModel, ModelMeta
from ferkit.models import create_model, list_models
from ferkit.predict.recognizer import Recognizer


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the tiny run, so calibrations written here stay here."""
    return shutil.copytree(tiny_run, tmp_path / "run")


@pytest.mark.parametrize("arch", list_models())
def test_every_network_quantises_and_scores_like_fp32(arch):
    torch.manual_seed(0)
    faces, _ = synth_faces(64)
    norm = Normalizer.fit(faces)
    model = FerModel(create_model(arch), norm, ModelMeta(arch=arch, loss="svm")).eval()
    ranges = fq.calibrate(model, faces)
    assert ranges and all(lo <= hi for lo, hi in ranges.values())
    q = fq.quantize(model, ranges)
    assert q.int8 and not model.int8
    for method in ("center", "eval1"):
        a, b = q.score(faces, method), model.score(faces, method)
        assert a.shape == b.shape == (64, 7)
        corr = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
        assert corr > 0.98, (method, corr)


def test_quantize_command_writes_a_calibration_that_int8_loads(run, small_csv, capsys):
    assert main(["quantize", "--model", str(run), "--data", str(small_csv), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "PublicTest center: fp32" in err and "int8" in err
    cal_file = run / "model.int8.json"
    cal = json.loads(cal_file.read_text())
    assert cal["format"] == CALIBRATION_FORMAT and cal["faces"] == 700  # all 700 < 2048
    assert cal["check"]["split"] == "PublicTest"

    fp32, int8 = load_model(run), load_model(run, int8=True)
    # the recorded check is what the two models really score, not a figure that passes
    from ferkit.data.fer2013 import load_fer2013
    from ferkit.evaluation.evaluate import evaluate

    data = load_fer2013(small_csv)
    for precision, model in (("fp32", fp32), ("int8", int8)):
        (r,) = evaluate(model, data, ["PublicTest"], [cal["check"]["method"]], progress=False)
        assert cal["check"][precision] == pytest.approx(r.accuracy), precision
    assert int8.int8 and set(cal["ranges"]) == set(fq.calibrate(fp32, synth_faces(8)[0]))
    info = meta_dict(int8)
    assert info["precision"] == "int8" and info["params"] == meta_dict(fp32)["params"]

    assert (
        main(["evaluate", "--model", str(run), "--data", str(small_csv), "--int8", "--json"]) == 0
    )
    acc = json.loads(capsys.readouterr().out)["results"][0]["accuracy"]
    assert acc == pytest.approx(cal["check"]["int8"], abs=1e-9)  # PublicTest, centre: the same


def test_int8_recognizer_labels_faces_as_the_cli_does(run, small_csv, tmp_path, capsys):
    from PIL import Image

    assert main(["quantize", "--model", str(run), "--data", str(small_csv), "--no-check"]) == 0
    faces, _ = synth_faces(3, seed=5)
    paths = []
    for i, f in enumerate(faces):
        paths.append(tmp_path / f"face{i}.png")
        Image.fromarray(f).save(paths[-1])
    rec = Recognizer(str(run), int8=True)
    assert rec.model.int8 and rec.model.norm_mean.device.type == "cpu"
    api = [rec.predict(str(p), detect=False)[0].label for p in paths]
    capsys.readouterr()
    args = ["predict", *map(str, paths), "--model", str(run), "--int8", "--no-detect", "--json"]
    assert main(args) == 0
    cli = [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()]
    assert cli == api


def test_int8_without_a_calibration_says_how_to_make_one(run, small_csv, capsys):
    code = main(["evaluate", "--model", str(run), "--data", str(small_csv), "--int8"])
    assert code == 1
    err = capsys.readouterr().err
    assert "model.int8.json" in err and "ferkit quantize --model" in err


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", '{"ranges": 3}', "BROKEN_RANGES", "INVERTED_RANGES"]
)
def test_a_damaged_calibration_is_named_not_a_traceback(run, small_csv, text, capsys):
    assert main(["quantize", "--model", str(run), "--data", str(small_csv), "--no-check"]) == 0
    path = run / "model.int8.json"
    cal = json.loads(path.read_text())
    if text == "BROKEN_RANGES":
        text = json.dumps(cal | {"ranges": {k: "x" for k in cal["ranges"]}})
    elif text == "INVERTED_RANGES":
        text = json.dumps(
            cal | {"ranges": {k: [hi, lo - 1] for k, (lo, hi) in cal["ranges"].items()}}
        )
    path.write_text(text)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(run), "--data", str(small_csv), "--int8"]) == 1
    assert "model.int8.json: not an int8 calibration" in capsys.readouterr().err


def test_a_calibration_of_other_weights_is_refused(run, small_csv):
    assert main(["quantize", "--model", str(run), "--data", str(small_csv), "--no-check"]) == 0
    model = load_model(run)
    with torch.no_grad():
        next(model.net.parameters()).add_(0.01)
    save_model(model, run / "model.safetensors")  # retrained weights, old calibration
    with pytest.raises(ModelFileError, match="made for other weights"):
        load_model(run, int8=True)


def test_nothing_written_when_int8_loses_accuracy(run, small_csv, monkeypatch, capsys):
    real = fq.calibrate

    def squeezed(model, faces, batch=256):  # ranges 1/100 of the truth: most activations clip
        return {k: [lo / 100, hi / 100] for k, (lo, hi) in real(model, faces, batch).items()}

    monkeypatch.setattr(fq, "calibrate", squeezed)
    args = ["quantize", "--model", str(run), "--data", str(small_csv), "--quiet"]
    assert main([*args, "--tolerance", "0"]) == 1
    assert "no calibration written" in capsys.readouterr().err
    assert not (run / "model.int8.json").exists()


def test_int8_models_are_not_saved_and_need_a_path(run, tmp_path):
    fp32 = load_model(run)
    q = fq.quantize(fp32, fq.calibrate(fp32, synth_faces(16)[0]))
    with pytest.raises(ValueError, match="fp32 weights"):
        save_model(q, tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="int8=True"):
        Recognizer(fp32, int8=True)
    assert Recognizer(q).model is q


def test_server_says_which_precision_runs(run, small_csv):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from ferkit.serve import ServeConfig, create_app

    assert main(["quantize", "--model", str(run), "--data", str(small_csv), "--no-check"]) == 0
    for int8, precision in ((False, "fp32"), (True, "int8")):
        client = TestClient(create_app(Recognizer(str(run), int8=int8), ServeConfig()))
        assert client.get("/v1/model").json()["precision"] == precision


def test_int8_is_refused_off_the_cpu_before_any_work(run, small_csv):
    assert main(["quantize", "--model", str(run), "--data", str(small_csv), "--no-check"]) == 0
    with pytest.raises(ModelFileError, match="CPU only"):
        load_model(run, device="cuda", int8=True)  # refused before CUDA is touched
