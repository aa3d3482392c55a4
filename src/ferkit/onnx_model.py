"""ONNX: the paper's network as one self-describing file that any ONNX runtime reads (browsers,
mobile, C++), and an ONNX Runtime backend that runs it in place of torch.

The file holds the network (input ``faces``: N x 1 x 42 x 42 normalised pixels, any N; output
``scores``: N x 7) and, as metadata, everything ``model.safetensors`` says about itself (the
same keys) plus the normalisation as ``norm.mean``/``norm.std`` (JSON lists of 48x48 floats).
Exporting needs ``pip install 'ferkit[onnx]'``; running needs only ``onnxruntime``.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .checkpoint import ModelFileError, meta_from_strings, meta_strings
from .labels import IMAGE_SIZE, INPUT_SIZE
from .model import FerModel
from .preprocess import Normalizer

OPSET = 17
#: Parity an export must reach against torch fp32 (the issue's targets).
MAX_SCORE_DIFFERENCE = 1e-3
MIN_SAME_PREDICTIONS = 0.999
INSTALL = "pip install 'ferkit[onnx]' (onnxruntime needs Python >= 3.11)"


class OnnxNet(nn.Module):
    """An ONNX Runtime session behaving as the network: normalised crops in, scores out."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.input = session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        faces = np.ascontiguousarray(x.detach().float().cpu().numpy())
        (scores,) = self.session.run(None, {self.input: faces})
        return torch.from_numpy(scores).to(x.device)


def onnx_bytes(model: FerModel) -> bytes:
    """The network of ``model`` as ONNX (fp32, dynamic batch), with its metadata."""
    try:
        import onnx
    except ImportError:
        raise ModelFileError(f"exporting to ONNX needs onnx: {INSTALL}") from None
    if model.int8:
        raise ValueError("export the fp32 model to ONNX, not its int8 version")
    net = _plain_copy(model.net)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE),),
            buf,
            input_names=["faces"],
            output_names=["scores"],
            dynamic_axes={"faces": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    meta = meta_strings(model)
    meta["norm.mean"] = json.dumps(model.norm_mean.cpu().flatten().tolist())
    meta["norm.std"] = json.dumps(model.norm_std.cpu().flatten().tolist())
    onnx.helper.set_model_props(proto, meta)
    proto.doc_string = f"ferkit {model.meta.arch} + {model.meta.loss}: {__doc__.splitlines()[0]}"
    return proto.SerializeToString()


def _plain_copy(net: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(net).cpu().float().to(memory_format=torch.contiguous_format).eval()


def save_onnx(model: FerModel, path: str | os.PathLike) -> None:
    """Write ``model`` as a self-describing ONNX file, atomically."""
    blob = onnx_bytes(model)
    with atomic_write(path) as fh:
        fh.write(blob)


def _session(source: bytes | str, name: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelFileError(f"the ONNX backend needs onnxruntime: {INSTALL}") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if torch.get_num_threads():
        options.intra_op_num_threads = torch.get_num_threads()
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own kinds for a bad file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ModelFileError(f"{name}: not an ONNX model ({first})") from None


def load_onnx(path: str | os.PathLike) -> FerModel:
    """A ferkit ONNX file as a ready-to-use model run by ONNX Runtime (CPU)."""
    from .checkpoint import MODEL_FORMAT

    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such model file")
    session = _session(str(path), str(path))
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: an ONNX file, but not a ferkit model (no ferkit metadata)")
    try:
        norm = {
            k: torch.tensor(json.loads(meta[k]), dtype=torch.float32)
            for k in ("norm.mean", "norm.std")
        }
        norm = {k: v.view(IMAGE_SIZE, IMAGE_SIZE) for k, v in norm.items()}
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise ModelFileError(f"{path}: bad normalisation in its metadata ({e})") from None
    mm = meta_from_strings(path, meta, norm)
    return _wrap(session, Normalizer.from_state_dict(norm), mm)


def _wrap(session, normalizer: Normalizer, meta) -> FerModel:
    model = FerModel(OnnxNet(session), normalizer, meta)
    model.backend = "onnx"
    return model.eval()


def to_onnx_backend(model: FerModel) -> FerModel:
    """``model`` converted in memory and run by ONNX Runtime (no file needed)."""
    session = _session(onnx_bytes(model), f"{model.meta.arch} (in memory)")
    return _wrap(session, model.normalizer, model.meta)


@dataclass
class OnnxParity:
    """ONNX Runtime against torch fp32 on the same faces and views."""

    split: str
    method: str
    n: int
    max_score_difference: float
    same_predictions: float

    @property
    def ok(self) -> bool:
        return (
            self.max_score_difference <= MAX_SCORE_DIFFERENCE
            and self.same_predictions >= MIN_SAME_PREDICTIONS
        )


def check_parity(
    model: FerModel, onnx: FerModel, faces48: np.ndarray, split: str, method: str = "center"
) -> OnnxParity:
    """Score the same faces with both; the largest score difference and the share of equal
    predictions."""
    a = model.score(faces48, method)
    b = onnx.score(faces48, method)
    diff = float((a - b).abs().max()) if len(a) else 0.0
    same = float((a.argmax(1) == b.argmax(1)).float().mean()) if len(a) else 1.0
    return OnnxParity(split, method, len(a), diff, same)


BACKENDS = ("torch", "onnx")


def load_with_backend(
    path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    int8: bool = False,
    backend: str = "torch",
) -> FerModel:
    """A model run by ``backend``: ``torch`` (``load_model``), or ``onnx`` (ONNX Runtime on
    the CPU: a ``.onnx`` file as it is, any other model converted in memory)."""
    from .checkpoint import load_model

    is_onnx = path is not None and str(path).lower().endswith(".onnx")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend == "torch":
        if is_onnx:
            raise ModelFileError(f"{path}: an ONNX file: run it with --backend onnx")
        return load_model(path, device, int8=int8)
    if int8:
        raise ValueError("--int8 is torch's int8 network; the ONNX backend runs fp32")
    if str(device) != "auto" and torch.device(device).type != "cpu":
        raise ValueError(f"the ONNX backend runs on the CPU, not on {device}")
    return load_onnx(path) if is_onnx else to_onnx_backend(load_model(path))
