"""The annotated copy's probability panel: readable and whole wherever the face is."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ferkit.labels import LABELS
from ferkit.predict.annotate import _PAD, _panel_font, annotate, place_panel
from ferkit.predict.detect import Box
from ferkit.predict.recognizer import Face


def _inside(p, w, h) -> bool:
    return p.x >= 0 and p.x + p.width <= w and p.y >= 0 and p.y + p.height <= h


def _overlaps(p, b: Box) -> bool:
    return not (
        p.x + p.width <= b.x or b.x + b.w <= p.x or p.y + p.height <= b.y or b.y + b.h <= p.y
    )


@pytest.mark.parametrize(
    "size, box, where",
    [
        ((640, 480), Box(100, 100, 200, 200), "right"),
        ((640, 480), Box(420, 100, 200, 200), "left"),
        ((300, 480), Box(20, 20, 260, 260), "below"),
        ((200, 150), Box(0, 0, 200, 150), "inside"),  # the face fills the photo
        ((120, 90), Box(0, 0, 120, 90), "inside"),  # and the photo is small
    ],
)
def test_panel_is_whole_inside_the_photo_and_beside_the_face_when_it_can_be(size, box, where):
    w, h = size
    draw = ImageDraw.Draw(Image.new("RGB", size))
    font, label_w, text_h = _panel_font(draw, LABELS, h, 18)
    p = place_panel(box, w, h, label_w, text_h)
    assert _inside(p, w, h), p
    assert p.row >= text_h + _PAD - 1 and p.bar_w >= 30  # rows do not overlap; bars show
    widest = max(draw.textbbox((0, 0), lab, font=font)[2] for lab in LABELS)
    assert p.label_w >= widest  # "neutral", "surprise" whole
    if where == "inside":
        assert _overlaps(p, box)
    else:
        assert not _overlaps(p, box)
        assert {
            "right": p.x >= box.x + box.w,
            "left": p.x + p.width <= box.x,
            "below": p.y >= box.y + box.h,
        }[where]


def test_annotate_draws_the_panel_where_it_was_placed():
    rgb = np.full((150, 200, 3), 255, np.uint8)
    probs = dict.fromkeys(LABELS, 0.0) | {"neutral": 1.0}
    face = Face(Box(0, 0, 200, 150), "neutral", dict(probs), probs, 1.0)
    out = annotate(rgb, [face])
    assert out.shape == rgb.shape and (out != 255).any()
    draw = ImageDraw.Draw(Image.new("RGB", (200, 150)))
    _, label_w, text_h = _panel_font(draw, LABELS, 150, max(8, 10 * 3 // 4))
    p = place_panel(face.box, 200, 150, label_w, text_h)
    # the neutral bar (last row) is full length and in its colour; the angry one (first) empty
    y = p.row_top(6) + text_h // 2
    bar_x = p.x + 2 * _PAD + p.label_w
    assert tuple(out[y, bar_x + p.bar_w - 2]) == (150, 150, 150)
    assert tuple(out[p.row_top(0) + text_h // 2, bar_x + p.bar_w - 2]) == (70, 70, 70)
