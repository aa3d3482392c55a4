"""Face detection behind a small interface, so that another detector can be plugged in.

The default is MediaPipe's BlazeFace, whose weights ship in ferkit (:mod:`.blazeface`): it
sees the colour photo and gives the eyes, which turn each face upright. OpenCV's Haar
cascades stay available (``--detector haar``); they ship inside the ``opencv-python-headless``
4.x wheel (``cv2.data.haarcascades``), and OpenCV 5 dropped ``CascadeClassifier``, hence the
``<5`` pin of the ``haar`` extra.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..argtypes import DEFAULT_DETECTOR
from ..images import as_grey

Point = tuple[float, float]


def eye_roll(eyes: tuple[Point, Point]) -> float:
    """Degrees the line from the right eye to the left turns from the horizontal, clockwise as
    the image shows it (y down): turning the face by this makes it upright."""
    (rx, ry), (lx, ly) = eyes
    return math.degrees(math.atan2(ly - ry, lx - rx))


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the (orientation-corrected) image; ``eyes`` (the person's right
    eye, then left: image left, then right, for a face looking at the camera) where the
    detector gives them."""

    x: int
    y: int
    w: int
    h: int
    eyes: tuple[Point, Point] | None = field(default=None, compare=False)

    @property
    def area(self) -> int:
        return self.w * self.h

    @property
    def roll(self) -> float:
        """:func:`eye_roll` of the box's eyes; 0 without eyes."""
        return 0.0 if self.eyes is None else eye_roll(self.eyes)

    def to_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


class FaceDetector(Protocol):
    """Anything that finds faces in a uint8 image: grey (H, W) or RGB (H, W, 3). ``color``
    says whether it uses colour (else callers may decode grey only, a third of the memory)."""

    color: bool

    def detect(self, image: np.ndarray) -> list[Box]: ...


_WINDOW = 24  # the frontal cascades' detection window, in pixels
_OPENCV_IMPORT = threading.Lock()


def opencv():
    """The ``cv2`` module, imported under a lock. OpenCV's package takes itself out of
    ``sys.modules`` while its native part loads, so a thread importing it at that moment gets
    a module without ``cv2.data`` (seen: the server's first concurrent requests answered 500)."""
    with _OPENCV_IMPORT:
        try:
            import cv2
            import cv2.data  # noqa: F401 (the cascades' folder)
        except ImportError:
            raise RuntimeError(
                "--detector haar needs OpenCV 4: pip install 'ferkit[haar]'"
            ) from None
    return cv2


class HaarDetector:
    """OpenCV's frontal-face Haar cascade; large images are searched at a reduced size."""

    color = False

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face: float = 0.08,
        max_side: int = 640,
        min_side: int = 240,
        pad: float = 0.2,
        mirror: bool = False,
    ):
        cv2 = opencv()
        if not hasattr(cv2, "CascadeClassifier"):
            raise RuntimeError(
                f"--detector haar needs OpenCV 4; this is OpenCV {cv2.__version__}, which has "
                "no CascadeClassifier: pip install 'ferkit[haar]' (or --detector blazeface)"
            )
        self._cv2 = cv2
        self.classifier = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
        if self.classifier.empty():
            raise RuntimeError(f"OpenCV could not load the cascade {cascade}")
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors
        self.min_face, self.max_side, self.min_side, self.pad = min_face, max_side, min_side, pad
        self.mirror = mirror  # search the mirrored image (the profile cascade sees one side only)

    def detect(self, image: np.ndarray) -> list[Box]:
        cv2, grey = self._cv2, as_grey(image)
        h, w = grey.shape
        if self.mirror:
            grey = np.ascontiguousarray(grey[:, ::-1])
        # Large photos are searched smaller (speed); small ones larger, because the cascade's
        # smallest window is 24 px and tightly cropped faces fill the whole picture.
        scale = min(self.max_side / max(h, w), max(1.0, self.min_side / min(h, w)))
        # A replicated border gives a face that fills the frame the context the cascade expects.
        pad = self.pad * min(h, w) * scale
        smallest = self.min_face * (min(h, w) * scale + 2 * pad)
        # Search where the smallest wanted face is the cascade's own 24 px window: OpenCV
        # scans every pyramid level for minSize, so this is ~2x faster for the same faces.
        if smallest > _WINDOW:
            scale, pad = scale * _WINDOW / smallest, pad * _WINDOW / smallest
        img = grey
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            img = cv2.resize(
                grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            )
        pad = round(pad)
        if pad:
            img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = self.classifier.detectMultiScale(
            img,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(_WINDOW, _WINDOW),
        )
        boxes = []
        for x, y, bw, bh in found if len(found) else []:
            x0, y0 = max(0.0, (x - pad) / scale), max(0.0, (y - pad) / scale)
            x1, y1 = min(w, (x + bw - pad) / scale), min(h, (y + bh - pad) / scale)
            if x1 - x0 >= 4 and y1 - y0 >= 4:
                if self.mirror:
                    x0, x1 = w - x1, w - x0
                boxes.append(Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0)))
        return sorted(boxes, key=lambda b: -b.area)


class FallbackDetector:
    """Detectors tried in order, strictest first; the first that finds a face answers.

    Photos where the first finds a face cost no more; only misses pay for the looser searches.
    """

    def __init__(self, detectors: list[FaceDetector]):
        self.detectors = detectors
        self.color = any(d.color for d in detectors)

    def detect(self, image: np.ndarray) -> list[Box]:
        for d in self.detectors:
            if boxes := d.detect(image):
                return boxes
        return []


def haar_chain() -> FallbackDetector:
    """Frontal default cascade at coarse scale steps (fast: 18.5 ms on a 640x480 photo, 2 cores);
    on a miss, alt2 and a looser default at fine steps; then profiles facing either way."""
    profile = "haarcascade_profileface.xml"
    return FallbackDetector(
        [
            HaarDetector(scale_factor=1.2),
            HaarDetector("haarcascade_frontalface_alt2.xml", min_neighbors=3),
            HaarDetector(min_neighbors=2, pad=0.35),
            HaarDetector(profile, min_neighbors=3),
            HaarDetector(profile, min_neighbors=3, mirror=True),
        ]
    )


class BlazeFaceDetector:
    """MediaPipe's BlazeFace (:mod:`ferkit.predict.blazeface`) as a :class:`FaceDetector`. It
    sees the colour photo (a grey one as three equal channels) and gives the eyes.

    Its boxes are tighter than FER-2013's frame and sit lower: run on 800 Training faces
    (``scripts/calibrate_margin.py --fer ... --detector blazeface``) the box side is 0.833 of
    the frame (median) and its centre 0.07 of the frame below the frame's. Each box is turned
    into that frame (the raise along the face's own up, from its eyes), so that, as with Haar,
    the box is where a FER-2013 face would be cut.
    """

    color = True
    #: FER-2013 frame side / BlazeFace box side, and the frame centre's offset above the box's
    #: (a fraction of the frame side); measured as above.
    FRAME_SCALE, FRAME_RAISE = 1 / 0.833, 0.07

    def __init__(
        self, variant: str = "short-range", to_fer_frame: bool = True, border: float = 0.25
    ):
        self.variant, self.to_fer_frame = variant, to_fer_frame
        #: On a miss, search again with the edges replicated this share of the longer side
        #: each way: BlazeFace misses a face that fills the frame (a tight crop) for want of
        #: context. On 400 FER-2013 Training faces (48 px upscaled 4x): 354 found without,
        #: 370 with 0.25, 372 with 0.4.
        self.border = border

    def detect(self, image: np.ndarray) -> list[Box]:
        rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
        h, w = rgb.shape[:2]
        boxes = []
        for (x, y, bw, bh), eyes in self._faces(rgb):
            if self.to_fer_frame:
                side = max(bw, bh) * self.FRAME_SCALE
                roll = math.radians(eye_roll(eyes))
                up = math.sin(roll), -math.cos(roll)  # the face's up, in image pixels (y down)
                raise_ = self.FRAME_RAISE * side
                cx, cy = x + bw / 2 + raise_ * up[0], y + bh / 2 + raise_ * up[1]
                x, y, bw, bh = cx - side / 2, cy - side / 2, side, side
            x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(w, x + bw), min(h, y + bh)
            if x1 - x0 >= 4 and y1 - y0 >= 4:
                boxes.append(Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0), eyes))
        return sorted(boxes, key=lambda b: -b.area)

    def _faces(self, rgb: np.ndarray) -> list[tuple[tuple[float, ...], tuple[Point, Point]]]:
        """(box (x, y, w, h), eyes) of each face BlazeFace finds, the border search on a miss."""
        from .blazeface import detect_faces

        found, k = detect_faces(rgb, self.variant), 0
        if not found and self.border:
            k = round(self.border * max(rgb.shape[:2]))
            found = detect_faces(np.pad(rgb, ((k, k), (k, k), (0, 0)), mode="edge"), self.variant)
        out = []
        for f in found:
            (rx, ry), (lx, ly) = f.keypoints[:2]
            eyes = (rx - k, ry - k), (lx - k, ly - k)
            out.append(((f.box[0] - k, f.box[1] - k, f.box[2], f.box[3]), eyes))
        return out


_DETECTORS: dict[str, Callable[[], FaceDetector]] = {
    "haar": haar_chain,
    "blazeface": BlazeFaceDetector,
    "blazeface-full": lambda: BlazeFaceDetector("full-range"),
    "haar-frontal": HaarDetector,
    "haar-alt2": lambda: HaarDetector("haarcascade_frontalface_alt2.xml", min_neighbors=3),
}


def list_detectors() -> list[str]:
    return list(_DETECTORS)


def create_detector(name: str = DEFAULT_DETECTOR) -> FaceDetector:
    """A detector by name (see :func:`list_detectors`)."""
    try:
        return _DETECTORS[name]()
    except KeyError:
        raise ValueError(f"unknown detector {name!r} (known: {', '.join(_DETECTORS)})") from None
