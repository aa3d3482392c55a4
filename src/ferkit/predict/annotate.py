"""Annotated copies: a box and label on every face, and a panel with its 7 probabilities.

The panel is laid out from the measured size of its text: beside the face where the photo has
room, else below, above or inside it, always whole inside the photo, with its font made smaller
when the photo is too short for seven readable rows (a face that fills the photo included)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..labels import LABEL_COLOURS
from .detect import Box
from .recognizer import Face

_PAD = 3  # pixels around the panel's text and between its rows
_MIN_FONT = 8


@dataclass(frozen=True)
class Panel:
    """Where a face's probability panel goes: top-left corner, row height, label column and
    bar widths (pixels)."""

    x: int
    y: int
    row: int
    label_w: int
    bar_w: int
    rows: int = 7

    @property
    def width(self) -> int:
        return self.label_w + self.bar_w + 3 * _PAD

    @property
    def height(self) -> int:
        return self.rows * self.row + _PAD

    def row_top(self, k: int) -> int:
        return self.y + _PAD + k * self.row


def place_panel(
    box: Box, image_w: int, image_h: int, label_w: int, text_h: int, rows: int = 7
) -> Panel:
    """The panel beside ``box`` (right, then left, below, above), or inside it at its bottom
    left when none of those fits; moved back inside the image if it still sticks out."""
    bar_w = max(30, min(2 * label_w, image_w - label_w - 3 * _PAD))
    probe = Panel(0, 0, text_h + _PAD, label_w, max(0, bar_w), rows)
    w, h, gap = probe.width, probe.height, 2
    spots = [
        (box.x + box.w + gap, box.y),  # right of the face
        (box.x - w - gap, box.y),  # left of it
        (box.x, box.y + box.h + gap),  # below
        (box.x, box.y - h - gap),  # above
    ]
    x, y = next(
        ((x, y) for x, y in spots if x >= 0 and x + w <= image_w and y >= 0 and y + h <= image_h),
        (box.x + gap, box.y + box.h - h - gap),  # inside, bottom left
    )
    x = min(max(0, x), max(0, image_w - w))
    y = min(max(0, y), max(0, image_h - h))
    return Panel(x, y, probe.row, label_w, probe.bar_w, rows)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _panel_font(draw, labels, image_h: int, size: int):
    """The largest font up to ``size`` whose seven rows fit the image's height; with the
    widest label's width and the text height it gives."""
    while True:
        font = _font(size)
        boxes = [draw.textbbox((0, 0), lab, font=font) for lab in labels]
        text_h = max(b[3] for b in boxes)
        if size <= _MIN_FONT or len(labels) * (text_h + _PAD) + _PAD <= image_h:
            return font, max(b[2] for b in boxes), text_h
        size -= 1


def annotate(rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) with every face drawn on it."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(im)
    width, height = im.size
    size = max(10, height // 40)
    font = _font(size)
    line = max(2, height // 300)
    for f in faces:
        b, colour = f.box, LABEL_COLOURS.get(f.label, (0, 200, 0))
        draw.rectangle([b.x, b.y, b.x + b.w, b.y + b.h], outline=colour, width=line)
        text = f"{f.label} {100 * f.confidence:.0f}%"
        if f.track is not None:  # a video's face: its id, as the timeline names it
            text = f"#{f.track} {text}"
        tx, ty = b.x, max(0, b.y - size - 4)
        box = draw.textbbox((tx, ty), text, font=font)
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=colour)
        draw.text((tx, ty), text, fill=(0, 0, 0), font=font)
        labels = list(f.probabilities)
        pfont, label_w, text_h = _panel_font(draw, labels, height, max(_MIN_FONT, size * 3 // 4))
        p = place_panel(b, width, height, label_w, text_h, len(labels))
        draw.rectangle([p.x, p.y, p.x + p.width, p.y + p.height], fill=(30, 30, 30))
        bar_x = p.x + 2 * _PAD + p.label_w
        for k, (label, prob) in enumerate(f.probabilities.items()):
            y = p.row_top(k)
            draw.text((p.x + _PAD, y), label, fill=(255, 255, 255), font=pfont)
            draw.rectangle([bar_x, y + 1, bar_x + p.bar_w, y + text_h], fill=(70, 70, 70))
            fill = LABEL_COLOURS.get(label, (0, 200, 0))
            draw.rectangle([bar_x, y + 1, bar_x + int(p.bar_w * prob), y + text_h], fill=fill)
    return np.asarray(im)
