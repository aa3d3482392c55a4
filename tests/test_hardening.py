"""The rules of issue 35 (docs/CONTRACT.md "Files" and "Run folder"), one section per class:
nothing a user owns is replaced, options are bounded, run folders lock and know their data.
(Odd paths: test_paths.py; the server's timeouts: test_serve.py.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from cli_run import run_cli
from synth import tiny_config, write_csv

from ferkit.atomic import atomic_path, atomic_write
from ferkit.training.loop import train
from ferkit.training.run_folder import RunFolder, run_lock

# --- 1. a user's file is never replaced or truncated -------------------------------------------


def test_export_refuses_its_own_input(tiny_run, tmp_path):
    model = tmp_path / "m.safetensors"
    shutil.copy(tiny_run / "model.safetensors", model)
    before = model.read_bytes()
    for extra in ([], ["--overwrite"]):  # not even when told to overwrite
        r = run_cli("export", "--model", str(model), "--out", str(model), *extra)
        assert r.returncode == 2 and "is an input of this command" in r.stderr
    link = tmp_path / "same.safetensors"
    link.symlink_to(model)
    r = run_cli("export", "--model", str(model), "--out", str(link), "--overwrite")
    assert r.returncode == 2 and "is an input of this command" in r.stderr
    assert model.read_bytes() == before


@pytest.mark.parametrize("fmt", ["safetensors", "onnx"])
def test_export_refuses_an_existing_output_without_overwrite(tiny_run, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    out = tmp_path / f"x.{fmt}"
    out.write_bytes(b"mine")
    args = ["export", "--model", str(tiny_run), "--out", str(out), "--format", fmt]
    r = run_cli(*args)
    assert r.returncode == 2 and "already exists (pass --overwrite" in r.stderr
    assert out.read_bytes() == b"mine"
    r = run_cli(*args, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() != b"mine"


def test_export_defaults_to_the_shipped_model(tmp_path):
    from ferkit.fermodel.files import shipped_model_path

    if shipped_model_path() is None:
        pytest.skip("this build ships no model")
    out = tmp_path / "shipped.safetensors"
    r = run_cli("export", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.exists() and out.with_suffix(".md").exists()


@pytest.mark.parametrize("command", ["data", "augment-preview"])
def test_other_writers_refuse_an_existing_output(small_csv, tmp_path, command):
    out = tmp_path / ("x.npz" if command == "data" else "x.png")
    out.write_bytes(b"mine")
    flag = "--save" if command == "data" else "--out"
    r = run_cli(command, "--data", str(small_csv), flag, str(out))
    assert r.returncode == 2 and "already exists (pass --overwrite" in r.stderr
    assert out.read_bytes() == b"mine"
    r = run_cli(command, "--data", str(small_csv), flag, str(small_csv), "--overwrite")
    assert r.returncode == 2 and "is an input of this command" in r.stderr
    r = run_cli(command, "--data", str(small_csv), flag, str(out), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() != b"mine"


def test_quantize_refuses_to_replace_a_calibration_without_overwrite(tiny_run, small_csv):
    from ferkit.fermodel.files import calibration_path

    cal = calibration_path(tiny_run)
    cal.write_text("{}")
    try:
        r = run_cli("quantize", "--model", str(tiny_run), "--data", str(small_csv), "--no-check")
        assert r.returncode == 2 and "already exists (pass --overwrite" in r.stderr
        assert cal.read_text() == "{}"
    finally:
        cal.unlink()


def test_a_short_write_is_an_error_and_leaves_the_old_file(tmp_path):
    """A writer that hands the descriptor to C code (PIL's encoders) can lose bytes on a full
    disk without an error: the size check catches it."""
    target = tmp_path / "photo.jpg"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="incomplete write"), atomic_write(target) as fh:
        fh.write(b"x" * 10_000)
        fh.flush()
        os.ftruncate(fh.fileno(), 4096)  # what a lost write leaves
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["photo.jpg"]


def test_atomic_path_publishes_whole_files_only(tmp_path):
    target = tmp_path / "clip.annotated.mp4"
    with atomic_path(target) as work:
        assert work.suffix == ".mp4" and work.parent == tmp_path and work != target
        work.write_bytes(b"frames")
        assert not target.exists()
    assert target.read_bytes() == b"frames"
    with pytest.raises(RuntimeError), atomic_path(target) as work:
        work.write_bytes(b"half")
        raise RuntimeError("the writer died")
    with pytest.raises(OSError, match="nothing was written"), atomic_path(target):
        pass
    assert target.read_bytes() == b"frames"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


# --- 3. options are bounded, conflicts are usage errors ----------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train", "--threads", "100000"], "--threads: must be <="),
        (["train", "--batch-size", "10000000"], "--batch-size: must be <="),
        (["train", "--no-augment", "--augment-strength", "0.5"], "--augment-strength has no"),
        (["predict", "x.jpg", "--margin", "1e308"], "--margin: must be <="),
        (["predict", "x.jpg", "--max-megapixels", "1e308"], "--max-megapixels: must be <="),
        (["predict", "x.jpg", "--workers", "4"], "--workers is for --engine ray"),
        (["predict", "x.jpg", "--address", "auto"], "--address is for --engine ray"),
        (["serve", "--workers", "100000"], "--workers: must be <="),
        (["evaluate", "--data", "d.csv", "--threads", "100000"], "--threads: must be <="),
        (["train", "--seed", str(10**20)], "--seed: must be <="),
        (["augment-preview", "--data", "d.csv", "--out", "x.png", "--faces", "10000000"], "<= 64"),
        (["quantize", "--data", "d.csv", "--faces", "10000000"], "--faces: must be <="),
        (["benchmark", "serve", "--clients", "1000000"], "--clients: must be <="),
    ],
)
def test_unbounded_or_conflicting_options_are_usage_errors(tmp_path, args, says):
    if args[0] == "train":
        args = [*args, "--data", "d.csv", "--out", str(tmp_path / "run")]
    r = run_cli(*args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_recorded_combinations_warn_and_train(small_csv, tmp_path):
    """--nesterov with AdamW does nothing, but every AdamW recipe of reproduce records it."""
    run = tmp_path / "run"
    r = run_cli(
        *("train", "--data", str(small_csv), "--out", str(run), "--arch", "bkstart"),
        *("--epochs", "1", "--batch-size", "64", "--threads", "1", "--quiet"),
        *("--optimizer", "adamw", "--nesterov", "--norm-layers", "bn"),
    )
    assert r.returncode == 0, r.stderr
    assert "warning: --nesterov does nothing without --optimizer sgd" in r.stderr


# --- 4. run folders: a lock, the data's identity, paths, a full disk ---------------------------


def test_a_second_train_in_a_busy_run_folder_is_refused(small_csv, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run):  # what a running `ferkit train` holds
        r = run_cli("train", "--data", str(small_csv), "--out", str(run), "--epochs", "1")
    assert r.returncode == 2 and "another ferkit train is working in this run folder" in r.stderr
    assert list(run.iterdir()) == []  # nothing written by the refused run


def _one_epoch(data: Path, run: Path, **changes):
    return train(tiny_config(data, run, epochs=1, arch="bkstart", **changes))


def test_resume_refuses_other_data_and_takes_the_same_faces_anywhere(tmp_path, monkeypatch):
    data = write_csv(tmp_path / "fer.csv", {"Training": 300, "PublicTest": 20})
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    _one_epoch(Path("fer.csv"), run)  # a relative path, as a user types it
    # the same faces, moved and saved in another format: resumes
    moved = tmp_path / "elsewhere" / "fer.npz"
    moved.parent.mkdir()
    assert run_cli("data", "--data", str(data), "--save", str(moved)).returncode == 0
    # from another folder, without --data: the run stored the absolute path
    monkeypatch.chdir(moved.parent)
    r = run_cli("train", "--resume", str(run), "--epochs", "2")
    assert r.returncode == 0, r.stderr
    r = run_cli("train", "--resume", str(run), "--epochs", "3", "--data", str(moved))
    assert r.returncode == 0, r.stderr
    # one label changed: refused, and the run is left as it was
    lines = data.read_text().splitlines()
    first = lines[1].split(",")
    first[0] = str((int(first[0]) + 1) % 7)
    data.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    before = RunFolder(run).read_metrics()
    r = run_cli("train", "--resume", str(run), "--epochs", "4", "--data", str(data))
    assert r.returncode == 1 and "not the data" in r.stderr and "began on" in r.stderr
    assert RunFolder(run).read_metrics() == before


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_full_disk_says_how_to_recover(small_csv, tmp_path, monkeypatch, fail_at):
    """The checkpoint cannot be written (torch reports ENOSPC as a RuntimeError): one clear
    line saying what to do, and the folder is left so that the advice works."""
    real_save, calls = torch.save, []

    def save(obj, f, *a, **k):
        if isinstance(obj, dict) and "optimizer" in obj:
            calls.append(obj["epoch"])
            if len(calls) == fail_at:
                raise RuntimeError("[enforce fail at inline_container.cc:603] file write failed")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    run = tmp_path / "run"
    r = run_cli(
        *("train", "--data", str(small_csv), "--out", str(run), "--arch", "bkstart"),
        *("--epochs", "3", "--batch-size", "64", "--threads", "1", "--quiet", "--lr", "0.002"),
        *("--checkpoint-minutes", "0"),
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "could not be written (" in r.stderr and "file write failed" in r.stderr
    monkeypatch.setattr(torch, "save", real_save)
    if fail_at == 1:
        assert "start again with --overwrite" in r.stderr
        again = ["--out", str(run), "--overwrite", "--data", str(small_csv), "--arch", "bkstart"]
        r = run_cli("train", *again, "--epochs", "1", "--batch-size", "64", "--lr", "0.002")
    else:
        assert f"ferkit train --resume {run}` continues after epoch 1" in r.stderr
        r = run_cli("train", "--resume", str(run))
    assert r.returncode == 0, r.stderr
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_diverged_first_epoch_points_at_nothing_it_removed(small_csv, tmp_path):
    run = tmp_path / "run"
    r = run_cli(
        *("train", "--data", str(small_csv), "--out", str(run), "--arch", "bkstart"),
        *("--epochs", "2", "--batch-size", "64", "--threads", "1", "--quiet", "--lr", "1e30"),
    )
    assert r.returncode == 1 and "the learning rate is too high" in r.stderr
    assert "nothing of this run was kept" in r.stderr and "checkpoint.pt" not in r.stderr
    assert not run.exists()


# --- 6. smaller ------------------------------------------------------------------------------


def test_a_labels_csv_from_a_spreadsheet_is_read(tmp_path):
    from ferkit.predict.files import read_labels

    p = tmp_path / "labels.csv"
    p.write_bytes(b"\xef\xbb\xbffile,label\r\na.jpg,happy\r\n")
    assert read_labels(p)["a.jpg"] == "happy"


def test_limit_makes_a_smoke_run_on_a_sample_of_training(small_csv, tmp_path):
    run = tmp_path / "run"
    r = run_cli(
        *("train", "--data", str(small_csv), "--out", str(run), "--arch", "bkstart"),
        *("--epochs", "1", "--batch-size", "64", "--threads", "1", "--limit", "200"),
    )
    assert r.returncode == 0, r.stderr
    assert "fitted on the 20 validation faces" in r.stderr  # 10 % of the 200, not of 700
    import ferkit

    assert ferkit.load_model(run).meta.config["limit"] == 200


def test_a_closed_pipe_ends_predict_quietly(tiny_run, tmp_path):
    import subprocess

    from cli_run import ferkit_cmd

    from ferkit.images import sample_photo

    for k in range(40):
        shutil.copy(sample_photo(), tmp_path / f"p{k:02d}.jpg")
    cmd = " ".join([*ferkit_cmd("predict", str(tmp_path), "--model", str(tiny_run)), "--json"])
    r = subprocess.run(f"{cmd} | head -1", shell=True, capture_output=True, text=True, timeout=300)
    assert r.stdout.count("\n") == 1
    assert "Broken pipe" not in r.stderr and "Traceback" not in r.stderr


def test_messages_never_share_the_progress_bars_line(tiny_run, tmp_path):
    import re

    from ferkit.images import sample_photo

    for k in range(3):
        shutil.copy(sample_photo(), tmp_path / f"p{k}.jpg")
    (tmp_path / "p1.jpg").write_bytes(b"not a photo")
    r = run_cli("predict", str(tmp_path), "--model", str(tiny_run))
    assert r.returncode == 1 and "p1.jpg: unreadable image" in r.stderr
    assert re.search(r"[^\n\r]ferkit: ", r.stderr) is None, r.stderr


def test_the_sample_photo_ships_and_is_recognised(tiny_run):
    r = run_cli("predict", "--sample", "--model", str(tiny_run))
    assert r.returncode == 0, r.stderr
    assert "astronaut.jpg: " in r.stdout and " at x=" in r.stdout


# --- 5. (the server's other rules are in test_serve.py) paths shown to others ---------------


def test_paths_shown_to_others_hold_no_machine_layout(tmp_path, monkeypatch):
    from ferkit.training.config import command_line
    from ferkit.userfiles import public_command, public_path

    home, work = tmp_path / "home" / "alice", tmp_path / "home" / "alice" / "work"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert public_path(str(work / "runs" / "r")) == "runs/r"
    assert public_path(str(home / "data" / "fer.csv")) == "~/data/fer.csv"
    assert public_path("/srv/fer.csv") == "/srv/fer.csv" and public_path("a/b") == "a/b"
    cmd = f"ferkit train --data {home}/d.csv --out '{work}/my runs/r' --lr 0.1"
    assert public_command(cmd) == "ferkit train --data ~/d.csv --out 'my runs/r' --lr 0.1"
    cfg = tiny_config(home / "d.csv", work / "r")
    assert command_line(cfg).startswith("ferkit train --data ~/d.csv --out r ")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(small_csv, tmp_path, command):
    taken = tmp_path / "taken"
    taken.write_bytes(b"mine")
    args = ["--data", str(small_csv)] if command == "evaluate" else ["x.jpg"]
    r = run_cli(command, *args, "--out", str(taken))
    assert r.returncode == 2 and "is a file, not a folder" in r.stderr
    assert taken.read_bytes() == b"mine"
