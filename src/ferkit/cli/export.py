"""`ferkit export`: write a model as fp16 (or fp32) safetensors with a model card, for shipping."""

from __future__ import annotations

import argparse
import json
import sys

from ..argtypes import add_overwrite_option
from ..userfiles import require_file
from .options import UsageError, precision_check_args

NAME = "export"
MAX_SUMMARY_BYTES = 16 << 20
HELP = "write a model as fp16 (or fp32) safetensors with a model card, for shipping"
DESCRIPTION = (
    "Re-save a trained model in fp16 (about half the size) or fp32 with a model card "
    "(training recipe, accuracies, data terms, known limits) in its metadata and as Markdown "
    "beside it (OUT with .md). With --verify-data, fp32 and fp16 are scored on the same split"
    " and the export is refused when they differ by more than --tolerance accuracy points."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--model", help="model.safetensors or run folder (default: the shipped model)")
    sp.add_argument("--out", required=True, help="file to write (and its card, OUT with .md)")
    add_overwrite_option(sp, "OUT and its card")
    sp.add_argument(
        "--format",
        choices=["safetensors", "onnx"],
        default="safetensors",
        help="safetensors (default: ferkit's own file) or onnx (for any ONNX runtime; fp32, "
        "with the normalisation, labels, loss and card in its metadata; --verify-data checks "
        "ONNX Runtime against torch and writes nothing past max |score difference| 1e-3 or "
        "below 99.9 %% identical predictions)",
    )
    sp.add_argument(
        "--onnx-input",
        choices=["crops", "faces"],
        default="crops",
        help="--format onnx: crops (default: the network on normalised 42x42 crops, what "
        "--backend onnx runs) or faces (48x48 uint8 grey faces in; both preprocessing steps, "
        "Eval1's 10 crops and the calibrated probabilities inside: outputs scores and "
        "probabilities, for users without ferkit)",
    )
    sp.add_argument(
        "--dtype",
        choices=["fp16", "fp32"],
        default="fp16",
        help="weights' precision in the file (default fp16: half the size)",
    )
    sp.add_argument("--card", help="JSON object merged into the model card (overrides fields)")
    sp.add_argument(
        "--summary",
        metavar="JSON",
        help="a ferkit reproduce summary (reproduction/NAME.json): command, wall time, machine "
        "and test accuracies for the card",
    )
    sp.add_argument(
        "--verify-data",
        metavar="PATH",
        help="FER-2013 data to compare fp16 with fp32 on (not for weights already fp16: their "
        "card keeps its check) and to fit a missing temperature on (its validation faces)",
    )
    precision_check_args(sp, "fp16", "--verify-data", tolerance=0.1)


def check_outputs(args: argparse.Namespace) -> None:
    """OUT and its card: never one of the inputs, never an existing file without --overwrite
    (docs/CONTRACT.md "Files"), checked before any work."""
    from pathlib import Path

    from ..fermodel.files import checked_model_file
    from ..userfiles import check_output

    inputs = (checked_model_file(args.model), args.summary, args.verify_data)
    outs = [Path(args.out)] + ([] if args.format == "onnx" else [Path(args.out).with_suffix(".md")])
    for out in outs:
        check_output(out, inputs=inputs, overwrite=args.overwrite, error=UsageError)


def run(args: argparse.Namespace) -> int:
    from ..export.workflows import export_model

    check_outputs(args)
    card = json.loads(args.card) if args.card else None
    if card is not None and not isinstance(card, dict):
        raise UsageError("--card must be a JSON object")
    summary = None
    if args.summary:
        try:
            size = require_file(args.summary).stat().st_size
            if size > MAX_SUMMARY_BYTES:  # a summary is a few KB: refuse before reading it
                raise ValueError(f"{size / 2**20:.0f} MiB, larger than any summary")
            with open(args.summary) as fh:
                summary = json.load(fh)
        except (OSError, ValueError) as e:
            raise UsageError(f"{args.summary}: not a reproduce summary ({e})") from None
    if args.format == "onnx":
        from ..export.workflows import export_onnx

        parity = export_onnx(
            args.model,
            args.out,
            card,
            args.verify_data,
            args.split,
            args.method,
            onnx_input=args.onnx_input,
        )
        if parity:
            print(
                f"ferkit: ONNX Runtime against torch on {parity.split} ({parity.method}, "
                f"{parity.n} faces): max |score difference| {parity.max_score_difference:.2e}, "
                f"{100 * parity.same_predictions:.2f} % identical predictions",
                file=sys.stderr,
            )
        print(f"ferkit: wrote {args.out}", file=sys.stderr)
        return 0
    check = export_model(
        args.model,
        args.out,
        args.dtype,
        card,
        args.verify_data,
        args.split,
        args.method,
        args.tolerance,
        summary=summary,
    )
    if check:
        print(f"ferkit: {check.line()}", file=sys.stderr)
    elif args.verify_data and args.dtype == "fp16":
        print(
            f"ferkit: {args.model} holds fp16 weights already: the fp16 check on its card is kept",
            file=sys.stderr,
        )
    print(f"ferkit: wrote {args.out}", file=sys.stderr)
    return 0
