"""Checked numbers for command-line options: every bad value is a usage error before any work
(``--lr nan``, ``--threads -1``, ``--port 99999``), never a traceback or a NaN model; the
options several commands share, declared once; and the vocabularies and limits that options
share with the code behind them. Nothing here imports torch or numpy: ``--help`` is instant."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable


def number(
    kind: type = float,
    *,
    min: float | None = None,  # noqa: A002 (reads as the option's range)
    max: float | None = None,  # noqa: A002
    above: float | None = None,
    below: float | None = None,
) -> Callable[[str], int | float]:
    """An argparse ``type``: a finite ``kind`` (int or float) within the given bounds
    (``min``/``max`` inclusive, ``above``/``below`` exclusive)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        for bound, ok, word in (
            (min, lambda b: value >= b, ">="),
            (max, lambda b: value <= b, "<="),
            (above, lambda b: value > b, ">"),
            (below, lambda b: value < b, "<"),
        ):
            if bound is not None and not ok(bound):
                raise argparse.ArgumentTypeError(f"must be {word} {bound:g} (got {text})")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


#: The losses (eq. 3 and 4), numerics, normalisation layers a network trains with.
LOSSES: tuple[str, ...] = ("svm", "ce")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
NORM_LAYERS: tuple[str, ...] = ("none", "bn")
#: The face detectors by name (``ferkit.predict.detect``'s registry; a test keeps them equal).
DETECTORS: tuple[str, ...] = ("haar", "blazeface", "blazeface-full", "haar-frontal", "haar-alt2")
#: The detector predict, serve, Ray and ``Recognizer`` use unless told otherwise.
DEFAULT_DETECTOR = "blazeface"
#: Whether faces are turned upright by their eyes before cropping (detectors that give eyes).
#: Off: with the shipped model it lost 4-6 of 187 wild-dev faces at every margin from -0.1 to
#: 0.2 (``scripts/calibrate_margin.py --photos ... [--align]``), and with the model before it
#: it won and lost by 0-2.
DEFAULT_ALIGN = False
#: The default size limit of a photo (predict and serve): 40 megapixels is large, a bomb is far
#: larger.
MAX_PIXELS = 40_000_000
DATA_HELP = "FER-2013 CSV (.csv/.csv.gz), image folder or compact .npz[.xz] (ferkit data --save)"

POSITIVE_INT = number(int, min=1)
COUNT = number(int, min=0)
#: A random seed: what torch, numpy and Python's generators all take.
SEED = number(int, min=0, max=2**32 - 1)
POSITIVE = number(float, above=0)
NON_NEGATIVE = number(float, min=0)
PORT = number(int, min=1, max=65535)


THREADS_HELP = "CPU threads for torch (default: {default}; at most 4 a CPU, 16 at least)"


def max_threads() -> int:
    """The most threads an option may ask for: a few times the CPUs (``--threads 100000`` once
    ended in a segmentation fault inside OpenMP)."""
    return max(16, 4 * (os.cpu_count() or 1))


def thread_count(text: str) -> int:
    """An argparse ``type``: a thread count from 1 to :func:`max_threads`."""
    value = POSITIVE_INT(text)
    if value > (limit := max_threads()):
        raise argparse.ArgumentTypeError(
            f"must be <= {limit} (4 threads a CPU; this machine has {os.cpu_count()}) (got {text})"
        )
    return value


thread_count.__name__ = "int"


def add_threads_option(p: argparse.ArgumentParser, default: str = "torch's") -> None:
    """--threads, as every command that runs torch takes it (``default``: what none gives)."""
    p.add_argument("--threads", type=thread_count, help=THREADS_HELP.format(default=default))


def add_overwrite_option(p: argparse.ArgumentParser, what: str) -> None:
    """--overwrite (docs/CONTRACT.md "Files"): the one word every command takes to replace an
    existing output; without it an existing output is refused."""
    p.add_argument(
        "--overwrite", action="store_true", help=f"replace {what} if it exists (refused without)"
    )


def add_device_option(p: argparse.ArgumentParser) -> None:
    """--device, as every command that runs a model takes it (an absent or unknown device is
    refused when it is resolved: ``device.resolve_device``)."""
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")


def add_json_option(p: argparse.ArgumentParser, what: str = "a JSON object") -> None:
    """--json: the command's result as JSON on stdout (messages stay on stderr)."""
    p.add_argument("--json", action="store_true", help=f"print {what}")
