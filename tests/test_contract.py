"""docs/CONTRACT.md stays true: it names every command, run file, checkpoint key and
metrics key the code has, and the code cites it (not a page outside the repository)."""

import dataclasses
import re
from pathlib import Path

import pytest

from ferkit.cli.main import command_names

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = (ROOT / "docs" / "CONTRACT.md").read_text()


@pytest.mark.parametrize("command", command_names())
def test_every_command_is_in_the_contract(command):
    assert f"`{command}`" in CONTRACT


def test_run_files_checkpoint_and_metrics_keys_are_in_the_contract():
    from ferkit.training.run_folder import CHECKPOINT_KEYS, RUN_FILES, EpochMetrics

    for name in RUN_FILES:
        assert f"`RUN/{name}`" in CONTRACT, name
    for key in CHECKPOINT_KEYS:
        assert f"`{key}`" in CONTRACT, key
    fields = ", ".join(f.name for f in dataclasses.fields(EpochMetrics))
    assert f"`{fields}`" in " ".join(CONTRACT.split())


def test_every_fast_procedure_option_is_in_the_contract():
    from ferkit.cli.main import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    options = {o for a in train._actions for o in a.option_strings if o.startswith("--")}
    levers = ("--rotation", "--rescale", "--shift", "--erase", "--augment-ramp-from", "--mirror")
    levers += ("--whiten-init", "--dirac-init", "--no-bn-scale", "--bn-bias-lr", "--bn-momentum")
    levers += ("--ema-start", "--ema-bn")
    for option in ("--norm-layers", "--optimizer", "--ema", "--head-init", "--overwrite", *levers):
        assert option in options and option in CONTRACT, option


def test_the_code_cites_the_contract_inside_the_repository():
    sources = list((ROOT / "src").rglob("*.py"))
    assert not [p for p in sources if "INTERFACE.md" in p.read_text()]
    assert any("docs/CONTRACT.md" in p.read_text() for p in sources)
    assert re.search(r"\(docs/CONTRACT\.md\)", (ROOT / "README.md").read_text())


def test_the_face_record_and_the_timeline_columns_are_in_the_contract():
    from ferkit.predict.detect import Box
    from ferkit.predict.ray_engine import RECORD_KEYS
    from ferkit.predict.recognizer import Face
    from ferkit.predict.tracking import TIMELINE_COLUMNS

    face = Face(Box(0, 0, 1, 1), "happy", {}, {}, 1.0)
    assert ("file", "frame", *face.to_dict()) == RECORD_KEYS  # Ray's columns, predict's keys
    flat = " ".join(CONTRACT.split())
    for key in RECORD_KEYS:
        assert f'"{key}":' in flat, key
    assert f"`{', '.join(TIMELINE_COLUMNS)}`" in flat
