"""Seeded fuzzing of paths (issue 35, class 2): every reader a command hands a user's path to,
given a FIFO, a device, a folder, a dangling link or a huge sparse file, answers with its own
clean error at once and in bounded memory, never a hang, a traceback or gigabytes read.

In-process, each call under a SIGALRM timeout (a FIFO's ``open`` blocks forever) and with
Python's allocations traced (reading a 2 GB sparse file would allocate 2 GB)."""

from __future__ import annotations

import faulthandler
import os
import signal
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ferkit.data.fer2013 import DataError, load_fer2013
from ferkit.fermodel.files import ModelFileError, read_model_file
from ferkit.fermodel.onnx import load_onnx
from ferkit.images import ImageError, load_grey, load_image
from ferkit.predict.files import read_labels, video_fps
from ferkit.training.run_folder import CheckpointError, load_checkpoint


class CommandFailed(Exception):
    """A command run in this process ended non-zero: its stderr."""


def _cli(*args: str) -> Callable[[Path], object]:
    """A command reading the path (``{}`` in ``args``) as a reader: its error line raised."""
    from cli_run import run_cli

    def read(path: Path) -> None:
        r = run_cli(*(str(path) if a == "{}" else a for a in args))
        if r.returncode:
            raise CommandFailed(r.stderr)

    return read


#: Each reader: (the suffix its files have, the call, the error it must give).
READERS: dict[str, tuple[str, Callable[[Path], object], type[Exception]]] = {
    "data-csv": (".csv", lambda p: load_fer2013(p, cache=False), DataError),
    "data-csv.gz": (".csv.gz", lambda p: load_fer2013(p, cache=False), DataError),
    "data-npz": (".npz", lambda p: load_fer2013(p, cache=False), DataError),
    "data-npz.xz": (".npz.xz", lambda p: load_fer2013(p, cache=False), DataError),
    "model": (".safetensors", read_model_file, ModelFileError),
    "onnx-model": (".onnx", lambda p: load_onnx(p), ModelFileError),
    "photo": (".jpg", load_image, ImageError),
    "photo-grey": (".png", load_grey, ImageError),
    "labels": (".csv", read_labels, ValueError),
    "checkpoint": (".pt", load_checkpoint, CheckpointError),
    "video": (".mp4", video_fps, ImageError),
    "export-summary": (
        ".json",
        _cli("export", "--summary", "{}", "--out", "/nonexistent/x"),
        CommandFailed,
    ),
    "resume-run": ("", _cli("train", "--resume", "{}"), CommandFailed),
    "benchmark-photo": (
        ".jpg",
        _cli("benchmark", "predict", "--photo", "{}", "--images", "1"),
        CommandFailed,
    ),
}
KINDS = ("fifo", "device", "folder", "dangling-link", "sparse-2gb")
#: What each kind's error says (a sparse file's depends on the reader: only "no hang, no GBs").
SAYS = {
    "fifo": "not a regular file: a FIFO",
    "device": "not a regular file: a device",
    "folder": "folder",
    "dangling-link": "dangling symbolic link",
}
TIMEOUT_S = 5
MAX_TRACED_BYTES = 64 << 20


def _make(kind: str, tmp_path: Path, suffix: str) -> Path:
    p = tmp_path / f"input{suffix}"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "device":
        p.symlink_to("/dev/zero")  # named as the reader expects, a device underneath
    elif kind == "folder":
        p.mkdir()
    elif kind == "dangling-link":
        p.symlink_to(tmp_path / "gone")
    else:
        with open(p, "wb") as fh:
            fh.truncate(2 << 30)  # 2 GB of zeros that take no disk
    return p


def _within_limits(call: Callable[[], object]) -> None:
    def stop(signum, frame):
        raise TimeoutError(f"no answer within {TIMEOUT_S} s")

    old = signal.signal(signal.SIGALRM, stop)
    tracemalloc.start()
    signal.alarm(TIMEOUT_S)
    # C code blocked in open() (OpenCV's, torch's) never returns to Python for the alarm: a
    # watchdog thread then ends the test process with the stuck call's traceback
    faulthandler.dump_traceback_later(4 * TIMEOUT_S, exit=True)
    try:
        call()
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, old)
        assert peak < MAX_TRACED_BYTES, f"{peak / 2**20:.0f} MiB allocated"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reader", list(READERS))
def test_odd_paths_are_refused_at_once(reader, kind, tmp_path):
    suffix, read, error = READERS[reader]
    if reader == "video":
        pytest.importorskip("cv2")
    if reader == "onnx-model":
        pytest.importorskip("onnxruntime")
    if reader.startswith("data") and kind == "folder":
        pytest.skip("a folder is a valid --data (the image-folder layout): tested in test_data")
    path = _make(kind, tmp_path, suffix)
    with pytest.raises(error) as caught:
        _within_limits(lambda: read(path))
    message = str(caught.value)
    assert str(path) in message
    if kind in SAYS:
        assert SAYS[kind] in message


def test_the_fuzz_sees_a_reader_that_reads_everything(tmp_path, monkeypatch):
    """The harness itself can fail: a reader that reads the whole sparse file is caught."""
    path = _make("sparse-2gb", tmp_path, ".bin")
    with pytest.raises(AssertionError, match="MiB allocated"):
        _within_limits(lambda: np.frombuffer(path.read_bytes()[: 100 << 20], np.uint8).sum())


def test_a_fifo_named_to_predict_is_an_error_not_a_skip(tiny_run, tmp_path):
    from cli_run import run_cli_process

    fifo = tmp_path / "stuck.jpg"
    os.mkfifo(fifo)
    r = run_cli_process("predict", str(fifo), "--model", str(tiny_run), timeout=120)
    assert r.returncode == 1
    assert f"{fifo}: not a regular file: a FIFO" in r.stderr and "Traceback" not in r.stderr
