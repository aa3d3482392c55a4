"""Choose the context margin around detected faces, two ways.

    python scripts/calibrate_margin.py --fer ../shared/datasets/fer2013/fer2013-dev.csv.gz
    python scripts/calibrate_margin.py --photos ../shared/datasets/wild-dev --model runs/x

``--fer`` measures how FER-2013 itself frames faces: it runs ferkit's detector on Training
images (upscaled 4x, with a replicated border so boxes are not clipped) and reports the Haar
box side as a fraction of the 48x48 frame; the margin that reproduces that frame is
``(1 / ratio - 1) / 2``. ``--detector blazeface`` measures BlazeFace's boxes the same way.
This needs no labels and cannot be tuned to a test set.
``--photos`` checks the choice: accuracy on labelled photos per margin. One JSON line per result.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ferkit.predict.files import read_labels
from ferkit.predict.recognizer import Recognizer, crop_face


def fer_framing(data: str, n: int, upscale: int = 4, detector: str = "haar") -> dict:
    """Median detector box side / FER-2013 frame side, and the margin it implies."""
    import cv2
    from PIL import Image

    from ferkit.data.fer2013 import load_fer2013
    from ferkit.predict.detect import HaarDetector, create_detector

    images = load_fer2013(data).split("Training").images[:n]
    det = HaarDetector(pad=0.0) if detector == "haar" else create_detector(detector)
    if detector.startswith("blazeface"):
        det.to_fer_frame = False  # the raw boxes: what the frame conversion is measured from
    side = 48 * upscale
    border = side // 3
    ratios, centres = [], []
    for im in images:
        big = np.asarray(Image.fromarray(im).resize((side, side), Image.BICUBIC))
        big = cv2.copyMakeBorder(big, *[border] * 4, cv2.BORDER_REPLICATE)
        boxes = det.detect(big)
        if boxes:
            b = boxes[0]
            ratios.append(max(b.w, b.h) / side)
            centres.append(((b.x + b.w / 2 - border) / side, (b.y + b.h / 2 - border) / side))
    r = float(np.median(ratios))
    return {
        "images": len(images),
        "faces_found": len(ratios),
        "box_to_frame_median": round(r, 3),
        "box_to_frame_quartiles": np.percentile(ratios, [25, 75]).round(3).tolist(),
        "box_centre_median": np.median(centres, axis=0).round(3).tolist(),
        "implied_margin": round((1 / r - 1) / 2, 3),
    }


def photo_accuracy(
    folder: str, model: str, margins: list[float], detector: str = "haar", align: bool = False
) -> list[dict]:
    """Right labels on a folder with images/ and labels.csv, per margin (photos with a face);
    with ``align``, each face turned upright by its eyes (detectors that give them)."""
    from ferkit.images import load_grey

    labels = read_labels(Path(folder) / "labels.csv")
    rec = Recognizer(model, detector=detector, align=align)
    photos = []
    for f in sorted((Path(folder) / "images").iterdir()):
        found = rec.find_faces(str(f))
        if found:  # only photos with a face: margins cannot help the others
            photos.append((f.name, found[0][0], load_grey(str(f))))
    out = []
    for m in margins:
        crops = np.stack([crop_face(g, box, m, box.roll if align else 0.0) for _, box, g in photos])
        faces = rec.classify(crops, [box for _, box, _ in photos])
        right = sum(
            face.label == labels[name] for (name, _, _), face in zip(photos, faces, strict=True)
        )
        out.append(
            {
                "detector": detector,
                "align": align,
                "margin": m,
                "photos_with_face": len(photos),
                "right": right,
                "accuracy": round(right / len(photos), 3),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fer", help="FER-2013 file: measure its framing")
    ap.add_argument("--images", type=int, default=800, help="--fer: Training images to use")
    ap.add_argument("--photos", help="a folder with images/ and labels.csv")
    ap.add_argument("--model", help="--photos: the model to classify with")
    ap.add_argument("--margins", type=float, nargs="+", default=[-0.1, 0.0, 0.1, 0.2])
    ap.add_argument("--detector", default="haar", help="haar (ferkit's chain) or blazeface")
    ap.add_argument(
        "--align", action="store_true", help="--photos: turn each face upright by its eyes"
    )
    args = ap.parse_args()
    if not (args.fer or args.photos) or (args.photos and not args.model):
        ap.error("give --fer FILE and/or --photos FOLDER --model MODEL")
    if args.fer:
        print(json.dumps(fer_framing(args.fer, args.images, detector=args.detector)))
    if args.photos:
        for row in photo_accuracy(args.photos, args.model, args.margins, args.detector, args.align):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
