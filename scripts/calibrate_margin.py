"""Choose the context margin around detected faces: accuracy on labelled photos per margin.

    python scripts/calibrate_margin.py --model runs/x ../shared/datasets/wild-dev

FER-2013's faces include some hair and chin; a Haar box is tighter. Prints one JSON line per margin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ferkit.batch import read_labels
from ferkit.predict import Recognizer, crop_face


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", help="a folder with images/ and labels.csv")
    ap.add_argument("--model", required=True)
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    args = ap.parse_args()
    labels = read_labels(Path(args.folder) / "labels.csv")
    rec = Recognizer(args.model)
    photos = []
    for f in sorted((Path(args.folder) / "images").iterdir()):
        found = rec.find_faces(str(f))
        if found:  # only photos with a face: margins cannot help the others
            photos.append((f.name, found[0][0], rec_grey(f)))
    for m in args.margins:
        crops = np.stack([crop_face(g, box, m) for _, box, g in photos])
        faces = rec.classify(crops, [box for _, box, _ in photos])
        right = sum(
            face.label == labels[name] for (name, _, _), face in zip(photos, faces, strict=True)
        )
        print(
            json.dumps(
                {
                    "margin": m,
                    "photos_with_face": len(photos),
                    "right": right,
                    "accuracy": round(right / len(photos), 3),
                }
            )
        )


def rec_grey(path: Path) -> np.ndarray:
    from ferkit.images import load_image, to_grey

    return to_grey(load_image(str(path)))


if __name__ == "__main__":
    main()
