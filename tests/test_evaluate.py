import json

import numpy as np
import pytest
import torch
from cli_run import run_cli
from safetensors.torch import load_file, save_file
from synth import write_csv

import ferkit
from ferkit.data.fer2013 import DataError, FerDataset, Split
from ferkit.evaluation.evaluate import confusion_matrix, evaluate, result_from_predictions


def test_confusion_and_per_class_accuracy():
    true = np.array([0, 0, 1, 3, 3, 3, 6])
    pred = np.array([0, 3, 1, 3, 3, 0, 6])
    cm = confusion_matrix(true, pred)
    assert cm[0, 3] == 1 and cm[3, 0] == 1 and cm.trace() == 5 and cm.sum() == 7
    r = result_from_predictions("PublicTest", "eval1", true, pred)
    assert r.accuracy == pytest.approx(5 / 7) and r.views == 10
    assert r.per_class_accuracy["angry"] == 0.5 and r.per_class_accuracy["happy"] == pytest.approx(
        2 / 3
    )
    assert np.isnan(r.per_class_accuracy["fear"])  # no such faces: undefined, not 0


def test_evaluate_writes_reports(tiny_run, tmp_path):
    out = tmp_path / "rep"
    few = write_csv(tmp_path / "few.csv", {"Training": 7, "PublicTest": 7, "PrivateTest": 7})
    r = run_cli(
        "evaluate",
        "--model",
        str(tiny_run),
        "--data",
        str(few),
        "--method",
        "all",
        "--out",
        str(out),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep == json.loads((out / "report.json").read_text())
    assert rep["model"] == {
        "arch": "bkstart",
        "loss": "svm",
        "params": 7_170_983,
        "path": str(tiny_run),
    }
    keys = {
        "split",
        "method",
        "n",
        "views",
        "accuracy",
        "per_class_accuracy",
        "confusion",
        "seconds",
        "calibration",
        "precision",
    }
    rows = rep["results"]
    assert [(x["split"], x["method"]) for x in rows] == [
        (s, m) for s in ("PublicTest", "PrivateTest") for m in ("center", "eval1", "eval2")
    ]
    for x in rows:
        assert set(x) == keys, set(x) ^ keys
        assert x["n"] == 7 and 0 <= x["accuracy"] <= 1, x
        assert np.asarray(x["confusion"]).shape == (7, 7) and np.sum(x["confusion"]) == 7
        assert list(x["per_class_accuracy"]) == list(ferkit.LABELS)
    assert [x["views"] for x in rows[:3]] == [1, 10, 648]
    md = (out / "report.md").read_text()
    assert "| true \\ predicted | angry | disgust |" in md and "PrivateTest, eval2" in md
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_api_matches_accuracy_by_hand(tiny_run, small_csv):
    model = ferkit.load_model(tiny_run)
    data = ferkit.data.fer2013.load_fer2013(small_csv)
    (res,) = evaluate(model, data, ["PublicTest"], ["center"], progress=False)
    # by hand, not through model.score: both preprocessing steps, the centre 42x42, the network
    faces = data.splits["PublicTest"].images.astype(np.float64)
    flat = faces.reshape(len(faces), -1)
    std = flat.std(1, keepdims=True)
    step1 = ((flat - flat.mean(1, keepdims=True)) * (3.125 / std)).reshape(faces.shape)
    step2 = (step1 - model.normalizer.mean.double().numpy()) / model.normalizer.std.double().numpy()
    x = torch.as_tensor(step2[:, None, 3:45, 3:45], dtype=torch.float32)
    with torch.no_grad():
        pred = model.net.eval()(x).argmax(1).numpy()
    assert res.accuracy == pytest.approx(float((pred == data.splits["PublicTest"].labels).mean()))


class _Interrupt(Exception):
    pass


def test_interrupted_evaluation_resumes_where_it_stopped(
    tiny_run, small_csv, tmp_path, monkeypatch
):
    from ferkit.evaluation import evaluate as ev

    monkeypatch.setattr(ev, "RESUME_SLICE", 16)  # 70 PublicTest faces: 5 slices
    model = ferkit.load_model(tiny_run)
    data = ferkit.data.fer2013.load_fer2013(small_csv)
    plain = evaluate(model, data, ["PublicTest"], ["eval1"], progress=False)
    scored, real_score = [], model.score

    def score_then_die(images, *args, **kwargs):  # the process "dies" in its third slice
        if len(scored) == 2:
            raise _Interrupt
        scored.append(len(images))
        return real_score(images, *args, **kwargs)

    monkeypatch.setattr(model, "score", score_then_die)
    kw = dict(progress=False, resume_dir=tmp_path / "partial", model_id="sha-A")
    with pytest.raises(_Interrupt):
        evaluate(model, data, ["PublicTest"], ["eval1"], **kw)
    assert np.load(tmp_path / "partial" / "scores-PublicTest-eval1.npz")["scores"].shape == (32, 7)
    monkeypatch.setattr(model, "score", real_score)
    calls = []
    monkeypatch.setattr(
        model, "score", lambda im, *a, **k: calls.append(len(im)) or real_score(im, *a, **k)
    )
    (resumed,) = evaluate(model, data, ["PublicTest"], ["eval1"], **kw)
    assert calls == [16, 16, 6]  # only the 38 faces not saved before the interruption
    assert resumed.confusion == plain[0].confusion and resumed.accuracy == plain[0].accuracy
    calls.clear()  # other weights: nothing of the saved scores is reused
    evaluate(model, data, ["PublicTest"], ["eval1"], **{**kw, "model_id": "sha-B"})
    assert sum(calls) == 70


def test_damaged_saved_scores_are_recomputed(tiny_run, small_csv, tmp_path):
    model = ferkit.load_model(tiny_run)
    data = ferkit.data.fer2013.load_fer2013(small_csv)
    (tmp_path / "scores-PublicTest-center.npz").write_bytes(b"PK\x03\x04 not a zip")
    kw = dict(progress=False, resume_dir=tmp_path, model_id="m")
    (res,) = evaluate(model, data, ["PublicTest"], ["center"], **kw)
    (plain,) = evaluate(model, data, ["PublicTest"], ["center"], progress=False)
    assert res.confusion == plain.confusion
    with pytest.raises(ValueError, match="model_id"):
        evaluate(model, data, ["PublicTest"], ["center"], progress=False, resume_dir=tmp_path)


def test_cli_resume_keeps_scores_tied_to_the_weights(tiny_run, small_csv, tmp_path):
    from ferkit.fermodel.files import file_sha256

    args = ["evaluate", "--model", str(tiny_run), "--data", str(small_csv), "--json"]
    args += ["--split", "PublicTest", "--method", "eval1", "--resume", str(tmp_path / "p")]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    with np.load(tmp_path / "p" / "scores-PublicTest-eval1.npz") as z:
        assert str(z["key"]).startswith(file_sha256(tiny_run / "model.safetensors"))
        assert z["scores"].shape == (70, 7)
    # the second run must take its figures from the saved scores: make those perfect
    saved = tmp_path / "p" / "scores-PublicTest-eval1.npz"
    with np.load(saved) as z:
        fields = dict(z)
    truth = ferkit.data.fer2013.load_fer2013(small_csv).splits["PublicTest"].labels
    fields["scores"] = np.eye(7, dtype=fields["scores"].dtype)[truth]
    np.savez(saved, **fields)
    assert json.loads(first.stdout)["results"][0]["accuracy"] < 1.0
    again = run_cli(*args)
    assert json.loads(again.stdout)["results"][0]["accuracy"] == 1.0
    fields["key"] = np.array("other weights")  # scores of other weights are not reused
    np.savez(saved, **fields)
    third = run_cli(*args)
    assert (
        json.loads(third.stdout)["results"][0]["accuracy"]
        == json.loads(first.stdout)["results"][0]["accuracy"]
    )


def test_warns_when_split_was_the_validation_split(tiny_run, small_csv, tmp_path):
    model = ferkit.load_model(tiny_run)
    model.meta.config["val_split"] = "PublicTest"
    data = ferkit.data.fer2013.load_fer2013(small_csv)
    with pytest.warns(UserWarning, match="validated .* on PublicTest"):
        evaluate(model, data, ["PublicTest"], ["center"], progress=False)


def test_not_a_ferkit_model(small_csv, tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00" * 64)
    r = run_cli("evaluate", "--model", str(bad), "--data", str(small_csv))
    assert (
        r.returncode == 1 and "not a safetensors file" in r.stderr and "Traceback" not in r.stderr
    )
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    r = run_cli("evaluate", "--model", str(other), "--data", str(small_csv))
    assert r.returncode == 1 and "not a ferkit model" in r.stderr


def test_model_for_another_input_size(tiny_run, small_csv, tmp_path):
    from safetensors import safe_open

    with safe_open(str(tiny_run / "model.safetensors"), "pt") as f:
        meta = dict(f.metadata())
    meta["input_size"] = "48"
    p = tmp_path / "m48.safetensors"
    save_file(load_file(tiny_run / "model.safetensors"), str(p), metadata=meta)
    r = run_cli("evaluate", "--model", str(p), "--data", str(small_csv))
    assert r.returncode == 1 and "48x48 input, not 42x42" in r.stderr


def test_missing_split_lists_the_present_ones(tiny_run, small_csv):
    r = run_cli("evaluate", "--model", str(tiny_run), "--data", str(small_csv), "--split", "Nope")
    assert r.returncode == 1
    assert "no split 'Nope' (splits present: Training, PublicTest, PrivateTest)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_empty_split_is_an_error(tiny_run):
    empty = Split(np.zeros((0, 48, 48), np.uint8), np.zeros(0, np.int64))
    data = FerDataset("x.csv", "csv", {"PublicTest": empty})
    with pytest.raises(DataError, match="split 'PublicTest' is empty"):
        evaluate(ferkit.load_model(tiny_run), data, progress=False)


def test_no_shipped_model_yet_is_a_clear_error(small_csv, monkeypatch, capsys):
    from ferkit.cli.main import main

    monkeypatch.setattr(ferkit.fermodel.files, "shipped_model_path", lambda: None)
    assert main(["evaluate", "--data", str(small_csv)]) == 1
    assert "ships no trained model" in capsys.readouterr().err


def test_by_view_breaks_eval2_down_at_no_cost_to_its_figures(tiny_run, tmp_path):
    model = ferkit.load_model(tiny_run)
    few = write_csv(tmp_path / "few.csv", {"Training": 7, "PublicTest": 9})
    data = ferkit.data.fer2013.load_fer2013(few)
    (plain,) = evaluate(model, data, ["PublicTest"], ["eval2"], progress=False)
    for kw in ({}, {"resume_dir": tmp_path / "partial", "model_id": "sha"}):
        (res,) = evaluate(
            model, data, ["PublicTest"], ["eval2"], progress=False, by_view=True, **kw
        )
        assert res.confusion == plain.confusion  # the same Eval2
        b = res.by_view
        assert list(b["side"]) == ["48", "50", "52", "54"]
        assert list(b["angle"])[0] == "-45" and len(b["angle"]) == 9
        assert list(b["max_angle"]) == ["0", "11.25", "22.5", "33.75", "45"]
        assert b["max_angle"]["45"] == res.accuracy  # every view: Eval2 itself
        assert b["max_angle"]["0"] == b["angle"]["0"]
    assert plain.by_view is None and "by_view" not in plain.to_dict()
    out = tmp_path / "rep"
    r = run_cli(
        "evaluate", "--model", str(tiny_run), "--data", str(few), "--method", "eval2",
        "--by-view", "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "max_angle  0: " in r.stdout and "45: " in r.stdout
    rep = json.loads((out / "report.json").read_text())
    assert rep["results"][0]["by_view"]["side"] == pytest.approx(b["side"])
    assert "Accuracy from the views of one rotation (degrees):" in (out / "report.md").read_text()


def test_no_test_split_is_an_error_and_writes_nothing(tiny_run, tmp_path):
    only_train = write_csv(tmp_path / "train-only.csv", {"Training": 14})
    out = tmp_path / "report"
    r = run_cli("evaluate", "--model", str(tiny_run), "--data", str(only_train), "--out", str(out))
    assert r.returncode == 1 and "nothing to evaluate: no test split" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_precision_is_used_recorded_and_keeps_saved_scores_apart(
    tiny_run, small_csv, tmp_path, monkeypatch
):
    from ferkit import device

    model = ferkit.load_model(tiny_run)
    data = ferkit.data.fer2013.load_fer2013(small_csv)
    seen = []  # what the network computed in, as autocast sets it
    model.net.register_forward_hook(
        lambda *_: seen.append(
            torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        )
    )

    def run(precision, **kw):
        seen.clear()
        (r,) = evaluate(
            model, data, ["PublicTest"], ["center"], progress=False, precision=precision, **kw
        )
        return r

    assert run("fp32").precision == "fp32" and set(seen) == {None}
    assert run("bf16").precision == "bf16" and set(seen) == {torch.bfloat16}
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    assert run("auto").precision == "bf16"
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: False)
    assert run("auto").precision == "fp32" and set(seen) == {None}
    # saved scores of one precision are not reused for another
    kw = dict(resume_dir=tmp_path / "p", model_id="m")
    run("bf16", **kw)
    run("bf16", **kw)
    assert seen == []  # all from the saved scores
    run("fp32", **kw)
    assert len(seen) > 0
    # int8 and ONNX Runtime networks compute as they are, whatever is asked
    model.int8 = True
    assert model.compute_precision(torch.bfloat16) == "int8"
    model.int8, model.backend = False, "onnx"
    assert model.compute_precision(torch.bfloat16) == "fp32"


def test_cli_precision_reaches_the_report(tiny_run, small_csv):
    args = ["evaluate", "--model", str(tiny_run), "--data", str(small_csv), "--json"]
    r = run_cli(*args, "--split", "PublicTest", "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["precision"] == "fp32"
    bad = run_cli(*args, "--precision", "fp64")
    assert bad.returncode == 2 and "fp64" in bad.stderr
