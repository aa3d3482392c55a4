"""The run folder's files as ``train`` writes them and ``reproduce`` reads them."""

import json

import pytest

from ferkit.training.run_folder import (
    CheckpointError,
    EpochMetrics,
    RunFolder,
    load_checkpoint,
    save_checkpoint,
)


def _epoch(e: int) -> EpochMetrics:
    return EpochMetrics(e, 1.0 / e, e / 10, 1.0, 0.25 + e / 100, 0.01, 100.0, 1800.0)


def test_metrics_round_trip_and_curve(tmp_path):
    run = RunFolder(tmp_path / "r")
    assert run.read_metrics() == [] and run.curve() == [] and run.wall_seconds() is None
    run.check_writable()
    run.write_metrics([_epoch(e) for e in (1, 2, 3)])
    assert [m.epoch for m in run.read_metrics(upto=2)] == [1, 2]
    assert run.curve() == [[1, 26.0, 0.5, 10.0], [2, 27.0, 1.0, 20.0], [3, 28.0, 1.5, 30.0]]
    assert run.wall_seconds() == 3 * 1800.0
    assert [json.loads(x)["epoch"] for x in run.metrics.read_text().splitlines()] == [1, 2, 3]
    assert run.run_files() == ["metrics.jsonl"]


def test_checkpoint_schema_is_checked(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="no model, optimizer"):
        load_checkpoint(path)


def test_unwritable_folder_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match=f"cannot write to the run folder {blocker / 'r'}"):
        RunFolder(blocker / "r").check_writable()
