"""int8 inference on the CPU: about twice as fast as fp32 for one face, same accuracy.

Quantising needs the range of every activation on real faces. ``ferkit quantize``
(``export.quantize_model``) measures those ranges once, on Training faces, and keeps them
beside the weights as a small JSON file (``<model>.int8.json``, whose format is in
``checkpoint``) tied to the weights by their SHA-256. ``load_model(..., int8=True)`` then
rebuilds the int8 network from the fp32 weights and the ranges, so no quantised tensor is ever
stored and the weights file stays the one that was evaluated. This module is the arithmetic
only: it imports nothing of ferkit's files or workflows.

It uses torch's FX graph-mode quantisation (x86 backend: per-channel int8 weights, 7-bit
activations for CPUs without VNNI). Upstream has deprecated it in favour of torchao but keeps
it in the torch versions ferkit is tested with; everything that touches it is in this module.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from torch import nn

from ..data.preprocess import Normalizer
from .model import FerModel

BACKEND = "x86"


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
    from .views import center_crop

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
        raise ValueError(
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
