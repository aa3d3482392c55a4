"""FER-2013's seven expression labels, in Kaggle's order (the order used everywhere in ferkit),
its splits and sizes, and the paper's augmentation ranges."""

from __future__ import annotations

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(LABELS)
#: Each label's colour (RGB) in every picture: annotated copies, the web page, timelines.
LABEL_COLOURS = {
    "angry": (220, 40, 40),
    "disgust": (120, 160, 30),
    "fear": (150, 60, 200),
    "happy": (250, 190, 0),
    "sad": (40, 110, 230),
    "surprise": (240, 110, 20),
    "neutral": (150, 150, 150),
}

#: The splits of Kaggle's ``Usage`` column; every split but Training is a test split.
SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
TRAIN_SPLIT = "Training"

IMAGE_SIZE = 48  #: FER-2013 faces are 48x48 grey images.
INPUT_SIZE = 42  #: The networks see 42x42 crops.

#: The paper's augmentation ranges (III-C-2): rotation up to 45 degrees, a side of 42-54 px
#: (48 px +- 12.5 %).
PAPER_ROTATION, PAPER_RESCALE = 45.0, 0.125


def label_index(name: str) -> int:
    """The class index of a label name (case-insensitive); ValueError if unknown."""
    try:
        return LABELS.index(name.strip().lower())
    except ValueError:
        raise ValueError(f"unknown label {name!r} (expected one of {', '.join(LABELS)})") from None
