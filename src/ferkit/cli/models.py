"""`ferkit models`: list the networks: parameters, multiply-accumulates, input."""

from __future__ import annotations

import argparse
import json

from ..argtypes import (
    add_json_option,
)

NAME = "models"
HELP = "list the networks: parameters, multiply-accumulates, input"
DESCRIPTION = (
    "List the paper's networks (Tables I-II) with their exact parameter counts (Table III), "
    "multiply-accumulates per 42x42 image and input shape."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    add_json_option(sp, "a JSON list")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..models import list_models, model_info

    infos = [model_info(n) for n in list_models()]
    if args.json:
        print(json.dumps([dataclasses.asdict(i) | {"input": list(i.input)} for i in infos]))
        return 0
    print(f"{'network':<10} {'parameters':>12} {'MACs/image':>14}  input")
    for i in infos:
        print(f"{i.name:<10} {i.params:>12,} {i.macs:>14,}  {'x'.join(map(str, i.input))}")
    return 0
