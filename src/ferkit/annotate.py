"""Annotated copies: a box and label on every face, and a small bar chart of its 7 probabilities."""

from __future__ import annotations

import numpy as np

from .predict import Face

_COLOURS = {
    "angry": (220, 40, 40),
    "disgust": (120, 160, 30),
    "fear": (150, 60, 200),
    "happy": (250, 190, 0),
    "sad": (40, 110, 230),
    "surprise": (240, 110, 20),
    "neutral": (150, 150, 150),
}


def annotate(rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) with every face drawn on it."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(im)
    h = im.height
    size = max(10, h // 40)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    line = max(2, h // 300)
    for f in faces:
        b, colour = f.box, _COLOURS.get(f.label, (0, 200, 0))
        draw.rectangle([b.x, b.y, b.x + b.w, b.y + b.h], outline=colour, width=line)
        text = f"{f.label} {100 * f.confidence:.0f}%"
        tx, ty = b.x, max(0, b.y - size - 4)
        box = draw.textbbox((tx, ty), text, font=font)
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=colour)
        draw.text((tx, ty), text, fill=(0, 0, 0), font=font)
        # the bar chart: one row per label, below the box (or inside it, near the bottom)
        bar_h = max(6, size * 3 // 4)
        bx, by = b.x, min(b.y + b.h + line + 2, h - 7 * (bar_h + 1))
        width = max(40, b.w)
        for k, (label, p) in enumerate(f.probabilities.items()):
            y = by + k * (bar_h + 1)
            draw.rectangle([bx, y, bx + width, y + bar_h], fill=(30, 30, 30))
            draw.rectangle(
                [bx, y, bx + int(width * p), y + bar_h], fill=_COLOURS.get(label, (0, 200, 0))
            )
            draw.text((bx + 2, y - 1), label, fill=(255, 255, 255), font=ImageFont.load_default())
    return np.asarray(im)
