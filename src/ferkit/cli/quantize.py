"""`ferkit quantize`: calibrate a model for int8 inference on the CPU (about 2x faster for one face)."""

from __future__ import annotations

import argparse
import sys

from ..argtypes import DATA_HELP, SEED, add_overwrite_option, number
from .options import UsageError, precision_check_args

NAME = "quantize"
HELP = "calibrate a model for int8 inference on the CPU (about 2x faster for one face)"
DESCRIPTION = (
    "Measure the range of every activation on random Training faces and write them beside the"
    " weights (x.safetensors -> x.int8.json); --int8 on evaluate, predict and serve then runs"
    " the int8 network, rebuilt from the fp32 weights and these ranges. fp32 and int8 are "
    "scored on the same split first, and nothing is written when int8 is more than "
    "--tolerance points worse."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--model", help="model.safetensors or run folder (default: the shipped model)")
    sp.add_argument("--data", required=True, help=DATA_HELP)
    sp.add_argument(
        "--faces",
        type=number(int, min=1, max=100_000),
        default=2048,
        help="Training faces to calibrate on",
    )
    precision_check_args(sp, "int8", "--data", tolerance=0.5)
    sp.add_argument("--no-check", action="store_true", help="skip the fp32/int8 comparison")
    sp.add_argument("--seed", type=SEED, default=0, help="which random faces")
    add_overwrite_option(sp, "the calibration beside the weights (MODEL.int8.json)")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ..export.workflows import PrecisionCheck, quantize_model
    from ..fermodel.files import calibration_path, checked_model_file
    from ..userfiles import check_output

    model = checked_model_file(args.model)
    check_output(  # before the work: an existing calibration is replaced only if told
        calibration_path(model),
        inputs=[model, args.data],
        overwrite=args.overwrite,
        error=UsageError,
    )
    out, cal = quantize_model(
        args.model,
        args.data,
        faces=args.faces,
        split=None if args.no_check else args.split,
        method=args.method,
        tolerance=args.tolerance,
        seed=args.seed,
        progress=not args.quiet,
    )
    if cal.check:
        print(f"ferkit: {PrecisionCheck.from_dict(cal.check).line()}", file=sys.stderr)
    print(f"ferkit: wrote {out} ({len(cal.ranges)} activation ranges)", file=sys.stderr)
    return 0
