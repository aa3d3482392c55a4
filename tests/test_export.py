import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import ferkit
from ferkit.cli import main


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
    assert m16.meta.card == {"data": "synthetic"}
    faces = torch.randint(0, 256, (8, 48, 48), dtype=torch.uint8)
    assert torch.allclose(m16.score(faces), m32.score(faces), atol=0.05)


def test_fp16_export_refused_over_tolerance(tiny_run, small_csv, tmp_path, monkeypatch):
    import ferkit.export as ex

    monkeypatch.setattr(
        ex, "_compare", lambda *a: ex.ExportCheck("PublicTest", "center", 0.70, 0.69)
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
    main(["export", "--model", str(tiny_run), "--out", str(weights / "bkvgg12.safetensors")])
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
