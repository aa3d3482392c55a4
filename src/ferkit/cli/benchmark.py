"""`ferkit benchmark`: measure speed: train, evaluate, predict, serve, engine, video."""

from __future__ import annotations

import argparse
import json

from ..argtypes import (
    POSITIVE_INT,
    add_device_option,
    add_json_option,
    add_threads_option,
    number,
)
from .options import UsageError

NAME = "benchmark"
HELP = "measure speed: train (against plain fp32), evaluate, predict, serve (load), engine, video"
DESCRIPTION = None


BENCHMARKS = ("train", "evaluate", "predict", "serve", "engine", "video")


#: Every size a benchmark takes (a positive integer): option, default, what it sizes.
SIZES = (
    ("--batch-size", 256, 65_536, "batch size"),
    ("--steps", 8, 10_000, "timed steps per variant (after 2 warm-up steps)"),
    ("--images", 64, 100_000, "evaluate: images to score"),
    ("--clients", 8, 1024, "serve: concurrent clients"),
    ("--requests", 2000, 1_000_000, "serve: requests in all"),
    ("--photos", 1000, 100_000, "engine: photos in the generated folder (640x480 JPEGs, a face)"),
    ("--frames", 1800, 1_000_000, "video: frames of the generated 640x480 clip (a face)"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=BENCHMARKS, help="what to measure")
    p.add_argument("--arch", default="bkvgg12", help="network")
    for flag, default, most, what in SIZES:
        p.add_argument(flag, type=number(int, min=1, max=most), default=default, help=what)
    add_threads_option(p)
    add_device_option(p)
    p.add_argument(
        "--model",
        help="predict: a trained model (default: the shipped one when --arch is its network, "
        "else an untrained --arch; speed does not depend on the weights)",
    )
    p.add_argument(
        "--photo", help="predict: a photo with one face (default: scikit-image's astronaut)"
    )
    p.add_argument("--method", default="eval1", help="evaluate: center, eval1 or eval2")
    p.add_argument(
        "--compile",
        action="store_true",
        help="train: also the fast procedure's step through torch.compile (a minute or more "
        "to compile)",
    )
    p.add_argument(
        "--workers",
        type=POSITIVE_INT,
        nargs="+",
        default=[1, 2],
        help="engine: Ray worker counts to measure",
    )
    add_json_option(p)


def run(args: argparse.Namespace) -> int:
    from .. import benchmark

    try:
        result = benchmark.run(args.what, args)
    except ImportError as e:  # an optional extra the benchmark needs (e.g. engine: ferkit[ray])
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:<28} {v}")
    return 0
