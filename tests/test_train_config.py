"""``TrainConfig`` is the one source of ``ferkit train``'s options, their checks and the command
lines summaries record: each of those agrees with it by construction, and these tests hold it."""

import dataclasses
import shlex

import pytest

from ferkit.cli.main import build_parser
from ferkit.training.config import (
    TrainConfig,
    bool_flag,
    command_line,
    config_from_options,
    option_flag,
)

FIELDS = [f for f in dataclasses.fields(TrainConfig) if not f.metadata["hidden"]]


def _train_parser():
    return build_parser()._subparsers._group_actions[0].choices["train"]


def _parse(argv: list[str]) -> dict:
    return vars(build_parser().parse_args(["train", *argv]))


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_every_field_is_an_option_with_its_help(field):
    flag = (
        bool_flag(field.name, field.default)
        if isinstance(field.default, bool)
        else option_flag(field.name)
    )
    action = next(a for a in _train_parser()._actions if flag in a.option_strings)
    assert action.dest == field.name and action.help.startswith(field.metadata["help"])
    if not isinstance(field.default, bool) and field.default not in (None, dataclasses.MISSING):
        assert "(default " in action.help  # stated once, from the field


def test_options_left_out_are_the_fields_defaults():
    got = _parse(["--data", "d.csv", "--out", "r"])
    assert config_from_options(got) == TrainConfig(data="d.csv", out="r")


def test_recorded_command_rebuilds_the_same_config():
    cfg = TrainConfig(
        data="a b.csv",  # a space: the command is quoted for a shell
        out="runs/x",
        arch="bkstart",
        schedule="cosine",
        epochs=7,
        lr=0.002,
        nesterov=True,
        augment=False,
        norm_layers="bn",
        optimizer="adamw",
        ema=0.998,
        head_init="zero",
        val_split="PublicTest",
        clip_grad_norm=2.5,
        seed=3,
        quiet=True,  # not recorded: how a run logs is not how it trains
    )
    argv = shlex.split(command_line(cfg))
    assert argv[:2] == ["ferkit", "train"] and "--quiet" not in argv
    assert config_from_options(_parse(argv[2:])) == dataclasses.replace(cfg, quiet=False)


def test_recorded_command_spells_out_the_main_options_even_at_their_defaults():
    line = command_line(TrainConfig(data="d", out="r"))
    assert line == (
        "ferkit train --data d --out r --arch bkvgg12 --loss svm --schedule plateau "
        "--epochs 100 --lr 0.01 --weight-decay 0.0005"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        ({"loss": "hinge"}, "unknown --loss 'hinge'"),
        ({"momentum": 1.0}, "--momentum must be < 1"),
        ({"epochs": 2.5}, "--epochs '2.5' is not an integer"),
        ({"lr": "0.1"}, "--lr must be a number"),
    ],
)
def test_python_settings_get_the_command_lines_checks(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(data="d", out="r", **change).validate()
