"""Compare face detectors on labelled photos: share of photos with a face, time per photo.

    python scripts/compare_detectors.py ../shared/datasets/wild-dev/images \
        --model src/ferkit/weights/bkvgg12.safetensors --labels ../shared/datasets/wild-dev/labels.csv

Prints one JSON line per configuration (Haar's on the grey photo, BlazeFace's on the colour
one, its network on one torch thread); the README's detector table comes from it. The
``blazeface`` rows are ferkit's detectors (the network, the FER frame, the border search on a
miss); ``blazeface ... network only`` is one pass of the network and its decoding.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

from ferkit.images import load_image, to_grey
from ferkit.predict.blazeface import VARIANTS, compiled_graph, detect_faces
from ferkit.predict.detect import HaarDetector, create_detector
from ferkit.predict.files import read_labels
from ferkit.predict.recognizer import Recognizer

CONFIGS = {
    "haar-default (no rescale/pad)": dict(min_side=0, pad=0.0),
    "haar-default": {},
    "haar-alt2 (no rescale/pad)": dict(
        cascade="haarcascade_frontalface_alt2.xml", min_neighbors=3, min_side=0, pad=0.0
    ),
    "haar-alt2": dict(cascade="haarcascade_frontalface_alt2.xml", min_neighbors=3),
    "haar-default pad 0.35": dict(pad=0.35),
    "haar-default min_neighbors 3": dict(min_neighbors=3),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", help="a folder of photos")
    ap.add_argument("--model", help="also the labels right with this model (needs --labels)")
    ap.add_argument("--labels", help="file,label CSV of the photos")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    files = sorted(
        p for p in Path(args.folder).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}
    )
    photos = [load_image(p) for p in files]
    greys = [to_grey(rgb) for rgb in photos]
    detectors = {name: HaarDetector(**kw).detect for name, kw in CONFIGS.items()}
    detectors["ferkit's chain (haar)"] = create_detector("haar").detect
    for variant in VARIANTS:  # BlazeFace sees the colour photo
        compiled_graph(variant)  # made before the clock starts, as a server does once
        detectors[f"blazeface {variant} network only"] = functools.partial(
            detect_faces, variant=variant
        )
    detectors["blazeface (ferkit's, short range)"] = create_detector("blazeface").detect
    detectors["blazeface-full (ferkit's)"] = create_detector("blazeface-full").detect
    for name, detect in detectors.items():
        inputs = photos if name.startswith("blazeface") else greys
        detect(inputs[0])  # warm-up
        t0 = time.perf_counter()
        found = sum(bool(detect(x)) for x in inputs)
        ms = 1000 * (time.perf_counter() - t0) / len(greys)
        row = {"detector": name, "photos": len(greys), "with_face": found}
        print(
            json.dumps({**row, "rate": round(found / len(greys), 3), "ms_per_photo": round(ms, 1)})
        )
    if args.model and args.labels:
        labels = read_labels(args.labels)
        for detector, align in (("haar", False), ("blazeface", False), ("blazeface", True)):
            rec = Recognizer(args.model, detector=detector, align=align)
            right = sum(
                bool(faces) and faces[0].label == labels[f.name]
                for f, faces in zip(files, rec.predict_many(photos), strict=True)
            )
            row = {"detector": detector, "align": align, "views": rec.views, "right": right}
            print(json.dumps({**row, "photos": len(files)}))


if __name__ == "__main__":
    main()
