"""What several commands share: the options of a model, a data file, a precision check,
the photo size guard, and how a user mistake ends a command."""

from __future__ import annotations

import argparse

from ..argtypes import (
    DATA_HELP,
    DEFAULT_ALIGN,
    DEFAULT_DETECTOR,
    DETECTORS,
    MAX_PIXELS,
    NON_NEGATIVE,
    PRECISIONS,
    add_device_option,
    number,
)
from ..console import say

EXIT_INPUT, EXIT_USAGE = 1, 2


class UsageError(ValueError):
    """A mistake in the command's arguments (exit status 2)."""


def model_args(sp: argparse.ArgumentParser) -> None:
    """--model, --device, --backend, --int8 and --precision, as every command that runs a
    trained model takes them."""
    sp.add_argument(
        "--model",
        nargs="+",
        metavar="MODEL",
        help="model.safetensors, run folder or (--backend onnx) .onnx file (default: the shipped "
        "model); several: an ensemble that averages their scores (raw scores for models with "
        "the same loss, calibrated probabilities where the losses differ)",
    )
    add_device_option(sp)
    sp.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default="torch",
        help="torch (default), or onnx: ONNX Runtime on the CPU, from a .onnx file or any model "
        "converted on load (pip install 'ferkit[onnx]')",
    )
    sp.add_argument(
        "--int8",
        action="store_true",
        help="run the int8 network on the CPU (about 2x faster for one face); needs the "
        "calibration `ferkit quantize` writes beside the weights",
    )
    sp.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the network's compute precision: auto = bf16 autocast on CPUs with bf16 "
        "instructions and on CUDA, else fp32 (bf16 moves accuracy by ~0.1 point; evaluate "
        "records what was used); int8 and ONNX Runtime models compute as they are",
    )


def load_model_args(args: argparse.Namespace):
    """The model (an ensemble for several) that ``model_args``' options name, loaded."""
    from ..device import resolve_device
    from ..fermodel.ensemble import load_models

    return load_models(
        args.model or [None],
        resolve_device(args.device, args.int8 or args.backend == "onnx"),
        int8=args.int8,
        backend=args.backend,
    )


def check_detector(name: str) -> None:
    """Make the ``--detector`` once, so that one it cannot be (Haar on OpenCV 5, or without
    OpenCV) is one line before any work, not a traceback at the first photo."""
    from ..predict.detect import create_detector

    try:
        create_detector(name)
    except RuntimeError as e:
        raise UsageError(str(e)) from None


def detector_arg(sp: argparse.ArgumentParser) -> None:
    """--detector and --align, as predict and serve take them."""
    sp.add_argument(
        "--detector",
        choices=DETECTORS,
        default=DEFAULT_DETECTOR,
        help="face detector: blazeface (MediaPipe's BlazeFace short range, shipped in ferkit; "
        "the default: about 3x faster than haar and finds more faces), blazeface-full (its "
        "full-range model, for distant faces), haar (OpenCV 4's cascades: pip install "
        "'ferkit[haar]')",
    )
    sp.add_argument(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_ALIGN,
        help="turn each face upright by its eyes before cropping, where the detector gives "
        "them (BlazeFace does, Haar does not); default: crop faces as the box lies, which "
        "measured better with the shipped model on real photos",
    )


def max_megapixels_arg(sp: argparse.ArgumentParser, larger: str) -> None:
    """--max-megapixels, the decompression-bomb guard of predict and serve (the same default)."""
    sp.add_argument(
        "--max-megapixels",
        type=number(float, above=0, max=10_000),
        default=MAX_PIXELS / 1e6,
        help=f"larger images {larger} (a guard against decompression bombs)",
    )


def precision_check_args(
    sp: argparse.ArgumentParser, precision: str, data_option: str, tolerance: float
) -> None:
    """--split, --method and --tolerance of the check that a lower-precision copy scores as
    fp32 does (``export.check_precision``), as export (fp16) and quantize (int8) take them."""
    sp.add_argument("--split", default="PublicTest", help=f"split of {data_option} to compare on")
    sp.add_argument(
        "--method",
        default="center",
        choices=["center", "eval1", "eval2"],
        help=f"test views for the {precision} check",
    )
    sp.add_argument(
        "--tolerance",
        type=NON_NEGATIVE,
        default=tolerance,
        help=f"accuracy points {precision} may differ from fp32 by",
    )


def data_file_args(sp: argparse.ArgumentParser) -> None:
    """--data, --skip-bad and --resize, as every command that reads a FER-2013 file takes them."""
    sp.add_argument("--data", required=True, help=DATA_HELP)
    sp.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave bad rows out and report them, instead of stopping",
    )
    sp.add_argument(
        "--resize", action="store_true", help="image folders: resize images that are not 48x48"
    )


def read_data(args: argparse.Namespace):
    """The data set of ``data_file_args``' options."""
    from ..data.fer2013 import load_fer2013

    return load_fer2013(
        args.data, on_error="skip" if args.skip_bad else "raise", resize=args.resize
    )


def report_skipped(ds) -> None:
    if ds.n_skipped:
        say(f"ferkit: {ds.skipped_message()}")
