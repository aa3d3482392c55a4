"""int8 inference on the CPU: about twice as fast as fp32 for one face, same accuracy.

Quantising needs the range of every activation on real faces. ``ferkit quantize`` measures
those ranges once, on Training faces, and keeps them beside the weights as a small JSON file
(``<model>.int8.json``) tied to the weights by their SHA-256. ``load_model(..., int8=True)``
then rebuilds the int8 network from the fp32 weights and the ranges, so no quantised tensor is
ever stored and the weights file stays the one that was evaluated.

It uses torch's FX graph-mode quantisation (x86 backend: per-channel int8 weights, 7-bit
activations for CPUs without VNNI). Upstream has deprecated it in favour of torchao but keeps
it in the torch versions ferkit is tested with; everything that touches it is in this module.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .checkpoint import ModelFileError, file_sha256, load_model, model_file, shipped_model_path
from .model import FerModel
from .preprocess import Normalizer

CALIBRATION_FORMAT = "ferkit-int8/1"
BACKEND = "x86"


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


def _prepare(net: nn.Module) -> nn.Module:
    """The network with a min/max observer after every quantised activation."""
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
    from torch.ao.quantization.quantize_fx import prepare_fx

    qconfig = QConfig(
        activation=MinMaxObserver.with_args(dtype=torch.quint8, reduce_range=True),
        weight=PerChannelMinMaxObserver.with_args(
            dtype=torch.qint8, qscheme=torch.per_channel_symmetric
        ),
    )
    net = copy.deepcopy(net).cpu().float().to(memory_format=torch.contiguous_format).eval()
    # The last layer stays fp32 (256x7: no time to save): the scores keep their full resolution,
    # so views average and classes compare as they do in fp32, without ties at int8 steps.
    last = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
    mapping = QConfigMapping().set_global(qconfig).set_module_name(last, None)
    torch.backends.quantized.engine = BACKEND
    with warnings.catch_warnings():  # the deprecation notices, once per call otherwise
        warnings.simplefilter("ignore")
        return prepare_fx(net, mapping, (torch.zeros(1, 1, 42, 42),))


def _observers(prepared: nn.Module) -> dict[str, nn.Module]:
    from torch.ao.quantization.observer import MinMaxObserver

    return {n: m for n, m in prepared.named_modules() if isinstance(m, MinMaxObserver)}


@torch.no_grad()
def calibrate(model: FerModel, faces48: np.ndarray, batch: int = 256) -> dict[str, list[float]]:
    """Activation ranges of ``model`` over the centre crops of ``faces48`` (N, 48, 48)."""
    from .augment import center_crop

    if model.int8:
        raise ValueError("calibrate the fp32 model, not an int8 one")
    prepared = _prepare(model.net)
    for i in range(0, len(faces48), batch):
        prepared(center_crop(model.preprocess(faces48[i : i + batch]).cpu()).contiguous())
    return {n: [float(o.min_val), float(o.max_val)] for n, o in _observers(prepared).items()}


@torch.no_grad()
def quantize(model: FerModel, ranges: dict[str, list[float]]) -> FerModel:
    """An int8 copy of ``model`` (CPU only) built from its weights and activation ``ranges``."""
    from torch.ao.quantization.quantize_fx import convert_fx

    prepared = _prepare(model.net)
    observers = _observers(prepared)
    if set(observers) != set(ranges):
        raise CalibrationError(
            f"the calibration does not fit {model.meta.arch!r}: it has {len(ranges)} ranges, "
            f"the network {len(observers)} activations"
        )
    for name, obs in observers.items():
        obs(torch.tensor(ranges[name], dtype=torch.float32))  # min/max of the two ends = the range
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = convert_fx(prepared)
        # Traced and frozen, the int8 graph runs without FX's Python per layer: 1.4 ms a face
        # instead of 2.0 on 2 AVX2 cores (`ferkit benchmark predict`).
        net = torch.jit.freeze(torch.jit.trace(net, torch.zeros(1, 1, 42, 42)).eval())
    norm = Normalizer(model.norm_mean.cpu(), model.norm_std.cpu())
    out = FerModel(net, norm, model.meta)
    out.int8 = True
    return out.eval()


def quantize_model(
    model_path: str | os.PathLike | None,
    data: str | os.PathLike,
    faces: int = 2048,
    split: str | None = "PublicTest",
    method: str = "center",
    tolerance: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Path, Int8Calibration]:
    """Calibrate on ``faces`` random Training faces of ``data``, check int8 against fp32 on
    ``split`` (None: no check) and write the calibration beside the weights.

    Nothing is written when int8 scores more than ``tolerance`` points below fp32.
    """
    from .data import TRAIN_SPLIT, load_fer2013
    from .evaluate import evaluate

    if faces < 1:
        raise ValueError("--faces must be at least 1")
    path = model_file(model_path) if model_path is not None else shipped_model_path()
    model = load_model(path)  # a ModelFileError names the file when there is none
    ds = load_fer2013(data)
    train = ds.split(TRAIN_SPLIT)
    pick = np.random.default_rng(seed).choice(len(train), min(faces, len(train)), replace=False)
    ranges = calibrate(model, train.images[np.sort(pick)])
    check: dict = {}
    if split is not None:
        ds.split(split)  # a clear error before any scoring
        fp32, int8 = (
            evaluate(m, ds, [split], [method], progress=progress)[0].accuracy
            for m in (model, quantize(model, ranges))
        )
        check = {"split": split, "method": method, "fp32": fp32, "int8": int8}
        if 100 * (fp32 - int8) > tolerance:
            raise CalibrationError(
                f"int8 scores {100 * int8:.2f} % against fp32's {100 * fp32:.2f} % on {split} "
                f"({method}): more than {tolerance} points lower; no calibration written"
            )
    cal = Int8Calibration(
        model_sha256=file_sha256(path),
        ranges=ranges,
        faces=len(pick),
        data=f"{Path(data).name}, {len(pick)} random Training faces (seed {seed}), centre crops",
        check=check,
    )
    out = calibration_path(path)
    cal.save(out)
    return out, cal
