import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from cli_run import ferkit_cmd, run_cli
from safetensors.torch import load_file
from synth import tiny_config

import ferkit
from ferkit.data.dataset import stratified_split
from ferkit.training.components import lr_at, shard
from ferkit.training.config import TrainConfig
from ferkit.training.loop import train

# Small, quick and able to learn the synthetic classes.
FAST = ["--arch", "bkstart", "--batch-size", "64", "--lr", "0.0005", "--threads", "1"]


def test_stratified_split_is_seeded_and_per_class():
    labels = np.repeat(np.arange(7), [100, 10, 50, 200, 80, 60, 90])
    tr, va = stratified_split(labels, 0.1, seed=3)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(labels)
    assert np.bincount(labels[va]).tolist() == [10, 1, 5, 20, 8, 6, 9]
    assert np.array_equal(va, stratified_split(labels, 0.1, seed=3)[1])
    assert not np.array_equal(va, stratified_split(labels, 0.1, seed=4)[1])


def test_shards_are_disjoint_and_equal():
    order = torch.randperm(103)
    parts = [shard(order, r, 4) for r in range(4)]
    assert all(len(p) == 25 for p in parts)
    assert len(torch.unique(torch.cat(parts))) == 100


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_fixed_budget_schedules(schedule):
    cfg = TrainConfig(data="x", out="y", schedule=schedule, lr=0.1)
    lrs = [lr_at(cfg, p / 100) for p in range(101)]
    assert max(lrs) == pytest.approx(0.1, rel=1e-3)
    assert lrs[-1] < 1e-3
    if schedule == "onecycle":
        assert lrs[0] == pytest.approx(0.1 / 25) and np.argmax(lrs) == 25


def test_warmup_then_plateau_in_charge():
    cfg = TrainConfig(data="x", out="y", schedule="plateau", lr=0.1, warmup_epochs=2)
    assert lr_at(cfg, 0, 0) == pytest.approx(0.001)
    assert lr_at(cfg, 0, 1) == pytest.approx(0.1 * (0.01 + 0.99 / 2))
    assert lr_at(cfg, 0, 2) == 0.1  # the paper's rate, not warm-up's last step's
    assert lr_at(cfg, 0, 2.5) is None


def test_the_plateau_schedule_trains_at_the_full_rate_after_warm_up(small_csv, tmp_path):
    res = train(tiny_config(small_csv, tmp_path / "run", schedule="plateau", epochs=2))
    assert res.history[0].lr < 0.002 and res.history[1].lr == 0.002


def test_train_writes_a_self_describing_run(small_csv, tmp_path):
    run = tmp_path / "run"
    res = train(tiny_config(small_csv, run, schedule="onecycle", epochs=4))
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt",
        "curves.png",
        "metrics.jsonl",
        "model.safetensors",
    ]
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]
    assert set(lines[0]) == {
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "images_per_s",
        "seconds",
    }
    assert res.best_val_acc == max(m["val_acc"] for m in lines)
    assert res.best_val_acc > 0.5  # chance is 1/7: it learned
    model = ferkit.load_model(run / "model.safetensors")
    assert model.meta.arch == "bkstart" and model.loss == "svm"
    assert model.meta.config["epochs"] == 4 and model.meta.metrics["val_acc"] == res.best_val_acc
    assert model.labels == ferkit.LABELS
    tensors = load_file(run / "model.safetensors")
    assert tensors["norm.mean"].shape == (48, 48) and tensors["norm.std"].dtype == torch.float32
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 4 and "optimizer" in ck and "rng" in ck
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_augment_and_val_split(small_csv, tmp_path):
    cfg = dict(epochs=1, lr=0.0005, augment=False, val_split="PrivateTest", threads=None)
    res = train(tiny_config(small_csv, tmp_path / "r", **cfg))
    assert res.epochs_done == 1
    assert ferkit.load_model(tmp_path / "r").meta.config["val_split"] == "PrivateTest"
    args = ["--data", str(small_csv), "--out", str(tmp_path / "s"), "--arch", "bkstart"]
    args += ["--epochs", "1", "--batch-size", "64", "--lr", "0.0005", "--augment-strength", "0.5"]
    r = run_cli("train", *args, "--quiet")
    assert r.returncode == 0, r.stderr
    assert ferkit.load_model(tmp_path / "s").meta.config["augment_strength"] == 0.5


def test_without_validation_all_of_training_trains_and_the_last_epoch_is_saved(small_csv, tmp_path):
    """--val-fraction 0 (issue 36: train on all of Training once the epoch count is fixed):
    the saved model is the last epoch's, with no fitted temperature, and the metrics say so."""
    import json

    from cli_run import run_cli

    out = tmp_path / "all"
    args = ["--data", str(small_csv), "--out", str(out), "--arch", "bkstart", "--epochs", "2"]
    args += ["--batch-size", "64", "--lr", "0.0005", "--val-fraction", "0", "--ema", "0.9"]
    r = run_cli("train", *args, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "no validation faces: the model of epoch 2, the last, is saved" in r.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(m["val_loss"], m["val_acc"]) for m in rows] == [(None, None)] * 2
    model = ferkit.load_model(out)
    assert model.meta.temperature is None and model.meta.metrics["epochs_done"] == 2
    assert model.meta.config["val_fraction"] == 0
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    from ferkit.export.workflows import build_card

    assert build_card(model, "fp32", None, None)["validation_accuracy"] is None
    with_val = train(tiny_config(small_csv, tmp_path / "val", epochs=1, lr=0.0005))
    assert with_val.epochs_done == 1 and ck["epoch"] == 2


def test_sigkill_mid_epoch_then_resume_is_bit_exact(small_csv, tmp_path):
    common = [
        "train",
        "--data",
        str(small_csv),
        *FAST,
        "--epochs",
        "2",
        "--schedule",
        "plateau",
        "--quiet",
    ]
    ref = tmp_path / "ref"
    assert run_cli(*common, "--out", str(ref)).returncode == 0

    run, trace = tmp_path / "killed", tmp_path / "trace"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        ferkit_cmd(*common, "--out", str(run), "--trace-shards", str(trace)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 120
    while not (trace / "rank0-epoch2.npy").exists():  # written as epoch 2 starts
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # killed inside epoch 2

    done = run_cli("train", "--resume", str(run))
    assert done.returncode == 0, done.stderr
    a = torch.load(ref / "checkpoint.pt", weights_only=True)
    b = torch.load(run / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for k in sa:
        assert torch.equal(sa[k]["momentum_buffer"], sb[k]["momentum_buffer"])
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]


def test_resume_can_raise_the_epoch_total(small_csv, tmp_path):
    run = tmp_path / "r"
    assert (
        run_cli(
            "train", "--data", str(small_csv), *FAST, "--epochs", "1", "--quiet", "--out", str(run)
        ).returncode
        == 0
    )
    assert run_cli("train", "--resume", str(run), "--epochs", "2").returncode == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_ddp_two_processes_disjoint_shards_identical_weights(small_csv, tmp_path):
    trace = tmp_path / "trace"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29731",
        "-m",
        "ferkit.cli.main",
        "train",
        "--data",
        str(small_csv),
        *FAST,
        "--epochs",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
        "--trace-shards",
        str(trace),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    i0, i1 = np.load(trace / "rank0-epoch1.npy"), np.load(trace / "rank1-epoch1.npy")
    assert len(i0) == len(i1) > 0
    assert len(np.intersect1d(i0, i1)) == 0  # disjoint halves of the epoch
    n_train = 630  # 700 Training rows less the 10% validation share
    assert len(i0) + len(i1) == (n_train // 64) * 64
    w0 = load_file(trace / "rank0-weights.safetensors")
    w1 = load_file(trace / "rank1-weights.safetensors")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert (tmp_path / "run" / "model.safetensors").exists()
    assert ferkit.load_model(tmp_path / "run").meta.config["world_size"] == 2


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["--arch", "vgg99"], "unknown network 'vgg99'", 2),
        (["--batch-size", "10000"], "larger than the 630 training images", 2),
        (
            ["--val-split", "Validation"],
            "no split 'Validation' (splits present: Training, PublicTest, PrivateTest)",
            1,
        ),
    ],
)
def test_impossible_settings_are_one_line(small_csv, tmp_path, args, message, code):
    r = run_cli(
        "train", "--data", str(small_csv), "--out", str(tmp_path / "r"), "--epochs", "1", *args
    )
    assert r.returncode == code
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--lr", "nan", "'nan' is not a finite number"),
        ("--lr", "inf", "'inf' is not a finite number"),
        ("--lr", "0", "must be > 0"),
        ("--clip-grad-norm", "-1", "must be > 0"),
        ("--warmup-epochs", "-1", "must be >= 0"),
        ("--threads", "-1", "must be >= 1"),
        ("--epochs", "1.5", "'1.5' is not an integer"),
        ("--momentum", "1", "must be < 1"),
        ("--augment-strength", "0", "must be > 0"),
        ("--ema", "1", "must be < 1"),
    ],
)
def test_bad_numbers_are_usage_errors_before_any_work(small_csv, tmp_path, option, value, message):
    run = tmp_path / "r"
    r = run_cli("train", "--data", str(small_csv), "--out", str(run), option, value)
    assert r.returncode == 2 and f"argument {option}: {message}" in r.stderr
    assert "Traceback" not in r.stderr and not run.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"lr": float("nan")}, "--lr 'nan' is not a finite number"),
        ({"weight_decay": -1.0}, r"--weight-decay must be >= 0 \(got -1.0\)"),
        ({"threads": 0}, r"--threads must be >= 1 \(got 0\)"),
        ({"clip_grad_norm": -1.0}, r"--clip-grad-norm must be > 0 \(got -1.0\)"),
    ],
)
def test_train_config_refuses_bad_numbers_from_python(small_csv, tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_config(small_csv, tmp_path / "r", **change))
    assert not (tmp_path / "r").exists()


def test_divergence_is_a_clear_error(small_csv, tmp_path):
    r = run_cli(
        "train",
        "--data",
        str(small_csv),
        "--out",
        str(tmp_path / "r"),
        "--arch",
        "bkstart",
        "--batch-size",
        "64",
        "--lr",
        "50",
        "--epochs",
        "2",
        "--quiet",
    )
    assert r.returncode == 1 and "lower --lr" in r.stderr and "Traceback" not in r.stderr


def test_unwritable_run_folder(small_csv, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_cli("train", "--data", str(small_csv), "--out", str(blocker / "run"), "--epochs", "1")
    assert r.returncode != 0 and "cannot write to the run folder" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_data_file(tmp_path):
    r = run_cli("train", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r"))
    assert r.returncode == 1 and "no such file or folder" in r.stderr


def test_resume_without_checkpoint(tmp_path):
    r = run_cli("train", "--resume", str(tmp_path))
    assert r.returncode == 1 and "a folder without checkpoint.pt" in r.stderr


def test_cli_help_explains():
    r = run_cli("train", "--help")
    assert r.returncode == 0 and "--resume" in r.stdout and "torchrun" in r.stdout


def test_clip_grad_norm_caps_the_step():
    from ferkit.losses import l2_svm_loss
    from ferkit.models import create_model
    from ferkit.training.components import train_step

    torch.manual_seed(0)
    x, y = torch.randn(8, 1, 42, 42) * 50, torch.randint(0, 7, (8,))
    for clip, bound in [(None, None), (1.0, 0.1 * 1.0)]:
        net = create_model("bkvgg8")
        before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        train_step(net, opt, l2_svm_loss, x, y, None, clip)
        step = (torch.cat([p.detach().flatten() for p in net.parameters()]) - before).norm().item()
        if bound is None:
            assert step > 1.0  # unclipped, the first step is huge
        else:
            assert step <= bound * 1.001


def _copy_run(run, tmp_path):
    import shutil

    return shutil.copytree(run, tmp_path / "run")


def test_an_existing_run_is_not_overwritten(small_csv, tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path)
    before = (run / "model.safetensors").read_bytes()
    args = ["train", "--data", str(small_csv), *FAST, "--epochs", "1", "--quiet", "--out", str(run)]
    r = run_cli(*args)
    assert r.returncode == 2 and "already holds a run" in r.stderr and "--resume" in r.stderr
    assert (run / "model.safetensors").read_bytes() == before
    assert run_cli(*args, "--overwrite").returncode == 0
    assert (run / "model.safetensors").read_bytes() != before


def test_a_failed_run_leaves_no_empty_folder(small_csv, tmp_path):
    run = tmp_path / "never"
    r = run_cli("train", "--data", str(small_csv), "--out", str(run), "--val-split", "Nope")
    assert r.returncode == 1 and not run.exists()


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ.get('FERKIT_EVIL_MARK', '/tmp/x')}",))


def _bad_checkpoints(run):
    good = (run / "checkpoint.pt").read_bytes()
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    cfg = json.loads(ck["config"])

    def with_config(c):
        return lambda p: torch.save({**ck, "config": json.dumps(c)}, p)

    return {
        "pickle": lambda p: torch.save({"model": _Evil()}, p),
        "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
        "truncated": lambda p: p.write_bytes(good[: len(good) // 2]),
        "no config": lambda p: torch.save({k: v for k, v in ck.items() if k != "config"}, p),
        "unknown key": with_config({**cfg, "bogus": 1}),
        "missing key": with_config({k: v for k, v in cfg.items() if k != "data"}),
        "bad value": with_config({**cfg, "lr": -1.0}),
        "other network": with_config({**cfg, "arch": "bkvgg8"}),
        "bad within": lambda p: torch.save({**ck, "within": {"step": "4", "aug_rng": 0}}, p),
    }


@pytest.mark.parametrize(
    "case",
    [
        "pickle",
        "random bytes",
        "truncated",
        "no config",
        "unknown key",
        "missing key",
        "bad value",
        "other network",
        "bad within",
    ],
)
def test_a_broken_checkpoint_is_one_clear_error(tiny_run, tmp_path, monkeypatch, case):
    run = _copy_run(tiny_run, tmp_path)
    mark = tmp_path / "pwned"
    monkeypatch.setenv("FERKIT_EVIL_MARK", str(mark))
    _bad_checkpoints(run)[case](run / "checkpoint.pt")
    r = run_cli("train", "--resume", str(run), "--epochs", "2")
    assert r.returncode == 1, r.stderr
    assert "checkpoint.pt" in r.stderr and "Traceback" not in r.stderr
    assert "weights_only" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not mark.exists()


def test_resume_removes_temporaries_a_kill_left(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path)
    stale = [run / ".checkpoint.pt.k3j2_x.tmp", run / ".model.safetensors.abcd.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    keep = run / ".notes.tmp"  # not atomic_write's pattern
    keep.write_text("mine")
    assert run_cli("train", "--resume", str(run), "--epochs", "1").returncode == 0
    assert not any(p.exists() for p in stale) and keep.exists()


def test_a_checkpoint_inside_an_epoch_resumes_bit_exact(small_csv, tmp_path, monkeypatch):
    """A kill in the middle of an epoch loses at most --checkpoint-minutes of work: the
    checkpoint saved inside the epoch continues from its step, and the run ends exactly as one
    that never stopped (the fast procedure: BatchNorm, AdamW, EMA, dropout, augmentation)."""
    import ferkit.training.epoch as tr

    fast = dict(epochs=1, schedule="cosine", norm_layers="bn", optimizer="adamw", ema=0.99)
    train(tiny_config(small_csv, tmp_path / "ref", checkpoint_minutes=0, **fast))
    real_step, calls = tr.train_step, []

    def killed_at_the_fifth_step(*args, **kw):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # as a kill between two steps of epoch 1
        return real_step(*args, **kw)

    run = tmp_path / "killed"
    monkeypatch.setattr(tr, "train_step", killed_at_the_fifth_step)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(small_csv, run, checkpoint_minutes=1e-9, **fast))  # save every step
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 0 and ck["within"]["step"] == 4
    monkeypatch.setattr(tr, "train_step", real_step)
    train(tiny_config(small_csv, run, checkpoint_minutes=1e-9, **fast), resume=True)

    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    b = torch.load(run / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1 and "within" not in b
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    ref_lines, lines = (
        (p / "metrics.jsonl").read_text().splitlines() for p in (tmp_path / "ref", run)
    )
    for x, y in zip(ref_lines, lines, strict=True):
        x, y = json.loads(x), json.loads(y)
        assert (x["train_loss"], x["train_acc"], x["val_acc"]) == (
            y["train_loss"],
            y["train_acc"],
            y["val_acc"],
        )


@pytest.mark.parametrize("bf16", [True, False])
def test_the_machine_is_recorded_with_its_bf16_capability(monkeypatch, bf16):
    """Training speed differs ~3x between CPUs with and without bf16: every figure says which."""
    import ferkit.device

    monkeypatch.setattr(ferkit.device, "cpu_has_native_bf16", lambda: bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(ferkit.device, "cpu_name", lambda: "Test CPU 9000")
    text = ferkit.device.machine_description(torch.device("cpu"))
    assert text.startswith(f"{os.cpu_count()}-core Test CPU 9000 (")
    assert ("no bf16" in text) is not bf16 and "bf16" in text
    assert f"{torch.get_num_threads()} threads" in text
