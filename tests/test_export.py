import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import ferkit
from ferkit.cli.main import main


def test_fp16_export_is_half_the_size_and_loads(tiny_run, small_csv, tmp_path):
    out = tmp_path / "m16.safetensors"
    assert (
        main(
            [
                "export",
                "--model",
                str(tiny_run),
                "--out",
                str(out),
                "--card",
                '{"data": "synthetic"}',
                "--verify-data",
                str(small_csv),
                "--tolerance",
                "100",
            ]
        )
        == 0
    )
    full = (tiny_run / "model.safetensors").stat().st_size
    assert out.stat().st_size < 0.55 * full
    with safe_open(str(out), "pt") as f:
        assert f.get_tensor("classifier.1.weight").dtype == torch.float16
        assert f.get_tensor("norm.mean").dtype == torch.float32  # normalisation stays exact
    m16, m32 = ferkit.load_model(out), ferkit.load_model(tiny_run)
    card = m16.meta.card
    assert card["data"] == "synthetic"  # --card overrides a field
    assert card["weights"] == "fp16" and card["model"] == f"{m32.meta.arch} + {m32.meta.loss}"
    assert card["fp16_check"]["split"] == "PublicTest" and card["limits"] and card["terms_of_use"]
    assert card["training"]["epochs"] == m32.meta.config["epochs"]
    text = out.with_suffix(".md").read_text()  # and the card beside the weights, as text
    assert text.startswith("# ferkit model card") and "## Known limits" in text
    faces = torch.randint(0, 256, (8, 48, 48), dtype=torch.uint8)
    assert torch.allclose(m16.score(faces), m32.score(faces), atol=0.05)


def test_card_takes_a_reproduce_summary(tiny_run, tmp_path):
    summary = {
        "command": "ferkit train --data x.csv --out runs/x",
        "train_seconds": 7200,
        "machine": "a test machine",
        "results": [
            {"split": "PublicTest", "method": m, "accuracy": a}
            for m, a in (("center", 0.6), ("eval2", 0.65))
        ],
    }
    (tmp_path / "s.json").write_text(json.dumps(summary))
    out = tmp_path / "m.safetensors"
    args = ["export", "--model", str(tiny_run), "--out", str(out), "--dtype", "fp32"]
    assert main([*args, "--summary", str(tmp_path / "s.json")]) == 0
    card = ferkit.load_model(out).meta.card
    assert card["accuracy"] == {"PublicTest": {"center": 0.6, "eval2": 0.65}}
    assert card["wall_time_hours"] == 2.0 and card["machine"] == "a test machine"
    assert "`ferkit train --data x.csv --out runs/x`" in out.with_suffix(".md").read_text()
    (tmp_path / "bad.json").write_text("{not json")
    assert main([*args, "--summary", str(tmp_path / "bad.json")]) == 2


def test_fp16_export_refused_over_tolerance(tiny_run, small_csv, tmp_path, monkeypatch):
    import ferkit.export.workflows as ex

    monkeypatch.setattr(
        ex, "_compare", lambda *a: ex.PrecisionCheck("PublicTest", "center", "fp16", 0.70, 0.69)
    )
    out = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match="by 1.00 points"):
        ex.export_model(tiny_run, out, verify_data=str(small_csv))
    assert not out.exists()


def test_wheel_ships_the_model_and_the_page(tiny_run, tmp_path):
    """Build the wheel with a model in ferkit/weights/, install it into a fresh folder and load."""
    repo = Path(__file__).resolve().parents[1]
    src = tmp_path / "src-copy"
    subprocess.run(["git", "clone", "-q", str(repo), str(src)], check=True)
    subprocess.run(["cp", "-r", str(repo / "src"), str(src)], check=True)  # uncommitted work too
    weights = src / "src" / "ferkit" / "weights"
    weights.mkdir(exist_ok=True)
    out = str(weights / "bkvgg12.safetensors")
    main(["export", "--model", str(tiny_run), "--out", out, "--overwrite"])
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
    )
    (wheel,) = dist.glob("ferkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ferkit/weights/bkvgg12.safetensors" in names and "ferkit/serve/static/app.js" in names
    assert "ferkit/weights/bkvgg12.md" in names  # the model card travels with the weights
    assert "ferkit/samples/astronaut.jpg" in names  # the README's first command needs it
    for part in ("short-range.safetensors", "full-range.safetensors"):
        assert f"ferkit/weights/blazeface-{part}" in names
    assert "ferkit/weights/BLAZEFACE-NOTICE.md" in names  # its licence notice with it
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import ferkit, sys; m = ferkit.load_model(); "
        "print(ferkit.__file__); print(m.meta.arch, sum(p.numel() for p in m.net.parameters()))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    where, info = r.stdout.splitlines()
    assert where.startswith(str(target)) and info == "bkstart 7170983"


def test_fp16_check_reuses_fp32_figures_of_the_same_weights_only(tiny_run, small_csv, tmp_path):
    from ferkit.export.workflows import export_model
    from ferkit.fermodel.files import file_sha256

    sentinel = {"split": "PublicTest", "method": "center", "accuracy": 0.123, "precision": "fp32"}
    same = {"model_sha256": file_sha256(tiny_run / "model.safetensors"), "results": [sentinel]}
    other = {**same, "model_sha256": "0" * 64}
    kw = dict(verify_data=str(small_csv), tolerance_points=100.0)
    reused = export_model(tiny_run, tmp_path / "a.safetensors", summary=same, **kw)
    assert reused.fp32 == 0.123  # not measured again
    measured = export_model(tiny_run, tmp_path / "b.safetensors", summary=other, **kw)
    assert measured.fp32 != 0.123 and measured.other == reused.other
    # a figure computed in bf16 is not fp32's; one that does not say is fp32's only when its
    # machine had no bf16 instructions
    unsaid = {k: v for k, v in sentinel.items() if k != "precision"}
    for i, (result, machine, reuse) in enumerate(
        (
            ({**sentinel, "precision": "bf16"}, "2-core X (x86_64, bf16), 2 threads", False),
            (unsaid, "2-core X (x86_64, bf16), 2 threads", False),
            (unsaid, "2-core X (x86_64, no bf16), 2 threads", True),
        )
    ):
        summary = {**same, "machine": machine, "results": [result]}
        c = export_model(tiny_run, tmp_path / f"{i}.safetensors", summary=summary, **kw)
        assert (c.fp32 == 0.123) == reuse, (result, machine)


def test_precision_checks_compute_in_fp32_on_a_bf16_cpu(tiny_run, small_csv, monkeypatch):
    import ferkit.evaluation.evaluate as ev
    from ferkit import device
    from ferkit.data.fer2013 import load_fer2013
    from ferkit.export.workflows import check_precision

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)  # auto would be bf16
    asked, real = [], ev.evaluate
    monkeypatch.setattr(
        ev, "evaluate", lambda *a, **k: asked.append(k.get("precision", "auto")) or real(*a, **k)
    )
    model = ferkit.load_model(tiny_run)
    c = check_precision(model, model, "fp16", load_fer2013(small_csv), "PublicTest", "center")
    assert asked == ["fp32", "fp32"] and c.fp32 == c.other


def test_card_says_which_procedure_trained_the_weights(tiny_run, tmp_path):
    from ferkit.export.workflows import export_model, training_procedure

    assert training_procedure(ferkit.load_model(tiny_run).meta.config).startswith("the paper's")
    fast = {"norm_layers": "bn", "optimizer": "adamw", "lr": 0.001, "weight_decay": 0.05}
    text = training_procedure({**fast, "ema": 0.998, "head_init": "zero"})
    assert text.startswith("fast: train-time BatchNorm folded")
    assert "adamw (lr 0.001, weight decay 0.05)" in text and "weight average 0.998" in text
    out = tmp_path / "m.safetensors"
    export_model(tiny_run, out, "fp32")
    card = ferkit.load_model(out).meta.card
    assert card["procedure"].startswith("the paper's") and card["training"]["optimizer"] == "sgd"


def test_reexporting_fp16_weights_keeps_their_check_and_fits_a_missing_temperature(
    tiny_run, small_csv, tmp_path
):
    """A shipped fp16 file compared with its own fp16 rounding would measure nothing: the check
    made at its first export stays on the card, and a file without a temperature gets one."""
    from safetensors.torch import load_file, save_file

    from ferkit.export.workflows import export_model
    from ferkit.fermodel.files import read_model_file

    def stored_in_fp16(path) -> bool:
        return read_model_file(path).fp16

    first = tmp_path / "first.safetensors"
    check = export_model(tiny_run, first, verify_data=str(small_csv), tolerance_points=100.0)
    assert check is not None and stored_in_fp16(first) and not stored_in_fp16(tiny_run)
    with safe_open(str(first), "pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "temperature"}
    bare = tmp_path / "bare.safetensors"  # as the shipped file was: fp16, no temperature
    save_file(load_file(first), str(bare), meta)
    assert ferkit.load_model(bare).meta.temperature is None
    again = tmp_path / "again.safetensors"
    assert export_model(bare, again, verify_data=str(small_csv)) is None
    model = ferkit.load_model(again)
    assert model.meta.card["fp16_check"] == check.to_dict()
    assert model.meta.temperature is not None and model.meta.temperature > 0


@pytest.mark.parametrize("path", ["fp16", "onnx", "int8"])
def test_each_export_path_opens_the_model_file_once_and_reads_the_data_once(
    path, tiny_run, small_csv, tmp_path, monkeypatch
):
    """An export used to open its model file three times and load its data twice."""
    import builtins
    import io
    import shutil

    import safetensors

    import ferkit.data.fer2013 as fer

    weights = tmp_path / "run" / "model.safetensors"  # a copy: quantize writes beside it
    weights.parent.mkdir()
    shutil.copyfile(tiny_run / "model.safetensors", weights)
    opened, reads = [], []
    real_open, real_safe_open, real_load = builtins.open, safetensors.safe_open, fer.load_fer2013

    def counting_open(file, *a, **k):
        if isinstance(file, str | os.PathLike) and Path(file).resolve() == weights:
            opened.append("open")
        return real_open(file, *a, **k)

    def counting_safe_open(file, *a, **k):
        if Path(file).resolve() == weights:
            opened.append("safe_open")
        return real_safe_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)  # pathlib's
    monkeypatch.setattr(safetensors, "safe_open", counting_safe_open)
    monkeypatch.setattr(fer, "load_fer2013", lambda *a, **k: reads.append(1) or real_load(*a, **k))
    from ferkit.export.workflows import export_model, export_onnx, quantize_model

    data = str(small_csv)
    if path == "fp16":
        export_model(weights, tmp_path / "m.safetensors", verify_data=data, tolerance_points=100)
    elif path == "onnx":
        pytest.importorskip("onnxruntime")
        export_onnx(weights, tmp_path / "m.onnx", verify_data=data)
    else:
        quantize_model(weights, data, faces=32, tolerance=100, progress=False)
    assert len(opened) == 1, opened
    assert len(reads) == 1
