"""`ferkit predict`: the emotion of every face in photos, folders and videos."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..argtypes import (
    COUNT,
    POSITIVE_INT,
    add_json_option,
    add_overwrite_option,
    number,
)
from ..userfiles import check_output, check_output_folder
from .options import (
    EXIT_INPUT,
    UsageError,
    check_detector,
    detector_arg,
    max_megapixels_arg,
    model_args,
)

NAME = "predict"
HELP = "the emotion of every face in photos, folders and videos"
DESCRIPTION = (
    "Detect faces (BlazeFace unless --detector says otherwise), frame each like a FER-2013 "
    "face, and classify it. "
    "PATHs may be images, folders (searched recursively) or videos. Prints one line per face "
    "(--json: one JSON object per face); files that cannot be read get a line on stderr and "
    "make the exit status 1, files with no face only get the line."
)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("paths", nargs="*", metavar="PATH", help="images, folders or videos")
    sp.add_argument(
        "--sample",
        action="store_true",
        help="also the photo that ships with ferkit (NASA's portrait of Eileen Collins, public "
        "domain): a first run with nothing to download",
    )
    model_args(sp)
    sp.add_argument(
        "--views",
        choices=["center", "eval1"],
        default="eval1",
        help="test-time views per face: eval1 = 10 crops (steadier on real photos), center = "
        "one (about 10x less network time)",
    )
    sp.add_argument("--no-detect", action="store_true", help="each input is already a cropped face")
    sp.add_argument("--labels", metavar="CSV", help="file,label CSV: print the accuracy summary")
    sp.add_argument(
        "--out",
        help="folder for annotated copies of images and videos (--engine ray: the records "
        "file, .jsonl or .parquet)",
    )
    add_overwrite_option(sp, "--engine ray's --out records file")
    add_json_option(sp, "JSON lines, one a face")
    sp.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (default): this process; ray: a pool of Ray Data workers, each with its own "
        "copy of the model, videos split into frame ranges; prints JSON lines, or writes them "
        "to --out (pip install 'ferkit[ray]')",
    )
    sp.add_argument(
        "--workers",
        type=number(int, min=1, max=4096),
        help="--engine ray: workers, one CPU each (default: one per CPU of the cluster)",
    )
    sp.add_argument(
        "--address",
        help="--engine ray: an existing Ray cluster (e.g. ray://head:10001 or auto); default: a "
        "local cluster sized to this machine (or to --workers)",
    )
    sp.add_argument(
        "--every", type=POSITIVE_INT, default=1, help="videos: analyse every N-th frame"
    )
    sp.add_argument(
        "--smooth",
        type=number(float, min=0, below=1),
        default=0.0,
        metavar="S",
        help="videos and --camera: smooth each tracked face's probabilities over time, S x the "
        "previous frame's + (1 - S) x this one's (0.8: about a 5-frame memory; default 0: off)",
    )
    sp.add_argument(
        "--timeline",
        metavar="DIR",
        help="videos: write NAME.timeline.csv (a row per face per analysed frame: time, track "
        "id, box, seven probabilities) and NAME.timeline.png (each face's probabilities over "
        "time) to DIR, mirrored as --out's copies",
    )
    sp.add_argument(
        "--margin",
        type=number(float, min=0, max=4),
        help="context around each detected face, as a fraction of its side (default 0: "
        "FER-2013 frames a face as the detector's box)",
    )
    max_megapixels_arg(sp, "are refused")
    detector_arg(sp)
    sp.add_argument(
        "--camera",
        type=COUNT,
        metavar="N",
        help="live window on camera N (needs a display and a GUI build of OpenCV, "
        "opencv-python; the headless build ferkit installs cannot open windows)",
    )


def _recognizer_options(args: argparse.Namespace) -> dict:
    """``predict``'s options as :class:`~ferkit.predict.recognizer.Recognizer` arguments, for both engines."""
    from ..predict.recognizer import DEFAULT_MARGIN

    return dict(
        detector=args.detector,
        align=args.align,
        int8=args.int8,
        backend=args.backend,
        precision=args.precision,
        views=args.views,
        margin=DEFAULT_MARGIN if args.margin is None else args.margin,
        max_pixels=int(args.max_megapixels * 1e6),
    )


def _predict_ray(args: argparse.Namespace, labels: dict[str, str] | None):
    """``predict --engine ray``: the same records from a pool of Ray actors."""
    from ..predict.ray_engine import RecognizerSpec, output_format, predict_paths_ray

    if args.camera is not None:
        raise UsageError("--camera runs locally: leave out --engine ray")
    if args.device not in ("auto", "cpu"):
        raise UsageError("--engine ray runs each worker on one CPU: leave out --device")
    if args.smooth or args.timeline:
        raise UsageError(
            "--engine ray reads a video in pieces, untracked: --smooth and --timeline run "
            "locally (leave out --engine ray)"
        )
    try:
        output_format(args.out)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.out:
        inputs = [*args.paths, args.labels, *(args.model or [])]
        check_output(args.out, inputs=inputs, overwrite=args.overwrite, error=UsageError)
    spec = RecognizerSpec(
        model=None if args.model is None else tuple(os.path.abspath(m) for m in args.model),
        detect=not args.no_detect,
        every=args.every,
        **_recognizer_options(args),
    )
    try:
        return predict_paths_ray(
            args.paths,
            spec,
            out=args.out,
            workers=args.workers,
            address=args.address,
            labels=labels,
        )
    except ImportError as e:
        raise UsageError(str(e)) from None


def _predict_done(args: argparse.Namespace, labels: dict[str, str] | None, summary) -> int:
    """The labels summary (stderr, and --json's last line), and the exit status."""
    if labels is not None:
        s = summary.to_dict()
        text = (
            f"{s['files']} files, a face in {s['with_face']}, "
            f"largest face's label right for {s.get('correct', 0)} of {s.get('labelled', 0)} labelled"
            + (f" ({100 * s['accuracy']:.1f} %)" if "accuracy" in s else "")
        )
        print(f"ferkit: {text}", file=sys.stderr)
        if s.get("per_class"):
            rows = [f"{k} {v['correct']}/{v['labelled']}" for k, v in s["per_class"].items()]
            print("ferkit: right per true label: " + ", ".join(rows), file=sys.stderr)
        if args.json:
            print(json.dumps({"summary": s}))
    return EXIT_INPUT if summary.failed else 0


def run(args: argparse.Namespace) -> int:
    from ..predict.files import predict_paths, read_labels, run_camera
    from ..predict.recognizer import Recognizer

    if args.sample:
        from ..images import sample_photo

        args.paths = [*args.paths, str(sample_photo())]
    for flag, value in (("--workers", args.workers), ("--address", args.address)):
        if value is not None and args.engine != "ray":
            raise UsageError(f"{flag} is for --engine ray: add --engine ray or leave it out")
    if not args.no_detect:
        check_detector(args.detector)
    if args.engine == "ray":  # each worker loads the model itself
        if not args.paths:
            raise UsageError("predict needs image, folder or video paths")
        labels = read_labels(args.labels) if args.labels else None
        return _predict_done(args, labels, _predict_ray(args, labels))
    if args.out:  # before the model loads: --out is the folder of annotated copies
        check_output_folder(args.out, "--out is a folder for annotated copies", error=UsageError)
    if args.timeline:
        check_output_folder(args.timeline, "--timeline is a folder", error=UsageError)
    rec = Recognizer(args.model, device=args.device, **_recognizer_options(args))
    if args.camera is not None:
        try:
            run_camera(rec, args.camera, smooth=args.smooth)
        except RuntimeError as e:
            raise UsageError(str(e)) from None
        return 0
    if not args.paths:
        raise UsageError("predict needs image, folder or video paths (or --camera N)")
    labels = read_labels(args.labels) if args.labels else None
    summary = predict_paths(
        rec,
        args.paths,
        detect=not args.no_detect,
        out=args.out,
        as_json=args.json,
        labels=labels,
        every=args.every,
        smooth=args.smooth,
        timeline=args.timeline,
    )
    return _predict_done(args, labels, summary)
