"""`ferkit augment-preview`: draw faces beside augmented versions (Fig. 1)."""

from __future__ import annotations

import argparse
import sys

from ..argtypes import DATA_HELP, SEED, add_overwrite_option, number
from ..userfiles import check_output
from .options import UsageError

NAME = "augment-preview"
HELP = "draw faces beside augmented versions (Fig. 1)"
DESCRIPTION = None


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--data", required=True, help=DATA_HELP)
    sp.add_argument("--out", required=True, help="PNG file to write")
    add_overwrite_option(sp, "the --out file")
    rows = number(int, min=1, max=64)  # a picture, not a data set
    sp.add_argument("--faces", type=rows, default=6, help="how many faces (rows)")
    sp.add_argument("--per-face", type=rows, default=7, help="augmented versions per face")
    sp.add_argument("--seed", type=SEED, default=0, help="random seed")
    from ..training.config import AUGMENT_OPTIONS, add_train_options

    add_train_options(sp, only=AUGMENT_OPTIONS)  # as `train` takes them


def run(args: argparse.Namespace) -> int:
    from ..data.augment import preview_views
    from ..data.fer2013 import preview_faces
    from ..figures import augment_preview
    from ..training.config import augment_config

    check_output(args.out, inputs=[args.data], overwrite=args.overwrite, error=UsageError)
    faces = preview_faces(args.data, args.faces, args.seed)
    aug = augment_config(vars(args))
    views = preview_views(faces.images, args.per_face, args.seed, aug)
    augment_preview(faces.images, faces.labels, views, args.out, aug.describe())
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
