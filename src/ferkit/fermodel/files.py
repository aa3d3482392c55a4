"""Model files that describe themselves: ``model.safetensors`` (weights + normalisation +
metadata, loadable with nothing but the file) and the int8 calibration beside it. Loading never
runs code from a file. The training checkpoint and the rest of a run folder are ``run_folder``'s.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write
from ..data.preprocess import Normalizer
from ..labels import INPUT_SIZE
from ..models import create_model
from ..userfiles import path_problem
from .model import FerModel, ModelMeta

MODEL_FORMAT = "ferkit-model/1"
SHIPPED_MODEL = "bkvgg12.safetensors"

#: A model's file name inside a run folder (``--model RUN`` finds it there).
MODEL_FILE = "model.safetensors"


class ModelFileError(ValueError):
    """A file that is not a usable ferkit model."""


def save_model(model: FerModel, path: str | os.PathLike, dtype: torch.dtype = torch.float32):
    """Write ``model`` as self-describing safetensors, atomically. ``norm.*`` stay float32."""
    from safetensors.torch import save

    if model.int8:
        raise ValueError("an int8 model is rebuilt from its fp32 weights: save those instead")
    tensors = {
        k: v.detach().to("cpu", dtype).contiguous() for k, v in model.net.state_dict().items()
    }
    tensors.update(model.normalizer.state_dict())
    blob = save({k: v.cpu() for k, v in tensors.items()}, metadata=meta_strings(model))
    with atomic_write(path) as fh:
        fh.write(blob)


def shipped_model_path() -> Path | None:
    """The model inside the installed package, if this build ships one."""
    from importlib.resources import files

    p = files("ferkit") / "weights" / SHIPPED_MODEL
    return Path(str(p)) if p.is_file() else None


def model_file(path: str | os.PathLike) -> Path:
    """A model path as given: the file itself, or a run folder's ``model.safetensors``."""
    p = Path(path)
    return p / MODEL_FILE if p.is_dir() else p


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file: ties a summary's figures to the exact weights they measured."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelFile:
    """A model file read once: the model, and what its bytes say (their SHA-256, and whether
    the weights are stored in fp16), so that a workflow never opens the file again."""

    path: Path
    model: FerModel
    sha256: str
    fp16: bool


def read_model_file(
    path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
) -> ModelFile:
    """Read a ``model.safetensors`` (or a run folder holding one; ``None``: the shipped model)
    in one pass over its bytes."""
    import hashlib

    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    p = checked_model_file(path)
    raw = p.read_bytes()
    try:
        (size,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + size])
        tensors = load_tensors(raw)
    except (SafetensorError, struct.error, ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{p}: not a safetensors file ({e})") from None
    meta = header.get("__metadata__") or {}
    fp16 = any(isinstance(v, dict) and v.get("dtype") == "F16" for v in header.values())
    model = _model_from(p, meta, tensors, device)
    return ModelFile(p, model, hashlib.sha256(raw).hexdigest(), fp16)


def checked_model_file(path: str | os.PathLike | None) -> Path:
    """The model file ``path`` names (``None``: the shipped one; a run folder: its
    ``model.safetensors``), checked before it is opened: a regular file of at most
    :data:`MAX_MODEL_BYTES`; ModelFileError saying why not."""
    if path is None:
        path = shipped_model_path()
        if path is None:
            raise ModelFileError("this ferkit build ships no trained model yet: pass --model PATH")
    p = model_file(path)
    problem = path_problem(p)
    if problem == "no such file or folder":
        problem = "no such model file"
        if p != Path(path):
            p, problem = Path(path), f"a folder without {MODEL_FILE} (not a run with a model)"
    if problem is None and (size := p.stat().st_size) > MAX_MODEL_BYTES:
        problem = f"{size / 2**20:.0f} MiB: larger than any ferkit model (at most 1 GiB)"
    if problem is not None:
        raise ModelFileError(f"{p}: {problem}")
    return p


#: No ferkit network's weights come near this (BKStart, the largest, is 29 MB in fp32): a
#: larger file is refused before it is read into memory.
MAX_MODEL_BYTES = 1 << 30


def load_model(
    path: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    int8: bool = False,
) -> FerModel:
    """Rebuild a ready-to-use model from a ``model.safetensors`` (or a run folder holding one).

    ``path=None`` loads the model shipped inside the package. ``int8=True`` gives its int8
    version (CPU only), from the calibration ``ferkit quantize`` wrote beside the weights.
    """
    p = checked_model_file(path)
    if int8 and torch.device(device).type != "cpu":
        raise ModelFileError(f"{p}: int8 models run on the CPU only, not on {device}")
    model = read_model_file(p, device).model
    if int8:
        from .int8 import quantize

        try:
            model = quantize(model, load_calibration(p).ranges)
        except ValueError as e:  # ranges of another network
            if isinstance(e, CalibrationError):
                raise
            raise CalibrationError(f"{calibration_path(p)}: {e}") from None
    return model


def _misfits(expected: dict, weights: dict, tensors: dict, shown: int = 3) -> str:
    """What keeps ``weights`` from loading into a network with ``expected`` tensors, in words
    (the first ``shown`` of each kind), or "" when they fit."""
    missing = [k for k in expected if k not in weights]
    missing += [k for k in ("norm.mean", "norm.std") if k not in tensors]
    extra = [k for k in weights if k not in expected]
    shapes = [
        f"{k} is {list(weights[k].shape)}, not {list(v.shape)}"
        for k, v in expected.items()
        if k in weights and weights[k].shape != v.shape
    ]
    parts = []
    for what, items in (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)):
        if items:
            more = f" and {len(items) - shown} more" if len(items) > shown else ""
            parts.append(f"{what}: {', '.join(items[:shown])}{more}")
    return "; ".join(parts)


def _model_from(p: Path, meta: dict, tensors: dict, device) -> FerModel:
    """The model a file's metadata and tensors describe (ModelFileError naming ``p`` if not)."""
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{p}: not a ferkit model (format {meta.get('format')!r})")
    mm = meta_from_strings(p, meta, tensors)
    net = create_model(mm.arch)
    weights = {k: v.float() for k, v in tensors.items() if not k.startswith("norm.")}
    if problems := _misfits(net.state_dict(), weights, tensors):
        raise ModelFileError(f"{p}: weights do not fit {mm.arch!r}: {problems}")
    try:
        normalizer = Normalizer.from_state_dict(tensors)
        net.load_state_dict(weights, strict=True)
    except (KeyError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ModelFileError(f"{p}: weights do not fit {mm.arch!r} ({first})") from None
    model = FerModel(net, normalizer, mm).to(device)
    model.eval()
    return model


def meta_strings(model: FerModel) -> dict[str, str]:
    """The metadata a model file carries (safetensors or ONNX), as strings."""
    m = model.meta
    metadata = {
        "format": MODEL_FORMAT,
        "arch": m.arch,
        "loss": m.loss,
        "labels": json.dumps(list(m.labels)),
        "input_size": str(m.input_size),
        "config": json.dumps(m.config),
        "metrics": json.dumps(m.metrics),
    }
    if m.card:
        metadata["card"] = json.dumps(m.card)
    if m.temperature is not None:
        metadata["temperature"] = repr(float(m.temperature))
    return metadata


def meta_from_strings(
    path: str | os.PathLike, meta: dict[str, str], tensors: dict[str, torch.Tensor]
) -> ModelMeta:
    """:func:`meta_strings` read back and checked whole with the tensors it goes with; a
    ModelFileError naming ``path`` and the reason otherwise."""
    try:
        mm = ModelMeta(
            arch=meta["arch"],
            loss=meta["loss"],
            labels=tuple(json.loads(meta["labels"])),
            input_size=int(meta["input_size"]),
            config=json.loads(meta.get("config", "{}")),
            metrics=json.loads(meta.get("metrics", "{}")),
            card=json.loads(meta.get("card", "{}")),
            temperature=float(meta["temperature"]) if "temperature" in meta else None,
        )
    except (KeyError, ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: incomplete ferkit metadata ({e})") from None
    if problem := _metadata_problem(mm, tensors):
        raise ModelFileError(f"{path}: {problem}")
    return mm


def _metadata_problem(mm: ModelMeta, tensors: dict[str, torch.Tensor]) -> str | None:
    """What makes a model file unusable, checked before anything is built from it (crafted or
    damaged files give this one reason, not an error deep inside predict or serve)."""
    from ..labels import IMAGE_SIZE, NUM_CLASSES
    from ..losses import LOSSES
    from ..models import list_models

    labels = mm.labels
    if len(labels) != NUM_CLASSES or not all(isinstance(x, str) and x for x in labels):
        return f"labels must be {NUM_CLASSES} names, not {list(labels)!r:.80}"
    if len(set(labels)) != len(labels):
        return f"labels repeat a name ({list(labels)})"
    if mm.loss not in LOSSES:
        return f"unknown loss {mm.loss!r} (known: {', '.join(LOSSES)})"
    if mm.arch not in list_models():
        return f"unknown network {mm.arch!r} (known: {', '.join(list_models())})"
    if mm.input_size != INPUT_SIZE:
        return f"model takes {mm.input_size}x{mm.input_size} input, not 42x42"
    t = mm.temperature
    if t is not None and not (math.isfinite(t) and t > 0):
        return f"temperature must be a positive number, not {t}"
    for name in ("config", "metrics", "card"):
        if not isinstance(getattr(mm, name), dict):
            return f"metadata {name!r} is not a JSON object"
    for key in ("norm.mean", "norm.std"):
        t = tensors.get(key)
        if t is None or tuple(t.shape) != (IMAGE_SIZE, IMAGE_SIZE):
            shape = "missing" if t is None else "x".join(map(str, t.shape))
            return f"{key} must be {IMAGE_SIZE}x{IMAGE_SIZE}, not {shape}"
    if not bool((tensors["norm.std"].float() > 0).all()):
        return "norm.std has values <= 0"
    for k, t in tensors.items():
        if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            return f"tensor {k} is {str(t.dtype).removeprefix('torch.')}, not a float type"
        if not bool(torch.isfinite(t).all()):
            return f"tensor {k} holds NaN or infinite values (a diverged training run?)"
    return None


# --------------------------------------------------------------------------- int8 calibration


CALIBRATION_FORMAT = "ferkit-int8/1"


class CalibrationError(ModelFileError):
    """A missing, unreadable or mismatched int8 calibration file."""


@dataclass
class Int8Calibration:
    """The activation ranges that make an int8 network of one weights file."""

    model_sha256: str
    ranges: dict[str, list[float]]  # FX observer name -> [min, max] seen on the calibration faces
    faces: int
    data: str
    check: dict = field(default_factory=dict)  # fp32 against int8 accuracy, when measured
    format: str = CALIBRATION_FORMAT

    def save(self, path: str | os.PathLike) -> None:
        with atomic_write(path, "w") as fh:
            json.dump(asdict(self), fh, indent=1)
            fh.write("\n")


def calibration_path(model_path: str | os.PathLike) -> Path:
    """Where a weights file's calibration lives: ``x.safetensors`` -> ``x.int8.json``."""
    f = model_file(model_path)
    return f.with_name(f.name.removesuffix(".safetensors") + ".int8.json")


def load_calibration(model_path: str | os.PathLike) -> Int8Calibration:
    """The calibration beside ``model_path``; a :class:`CalibrationError` saying how to make
    one when it is missing or was made for other weights."""
    path = calibration_path(model_path)
    make = f"make one with `ferkit quantize --model {model_path} --data FER2013`"
    if not path.is_file():
        raise CalibrationError(f"{path}: no int8 calibration for {model_file(model_path)}: {make}")
    try:
        cal = Int8Calibration(**json.loads(path.read_text()))
        ranges = {str(k): [float(lo), float(hi)] for k, (lo, hi) in cal.ranges.items()}
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise CalibrationError(f"{path}: not an int8 calibration ({e})") from None
    if not ranges or any(not lo <= hi for lo, hi in ranges.values()):
        raise CalibrationError(f"{path}: not an int8 calibration (empty or inverted ranges)")
    cal.ranges = ranges
    if cal.format != CALIBRATION_FORMAT:
        raise CalibrationError(f"{path}: unknown format {cal.format!r}")
    if cal.model_sha256 != file_sha256(model_file(model_path)):
        raise CalibrationError(f"{path}: made for other weights than {model_path}: {make}")
    return cal


def meta_dict(model: FerModel) -> dict[str, Any]:
    """The model's metadata as plain JSON-able data (for ``GET /v1/model`` and reports)."""
    d = asdict(model.meta)
    d["labels"] = list(d["labels"])
    d["params"] = model.params
    d["precision"] = "int8" if model.int8 else "fp32"
    d["backend"] = model.backend
    return d
