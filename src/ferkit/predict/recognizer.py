"""From photos to emotions: detect faces, frame them as FER-2013 frames its faces, classify.

Two calls from a photo to ``[(box, label, scores)]``::

    rec = ferkit.Recognizer()              # the shipped model, or Recognizer("runs/x")
    faces = rec.predict("photo.jpg")       # largest face first
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..argtypes import DEFAULT_ALIGN
from ..images import MAX_PIXELS, as_grey, load_grey, load_image
from ..labels import IMAGE_SIZE
from .detect import DEFAULT_DETECTOR, Box, FaceDetector, create_detector

#: Extra context around a detected box on each side, as a fraction of its side. FER-2013
#: frames a face as the Haar box itself (box side / frame side: median 0.98 over 1,559
#: Training faces; ``scripts/calibrate_margin.py --fer``), so none is added.
DEFAULT_MARGIN = 0.0

#: Views per face unless told otherwise: Eval1's 10 crops. On the 190 wild-dev photos they were
#: right 92 times where the centre crop alone was right 84 (BKStart + SVM), for ~4-15 ms a face.
DEFAULT_VIEWS = "eval1"


@dataclass
class Face:
    """One recognised face."""

    box: Box
    label: str
    scores: dict[str, float]
    probabilities: dict[str, float]
    confidence: float
    track: int | None = None  # in a video: the id that follows the face (tracking.FaceTracker)

    def to_dict(self) -> dict:
        """The ``predict --json`` object, without ``file``/``frame``."""
        eyes = self.box.eyes
        return {
            "box": self.box.to_dict(),
            "eyes": None if eyes is None else [[round(v, 1) for v in p] for p in eyes],
            "label": self.label,
            "scores": self.scores,
            "probabilities": self.probabilities,
            "confidence": self.confidence,
            "track": self.track,
        }

    def __iter__(self):  # unpacks as (box, label, scores), the shape users of `fer` expect
        return iter((self.box, self.label, self.scores))


def crop_face(
    grey: np.ndarray, box: Box, margin: float = DEFAULT_MARGIN, roll: float = 0.0
) -> np.ndarray:
    """A square 48x48 crop around ``box`` with ``margin`` on each side, turned by ``roll``
    degrees (:attr:`Box.roll`: the eyes level); edges replicated."""
    from PIL import Image

    side = max(box.w, box.h) * (1 + 2 * margin)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    if not roll:
        sub = _cut_square(grey, cx, cy, side)
        return np.asarray(Image.fromarray(sub).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))
    # Cut upright with room for the turn, shrink (antialiased) to 48 px a face side plus that
    # room, turn about the centre and keep the middle 48 px.
    t = math.radians(roll)
    room = math.ceil(IMAGE_SIZE * (abs(math.cos(t)) + abs(math.sin(t)) - 1) / 2)
    n = IMAGE_SIZE + 2 * room
    sub = Image.fromarray(_cut_square(grey, cx, cy, side * n / IMAGE_SIZE))
    turned = sub.resize((n, n), Image.BILINEAR).rotate(roll, Image.BILINEAR)
    return np.asarray(turned.crop((room, room, room + IMAGE_SIZE, room + IMAGE_SIZE)))


def _cut_square(grey: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """The ``side`` square centred on (cx, cy), the image's edges replicated where it leaves it."""
    x0, y0 = round(cx - side / 2), round(cy - side / 2)
    s = max(1, round(side))
    h, w = grey.shape
    sub = grey[max(0, y0) : min(h, y0 + s), max(0, x0) : min(w, x0 + s)]
    pad = ((max(0, -y0), max(0, y0 + s - h)), (max(0, -x0), max(0, x0 + s - w)))
    if any(p for pair in pad for p in pair):
        sub = np.pad(sub, pad, mode="edge")
    return sub


class Recognizer:
    """A trained model plus a face detector: photos in, :class:`Face` lists out.

    ``int8=True`` runs the int8 version of the model on the CPU (about twice as fast for one
    face; needs the calibration ``ferkit quantize`` writes beside the weights);
    ``backend="onnx"`` runs it with ONNX Runtime (a ``.onnx`` file, or any model converted).
    ``precision`` is the network's compute precision (``device.PRECISIONS``; auto: bf16 where
    the hardware has it). ``align`` turns each face upright by its eyes where the detector
    gives them (BlazeFace does, Haar does not). ``model`` may be a list of models (paths or
    loaded): they score as one (:class:`~ferkit.fermodel.ensemble.Ensemble`).
    """

    def __init__(
        self,
        model=None,
        device: str = "auto",
        detector: str | FaceDetector = DEFAULT_DETECTOR,
        views: str = DEFAULT_VIEWS,
        margin: float = DEFAULT_MARGIN,
        batch: int = 128,
        max_pixels: int = MAX_PIXELS,
        int8: bool = False,
        backend: str = "torch",
        precision: str = "auto",
        align: bool = DEFAULT_ALIGN,
    ):
        from ..device import autocast_dtype, resolve_device
        from ..fermodel.ensemble import load_models
        from ..fermodel.model import FerModel

        given = list(model) if isinstance(model, list | tuple) else [model]
        on_cpu = int8 or backend == "onnx" or any(isinstance(m, FerModel) and m.int8 for m in given)
        dev = resolve_device(device, int8=on_cpu)
        self.model = load_models(given, dev, int8, backend)
        if views not in ("center", "eval1"):
            raise ValueError(f"views must be 'center' or 'eval1', not {views!r}")
        self.views, self.margin, self.batch, self.max_pixels = views, margin, batch, max_pixels
        self.align = align
        self._detector_spec = detector
        self._detectors = threading.local()
        self._dtype = autocast_dtype(dev, precision)

    @property
    def detector(self) -> FaceDetector:
        """Created on first use, so ``detect=False`` work never needs OpenCV; one per thread
        when made from a name, because OpenCV's cascade gives wrong boxes when two threads
        share one (a detector object passed in is the caller's to share or not)."""
        spec = self._detector_spec
        if not isinstance(spec, str):
            return spec
        if (made := getattr(self._detectors, "detector", None)) is None:
            made = self._detectors.detector = create_detector(spec)
        return made

    def predict(
        self, image, color: str = "rgb", detect: bool = True, views: str | None = None
    ) -> list[Face]:
        """The faces in one image (path, bytes, PIL image or array), largest first."""
        return self.predict_many([image], color=color, detect=detect, views=views)[0]

    def predict_many(
        self, images: Sequence, color: str = "rgb", detect: bool = True, views: str | None = None
    ) -> list[list[Face]]:
        """Faces of many images; every face of every image goes through the network in batches."""
        crops, owners, boxes = [], [], []
        for i, img in enumerate(images):
            for box, crop in self.find_faces(img, color=color, detect=detect):
                crops.append(crop)
                owners.append(i)
                boxes.append(box)
        results: list[list[Face]] = [[] for _ in images]
        faces = self.classify(np.stack(crops) if crops else None, boxes, views)
        for face, i in zip(faces, owners, strict=True):
            results[i].append(face)
        return results

    def warm_up(self) -> None:
        """Make what the first photo would otherwise wait for: the detector (BlazeFace's
        network is traced on first use) and one pass of the model."""
        self.predict(np.full((64, 64, 3), 128, np.uint8))
        self.classify(np.full((1, IMAGE_SIZE, IMAGE_SIZE), 128, np.uint8), [Box(0, 0, 1, 1)])

    def decode(
        self, image, color: str = "rgb", detect: bool = True, max_pixels: int | None = None
    ) -> np.ndarray:
        """The pixels :meth:`find_faces` needs of an image (path, bytes, PIL image or array):
        RGB (H, W, 3) for a detector that sees colour, else grey (H, W), a third the memory.
        Larger than ``max_pixels`` (default: the recognizer's) is an ImageError."""
        load = load_image if detect and self.detector.color else load_grey
        return load(image, color=color, max_pixels=max_pixels or self.max_pixels)

    def find_faces(
        self, image, color: str = "rgb", detect: bool = True
    ) -> list[tuple[Box, np.ndarray]]:
        """(box, 48x48 grey crop) for each face, largest first; the whole image if not ``detect``.
        With ``align`` (the default) a box with eyes is cropped with its eyes level."""
        pixels = self.decode(image, color, detect)
        grey = as_grey(pixels)
        h, w = grey.shape
        if not detect:
            return [(Box(0, 0, w, h), crop_face(grey, Box(0, 0, w, h), margin=0.0))]
        return [
            (b, crop_face(grey, b, self.margin, b.roll if self.align else 0.0))
            for b in self.detector.detect(pixels)
        ]

    @torch.no_grad()
    def classify(
        self, faces48: np.ndarray | None, boxes: Sequence[Box], views: str | None = None
    ) -> list[Face]:
        """Label 48x48 grey faces (N, 48, 48); ``boxes`` are carried into the results."""
        if faces48 is None or len(faces48) == 0:
            return []
        views = views or self.views
        avg = self.model.score(faces48, views, batch=self.batch, dtype=self._dtype)
        probs = self.model.probabilities(avg)
        labels = self.model.labels
        out = []
        for box, s, p in zip(boxes, avg.tolist(), probs.tolist(), strict=True):
            k = int(np.argmax(s))
            out.append(
                Face(
                    box,
                    labels[k],
                    dict(zip(labels, s, strict=True)),
                    dict(zip(labels, p, strict=True)),
                    p[k],
                )
            )
        return out
