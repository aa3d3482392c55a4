"""`ferkit train`: train a network on FER-2013 (resumable)."""

from __future__ import annotations

import argparse
import sys

from ..argtypes import add_overwrite_option
from ..training.config import add_train_options
from .options import UsageError

NAME = "train"
HELP = "train a network on FER-2013 (resumable)"
DESCRIPTION = (
    "Train one of the paper's networks. Writes RUN/model.safetensors (best validation "
    "weights), checkpoint.pt, metrics.jsonl and curves.png. Runs under torchrun for several "
    "processes. Interrupted runs continue with --resume RUN."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--resume", metavar="RUN", help="continue the run in RUN with its stored settings"
    )
    add_overwrite_option(sp, "the run in --out (start again over it)")
    add_train_options(sp)  # every TrainConfig field, its help and check beside the field


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..training.config import IGNORED, config_from_options, resume_overrides
    from ..training.loop import train
    from ..training.run_folder import load_run_config

    if args.resume:
        cfg = dataclasses.replace(
            load_run_config(args.resume), out=args.resume, **resume_overrides(vars(args))
        )
        train(cfg, resume=True)
        return 0
    if not args.data or not args.out:
        raise UsageError("train needs --data PATH and --out RUN (or --resume RUN)")
    cfg = config_from_options(vars(args))
    for flag, needs in cfg.ineffective(IGNORED):
        print(f"ferkit: warning: {flag} does nothing without {needs}", file=sys.stderr)
    train(cfg, overwrite=args.overwrite)
    return 0
