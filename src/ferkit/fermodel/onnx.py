"""ONNX: the paper's network as one self-describing file that any ONNX runtime reads (browsers,
mobile, C++), and an ONNX Runtime backend that runs it in place of torch.

The file holds the network (input ``faces``: N x 1 x 42 x 42 normalised pixels, any N; output
``scores``: N x 7) and, as metadata, everything ``model.safetensors`` says about itself (the
same keys) plus the normalisation as ``norm.mean``/``norm.std`` (JSON lists of 48x48 floats).
The faces graph (``onnx_input="faces"``) takes grey 48x48 uint8 faces instead and does the
rest inside: both preprocessing steps, Eval1's 10 crops, the averaging and the calibrated
probabilities (outputs ``scores`` and ``probabilities``), so a user needs nothing but the file.
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

from ..atomic import atomic_write
from ..data.preprocess import Normalizer
from ..labels import IMAGE_SIZE, INPUT_SIZE
from .files import ModelFileError, meta_from_strings, meta_strings
from .model import FerModel

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


ONNX_INPUTS = ("crops", "faces")  # what an exported graph takes (metadata key ``onnx_input``)


class FacesGraph(nn.Module):
    """Grey 48x48 uint8 faces (N, 48, 48) -> Eval1-averaged ``scores`` and calibrated
    ``probabilities`` (N, 7): ferkit's inference for cropped faces as one traceable module.
    Crops are slices and flips (Eval1's views are whole-pixel), equal to ``FerModel.score``."""

    def __init__(self, model: FerModel):
        from ..data.preprocess import EPS, IMAGE_STD
        from .views import view_params

        super().__init__()
        self.net = _plain_copy(model.net)
        self.register_buffer("mean", model.norm_mean.detach().cpu().float().clone())
        self.register_buffer("std", model.norm_std.detach().cpu().float().clone())
        self.svm, self.classes = model.loss == "svm", len(model.labels)
        self.temperature = float(model.meta.temperature or 1.0)
        self.image_std, self.eps = IMAGE_STD, EPS
        self.views = [(int(ox), int(oy), m) for _, _, ox, oy, m in view_params("eval1")]

    def forward(self, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = faces.float()
        flat = x.flatten(1)
        mu = flat.mean(1, keepdim=True)
        sd = ((flat - mu) ** 2).mean(1, keepdim=True).sqrt().clamp_min(self.eps)
        x = ((flat - mu) * (self.image_std / sd)).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)
        x = (x - self.mean) / self.std
        crops = []
        for ox, oy, mirror in self.views:
            source = x.flip(-1) if mirror else x
            crops.append(source[..., oy : oy + INPUT_SIZE, ox : ox + INPUT_SIZE])
        out = self.net(torch.cat(crops, 0)).view(len(self.views), -1, self.classes)
        per_view = out if self.svm else out.softmax(-1)
        averaged = per_view.mean(0)
        z = averaged if self.svm else averaged.clamp_min(1e-12).log()
        return averaged, (z / self.temperature).softmax(-1)


def onnx_bytes(model: FerModel, onnx_input: str = "crops") -> bytes:
    """``model`` as ONNX (fp32, dynamic batch), with its metadata: the network on normalised
    42x42 crops (``crops``), or the whole of inference on 48x48 uint8 faces (``faces``)."""
    try:
        import onnx
    except ImportError:
        raise ModelFileError(f"exporting to ONNX needs onnx: {INSTALL}") from None
    if model.int8:
        raise ValueError("export the fp32 model to ONNX, not its int8 version")
    if onnx_input not in ONNX_INPUTS:
        raise ValueError(f"unknown ONNX input {onnx_input!r} (known: {', '.join(ONNX_INPUTS)})")
    if onnx_input == "faces":
        graph = FacesGraph(model).eval()
        example = torch.zeros(1, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
        outputs = ["scores", "probabilities"]
    else:
        graph = _plain_copy(model.net)
        example = torch.zeros(1, 1, INPUT_SIZE, INPUT_SIZE)
        outputs = ["scores"]
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            buf,
            input_names=["faces"],
            output_names=outputs,
            dynamic_axes={"faces": {0: "batch"}, **{o: {0: "batch"} for o in outputs}},
            opset_version=OPSET,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    meta = meta_strings(model)
    meta["onnx_input"] = onnx_input
    meta["norm.mean"] = json.dumps(model.norm_mean.cpu().flatten().tolist())
    meta["norm.std"] = json.dumps(model.norm_std.cpu().flatten().tolist())
    onnx.helper.set_model_props(proto, meta)
    proto.doc_string = f"ferkit {model.meta.arch} + {model.meta.loss}: {__doc__.splitlines()[0]}"
    return proto.SerializeToString()


def _plain_copy(net: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(net).cpu().float().to(memory_format=torch.contiguous_format).eval()


def save_onnx(model: FerModel, path: str | os.PathLike, onnx_input: str = "crops") -> None:
    """Write ``model`` as a self-describing ONNX file, atomically."""
    blob = onnx_bytes(model, onnx_input)
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
    from .files import MODEL_FORMAT, checked_model_file

    path = checked_model_file(path)  # a FIFO, a device or 2 GB of zeros: refused unread
    session = _session(str(path), str(path))
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: an ONNX file, but not a ferkit model (no ferkit metadata)")
    if meta.get("onnx_input", "crops") != "crops":
        raise ModelFileError(
            f"{path}: a faces graph (48x48 uint8 faces in, probabilities out) for running "
            "without ferkit; --backend onnx takes the crops graph (export --onnx-input crops)"
        )
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


def check_faces_parity(model: FerModel, blob: bytes, faces48: np.ndarray, split: str) -> OnnxParity:
    """The faces graph ``blob`` run by ONNX Runtime against ``model.score(..., "eval1")``."""
    session = _session(blob, f"{model.meta.arch} faces graph")
    a, b = [], []
    for i in range(0, len(faces48), 256):
        chunk = np.ascontiguousarray(faces48[i : i + 256], dtype=np.uint8)
        a.append(model.score(chunk, "eval1"))
        b.append(torch.from_numpy(session.run(["scores"], {"faces": chunk})[0]))
    empty = torch.zeros(0, len(model.labels))
    return _parity(torch.cat(a) if a else empty, torch.cat(b) if b else empty, split, "eval1")


def check_parity(
    model: FerModel, onnx: FerModel, faces48: np.ndarray, split: str, method: str = "center"
) -> OnnxParity:
    """Score the same faces with both; the largest score difference and the share of equal
    predictions."""
    return _parity(model.score(faces48, method), onnx.score(faces48, method), split, method)


def _parity(a: torch.Tensor, b: torch.Tensor, split: str, method: str) -> OnnxParity:
    """The largest difference and the share of equal arg-maxes of two (N, 7) score tensors."""
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
    from .files import load_model

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
