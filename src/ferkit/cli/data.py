"""`ferkit data`: read a FER-2013 file and report its splits and class counts."""

from __future__ import annotations

import argparse
import json
import sys

from ..argtypes import add_json_option, add_overwrite_option
from ..userfiles import check_output
from .options import UsageError, data_file_args, read_data, report_skipped

NAME = "data"
HELP = "read a FER-2013 file and report its splits and class counts"
DESCRIPTION = (
    "Read FER-2013 (Kaggle's fer2013.csv, plain or .gz, or the train/<label>/ image-folder "
    "layout, or a compact copy made by --save) and report its format, splits and class "
    "counts. Bad rows stop the read with file, line and reason unless --skip-bad is given."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    data_file_args(sp)
    add_json_option(sp)
    sp.add_argument(
        "--save",
        metavar="FILE",
        help="also write a compact copy (.npz, or .npz.xz: FER-2013 in ~60 MB) that every "
        "--data option reads",
    )
    add_overwrite_option(sp, "the --save file")


def run(args: argparse.Namespace) -> int:
    from ..labels import LABELS

    if args.save:  # before the read: a refusal costs nothing
        check_output(args.save, inputs=[args.data], overwrite=args.overwrite, error=UsageError)
    ds = read_data(args)
    if args.save:
        from ..data.fer2013 import save_compact

        try:
            print(f"ferkit: wrote {save_compact(ds, args.save)}", file=sys.stderr)
        except ValueError as e:
            raise UsageError(str(e)) from None
    s = ds.summary()
    if args.json:
        print(json.dumps(s))
    else:
        print(f"{ds.path} ({ds.format})")
        print(f"{'split':<12} {'n':>7}  " + " ".join(f"{lab:>8}" for lab in LABELS))
        for name, sp in s["splits"].items():
            counts = " ".join(f"{sp['counts'][lab]:>8}" for lab in LABELS)
            print(f"{name:<12} {sp['n']:>7}  {counts}")
    report_skipped(ds)
    return 0
