"""Write a 640x480 clip of two real faces that cross: the sample photo's face and its mirror
image move towards each other, one growing and one shrinking, and overlap as they pass (the
second drawn over the first). The tracker's test runs on it, and the README's timeline:

    python scripts/make_demo_clip.py two-faces.mp4
    ferkit predict two-faces.mp4 --smooth 0.6 --timeline docs/ --out annotated/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from ferkit.images import load_image, sample_photo

Square = tuple[int, int, int]  # x, y, side


def two_faces_clip(
    path: str | Path, frames: int = 36, fps: float = 12
) -> list[tuple[Square, Square]]:
    """Write the clip; each frame's squares (x, y, side) of the first face and the second."""
    import cv2

    photo = load_image(sample_photo())[10:190, 80:260]  # the face and a little around it
    faces = [photo, photo[:, ::-1].copy()]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {path}")
    truth = []
    for t in range(frames):
        canvas = np.full((480, 640, 3), 200, np.uint8)
        squares = ((20 + 12 * t, 60, 180 + 2 * t), (420 - 12 * t, 140, 240 - 2 * t))
        for img, (x, y, side) in zip(faces, squares, strict=True):
            small = np.asarray(Image.fromarray(img).resize((side, side)))
            canvas[y : y + side, x : x + side] = small[: 480 - y, : 640 - x]
        writer.write(canvas[..., ::-1].copy())
        truth.append(squares)
    writer.release()
    return truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the .mp4 to write")
    ap.add_argument("--frames", type=int, default=36)
    args = ap.parse_args()
    two_faces_clip(args.out, args.frames)


if __name__ == "__main__":
    main()
