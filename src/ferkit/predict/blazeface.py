"""MediaPipe's BlazeFace face detectors (short range: 128x128, faces within ~2 m; full range:
192x192, small and distant faces), run by PyTorch from the weights ferkit ships.

The networks are TFLite graphs converted once by ``scripts/convert_blazeface.py`` into
safetensors: the operators as JSON metadata, the constants as tensors. :class:`TFLiteGraph`
runs those operators with PyTorch's (channels first inside, as TFLite's channels-last graph
means them), so the port is the original graph op for op; ``tests/test_blazeface.py`` checks
it against the TFLite runtime. Decoding follows MediaPipe: SSD anchors, a sigmoid score over
0.5, and weighted non-maximum suppression (each kept face the score-weighted mean of the
detections it suppresses). Weights: Apache-2.0, see ``weights/BLAZEFACE-NOTICE.md``.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

GRAPH_FORMAT = "ferkit-tflite-graph/1"


@dataclass(frozen=True)
class Variant:
    """One BlazeFace model: its input side and its anchors (MediaPipe's SSD options)."""

    file: str
    side: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 with interpolated_scale_aspect_ratio 1.0, else 1


#: The two models, by ferkit's name (``--detector blazeface-short`` / ``-full``).
VARIANTS = {
    "short-range": Variant("blazeface-short-range.safetensors", 128, (8, 16, 16, 16), 2),
    "full-range": Variant("blazeface-full-range.safetensors", 192, (4,), 1),
}
RAW_SCORE_LIMIT = 80.0  # raw scores are clipped to +-this before the sigmoid, as MediaPipe does
MIN_SCORE = 0.5
NMS_IOU = 0.3


# --- the graph -------------------------------------------------------------------------------

_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1, -1: 1}


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == "relu":
        return F.relu(x)
    if name == "relu6":
        return F.relu6(x)
    return x


def _same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding of one dimension: (before, after), the extra one after."""
    span = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


class TFLiteGraph(torch.nn.Module):
    """The operators of a converted TFLite graph, run in order. Tensors of rank 4 are kept
    channels first (NCHW); a RESHAPE takes them back to TFLite's channels-last order first."""

    def __init__(self, ops: list[dict], params: dict[str, torch.Tensor], inp: int, outs: list[int]):
        super().__init__()
        self.ops, self.inp, self.outs = ops, inp, outs
        for name, value in params.items():
            self.register_buffer(name.replace(".", "_"), value.float())

    def _param(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "_"))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x``: (N, 3, side, side) in [-1, 1]; the graph's outputs (regressors, scores)."""
        values = {self.inp: x}
        for op in self.ops:
            args = [values[i] for i in op["in"]]
            params = [self._param(p) for p in op.get("params", [])]
            values[op["out"][0]] = self._run(op, args, params)
        return [values[o] for o in self.outs]

    def _run(self, op: dict, args: list, params: list) -> torch.Tensor:
        kind = op["op"]
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            (x,), (weight, bias) = args, params
            (sh, sw), (dh, dw) = op["stride"], op["dilation"]
            kh, kw = weight.shape[2:]
            if op["padding"] == "same":
                top, bottom = _same_pad(x.shape[2], kh, sh, dh)
                left, right = _same_pad(x.shape[3], kw, sw, dw)
                x = F.pad(x, (left, right, top, bottom))
            groups = x.shape[1] if kind == "DEPTHWISE_CONV_2D" else 1
            y = F.conv2d(x, weight, bias, (sh, sw), 0, (dh, dw), groups)
            return _activate(y, op["activation"])
        if kind == "RELU":
            return F.relu(args[0])
        if kind == "ADD":
            return _activate(args[0] + args[1], op["activation"])
        if kind == "PAD":
            (n0, n1), (h0, h1), (w0, w1), (c0, c1) = op["pads"]
            return F.pad(args[0], (w0, w1, h0, h1, c0, c1, n0, n1))
        if kind == "MAX_POOL_2D":
            x, (kh, kw), (sh, sw) = args[0], op["kernel"], op["stride"]
            if op["padding"] == "same":
                top, bottom = _same_pad(x.shape[2], kh, sh)
                left, right = _same_pad(x.shape[3], kw, sw)
                x = F.pad(x, (left, right, top, bottom), value=-math.inf)
            return _activate(F.max_pool2d(x, (kh, kw), (sh, sw)), op["activation"])
        if kind == "RESHAPE":
            x = args[0]
            if x.dim() == 4:
                x = x.permute(0, 2, 3, 1)  # back to TFLite's channels-last order
            return x.reshape(x.shape[0], *op["shape"][1:])
        if kind == "CONCATENATION":
            axis = op["axis"] if args[0].dim() != 4 else _NHWC_TO_NCHW_AXIS[op["axis"]]
            return _activate(torch.cat(args, dim=axis), op["activation"])
        if kind == "RESIZE_BILINEAR":
            if not op["half_pixel"] and not op["align_corners"]:
                raise ValueError("RESIZE_BILINEAR without half-pixel centres has no PyTorch twin")
            return F.interpolate(
                args[0], size=tuple(op["size"]), mode="bilinear", align_corners=op["align_corners"]
            )
        raise ValueError(f"TFLite operator {kind} is not supported")


def weights_path(variant: str) -> Path:
    return Path(str(files("ferkit") / "weights" / VARIANTS[variant].file))


@functools.cache
def load_graph(variant: str = "short-range") -> TFLiteGraph:
    """The shipped BlazeFace network (read once per process)."""
    from safetensors import safe_open

    path = weights_path(variant)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        if meta.get("format") != GRAPH_FORMAT:
            raise ValueError(f"{path}: not a converted graph (format {meta.get('format')!r})")
        params = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    graph = TFLiteGraph(
        json.loads(meta["ops"]),
        params,
        json.loads(meta["input"])["tensor"],
        json.loads(meta["outputs"]),
    )
    return graph.eval().requires_grad_(False)


_COMPILING = threading.Lock()


def compiled_graph(variant: str = "short-range") -> torch.jit.ScriptModule:
    """:func:`_compiled`, made by one thread while others wait (a server's first requests
    arrive together)."""
    with _COMPILING:
        return _compiled(variant)


@functools.cache
def _compiled(variant: str) -> torch.jit.ScriptModule:
    """:func:`load_graph`'s network traced at its input size and frozen (constants folded):
    the operators run without Python between them, about 3x faster for one photo (one busy
    EPYC thread, min of 150: 9.9 against 2.9 ms; ``optimize_for_inference``'s MKLDNN layout
    was slower, 3.7 ms), and faster again on :func:`letterbox`'s channels-last input (1.6 ms).
    Made once per process; :func:`load_graph` stays the readable reference the tests compare
    it with."""
    import warnings

    graph, side = load_graph(variant), VARIANTS[variant].side
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on sizes: the input size is fixed
        traced = torch.jit.trace(graph, torch.zeros(1, 3, side, side), check_trace=False)
        return torch.jit.freeze(traced.eval())


# --- anchors, decoding, suppression --------------------------------------------------------


@functools.cache
def anchors(variant: str = "short-range") -> np.ndarray:
    """(A, 2) anchor centres in [0, 1] (x, y), in the order the network's outputs come."""
    v = VARIANTS[variant]
    out, i = [], 0
    while i < len(v.strides):
        stride, n = v.strides[i], 0
        while i < len(v.strides) and v.strides[i] == stride:  # layers of one stride share cells
            n += v.anchors_per_layer
            i += 1
        cells = math.ceil(v.side / stride)
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        out.append(np.repeat(centres, n, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Detection:
    """A face in the image's pixels: its box (x, y, w, h), score and six keypoints (right eye,
    left eye, nose tip, mouth, right ear tragion, left ear tragion: the person's sides)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: tuple[tuple[float, float], ...]


def decode(
    regressors: np.ndarray, scores: np.ndarray, variant: str = "short-range"
) -> tuple[np.ndarray, np.ndarray]:
    """(K, 16) boxes and keypoints in [0, 1] of the network's input ((x0, y0, x1, y1), then
    six (x, y)), and their (K,) scores, for the anchors over :data:`MIN_SCORE`."""
    side = VARIANTS[variant].side
    p = 1 / (1 + np.exp(-np.clip(scores.reshape(-1), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
    keep = p > MIN_SCORE
    r, a = regressors.reshape(-1, 16)[keep] / side, anchors(variant)[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    points = r[:, 4:].reshape(-1, 6, 2) + a[:, None, :]
    return np.concatenate([boxes, points.reshape(-1, 12)], axis=1), p[keep]


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    x0, y0 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    x1, y1 = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(dets: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU):
    """MediaPipe's weighted suppression: the best remaining detection and every one that
    overlaps it by more than ``iou`` become one face, their score-weighted mean, with the best
    one's score. Returns (faces (F, 16), scores (F,)), best first."""
    order = np.argsort(-scores, kind="stable")
    dets, scores = dets[order], scores[order]
    out, out_scores = [], []
    while len(dets):
        group = _iou(dets[0], dets) > iou
        group[0] = True
        w = scores[group][:, None]
        out.append((dets[group] * w).sum(0) / w.sum())
        out_scores.append(scores[0])
        dets, scores = dets[~group], scores[~group]
    return np.asarray(out).reshape(-1, 16), np.asarray(out_scores)


# --- a photo in, faces out -------------------------------------------------------------------


def letterbox(rgb: np.ndarray, side: int) -> tuple[torch.Tensor, float, float, float]:
    """``rgb`` (H, W, 3 uint8) resized to fit a ``side`` square (aspect kept) and centred on
    black, scaled to [-1, 1] as (1, 3, side, side) in channels-last order; with what maps
    points back: the padded square's side and the padding, in the image's pixels. (Resizing
    before padding costs half of padding first: a 640x480 photo, 1.7 against 2.9 ms.)"""
    from PIL import Image

    h, w = rgb.shape[:2]
    n = max(h, w)
    scale = side / n
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # reducing_gap 1: a box filter down to about the size first, then bilinear (0.27 against
    # 0.6 ms with a gap of 2 for a 640x480 photo). OpenCV's area resize is as fast alone but
    # its thread pool fights torch's spinning OpenMP threads (20 ms on two busy cores)
    small = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR, reducing_gap=1.0))
    ox, oy = (side - nw) // 2, (side - nh) // 2
    square = np.zeros((1, side, side, 3), np.uint8)
    square[0, oy : oy + nh, ox : ox + nw] = small
    # channels last with the batch's own stride, which oneDNN's convolutions recognise: the
    # graph runs in 1.6 against 2.6 ms (one busy EPYC thread, min of 100), the same numbers
    x = torch.from_numpy(square).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x, n, ox / scale, oy / scale


def detect_faces(rgb: np.ndarray, variant: str = "short-range") -> list[Detection]:
    """Every face BlazeFace finds in ``rgb`` (H, W, 3 uint8), best score first."""
    side = VARIANTS[variant].side
    x, n, pad_x, pad_y = letterbox(rgb, side)
    with torch.inference_mode():
        regressors, scores = compiled_graph(variant)(x)
    dets, p = decode(regressors[0].numpy(), scores[0].numpy(), variant)
    faces, p = weighted_nms(dets, p)
    out = []
    for f, s in zip(faces, p, strict=True):
        pts = f.reshape(-1, 2) * n - (pad_x, pad_y)
        (x0, y0), (x1, y1), keys = pts[0], pts[1], pts[2:]
        box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
        out.append(Detection(box, float(s), tuple((float(a), float(b)) for a, b in keys)))
    return out
