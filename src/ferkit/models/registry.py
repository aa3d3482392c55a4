"""A small model registry in timm's shape: ``create_model(name)``, ``list_models()``."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..labels import INPUT_SIZE
from . import bk

_REGISTRY: dict[str, Callable[[], nn.Module]] = {}


def register_model(name: str, builder: Callable[[], nn.Module]) -> None:
    """Make ``builder`` available as ``create_model(name)``."""
    _REGISTRY[name.lower()] = builder
    model_info.cache_clear()  # a name may be given a new builder


def list_models() -> list[str]:
    """The registered network names, in registration order."""
    return list(_REGISTRY)


def create_model(name: str) -> nn.Module:
    """A freshly initialised network; ValueError naming the known ones if ``name`` is unknown."""
    try:
        builder = _REGISTRY[name.lower()]
    except KeyError:
        raise ValueError(f"unknown network {name!r} (known: {', '.join(_REGISTRY)})") from None
    return builder()


@dataclass(frozen=True)
class ModelInfo:
    """What ``ferkit models`` prints for a network."""

    name: str
    params: int
    macs: int
    input: tuple[int, int, int] = (1, INPUT_SIZE, INPUT_SIZE)


def count_macs(net: nn.Module, input_size: int = INPUT_SIZE) -> int:
    """Multiply-accumulates for one image, counted on convolutions and FC layers."""
    macs = 0

    def hook(m: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal macs
        per_output = m.weight[0].numel()  # kh * kw * in_channels (groups=1), or in_features
        macs += out[0].numel() * per_output

    handles = [
        m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 1, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
    return macs


def count_params(net: nn.Module) -> int:
    """Trainable and fixed parameters of a float network (Table III's count)."""
    return sum(p.numel() for p in net.parameters())


@functools.cache  # a network's counts never change; GET /v1/model asks on every call
def model_info(name: str) -> ModelInfo:
    """Parameters and multiply-accumulates of a registered network."""
    net = create_model(name)
    return ModelInfo(name.lower(), count_params(net), count_macs(net))


register_model("bkstart", bk.make_bkstart)
for _name, _config in bk.BKVGG_CONFIGS.items():
    register_model(_name, lambda config=_config: bk.make_bkvgg(config))
