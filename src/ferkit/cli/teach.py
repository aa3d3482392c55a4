"""`ferkit teach`: a teacher file for knowledge distillation (train --distill)."""

from __future__ import annotations

import argparse

from ..argtypes import add_overwrite_option
from .options import (
    UsageError,
    data_file_args,
    load_model_args,
    model_args,
    read_data,
    report_skipped,
)

NAME = "teach"
HELP = "write a teacher file for train --distill: models' probabilities for every Training face"
DESCRIPTION = (
    "Score every Training face of --data with one model or several (an ensemble: their scores "
    "averaged) and write their calibrated probabilities to --out, an .npz that train "
    "--distill reads: 28,709 x 7 numbers for FER-2013, tied to the faces by their SHA-256. "
    "Teachers that trained on the student's validation faces make its model selection "
    "optimistic: give them the student's --seed and --val-fraction, or judge the student at a "
    "fixed epoch."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    model_args(sp)
    data_file_args(sp)
    sp.add_argument(
        "--method",
        choices=["center", "eval1"],
        default="eval1",
        help="the teachers' views of each face: eval1 = 10 crops, center = one",
    )
    sp.add_argument("--out", required=True, metavar="FILE.npz", help="the teacher file")
    add_overwrite_option(sp, "--out")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..training.teacher import write_teacher_file
    from ..userfiles import check_output

    if not args.out.endswith(".npz"):
        raise UsageError(f"--out {args.out}: a teacher file is an .npz")
    inputs = [args.data, *(args.model or [])]
    check_output(args.out, inputs=inputs, overwrite=args.overwrite, error=UsageError)
    model = load_model_args(args)
    data = read_data(args)
    report_skipped(data)
    s = write_teacher_file(
        model, data, args.out, args.method, progress=not args.quiet, precision=args.precision
    )
    print(
        f"ferkit: {args.out}: {s.teachers}'s {s.method} probabilities for {s.faces} Training "
        f"faces (their labels right for {100 * s.accuracy:.1f} %)"
    )
    return 0
