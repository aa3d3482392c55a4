"""Train-time BatchNorm that is folded away: the saved network is exactly the paper's.

``with_batchnorm`` copies a network and puts a BatchNorm after every convolution and every
hidden fully connected layer (before its ReLU), which lets the paper's networks train at high
learning rates from the first step. ``fold_batchnorm`` multiplies each BatchNorm's eval-mode
affine map ``y = g (x - mu) / sqrt(var + eps) + b`` into the layer before it, giving back the
tensors, shapes and parameter count of ``create_model(arch)``, scoring every input the same.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _normed(layers: nn.Sequential, last_is_output: bool, momentum: float) -> nn.Sequential:
    out: list[nn.Module] = []
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    for m in layers:
        out.append(m)
        if isinstance(m, nn.Conv2d):
            out.append(nn.BatchNorm2d(m.out_channels, momentum=momentum))
        elif isinstance(m, nn.Linear) and not (last_is_output and m is linears[-1]):
            out.append(nn.BatchNorm1d(m.out_features, momentum=momentum))
    return nn.Sequential(*out)


def with_batchnorm(net: nn.Module, learn_scale: bool = True, momentum: float = 0.1) -> nn.Module:
    """A copy of a BKNet (``features`` + ``classifier``) with BatchNorm after each
    convolution and hidden FC layer; the output layer stays unnormalised.

    ``learn_scale=False`` fixes every BatchNorm's scale at 1 (only its shift is learned: the
    speed records' setting); ``momentum`` is the running statistics' update rate."""
    bn = copy.deepcopy(net)
    bn.features = _normed(net.features, last_is_output=False, momentum=momentum)
    bn.classifier = _normed(net.classifier, last_is_output=True, momentum=momentum)
    if not learn_scale:
        for m in batchnorms(bn):
            m.weight.requires_grad_(False)
    return bn


def batchnorms(net: nn.Module) -> list[nn.Module]:
    """The network's BatchNorm layers, in order."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _weighted(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


@torch.no_grad()
def fold_batchnorm(bn_net: nn.Module, plain: nn.Module) -> nn.Module:
    """Write ``bn_net``'s weights, each BatchNorm folded into the layer before it, into
    ``plain`` (a fresh network of the same architecture without BatchNorm); returns ``plain``.

    The folding is done in float64 so that it adds no rounding of its own."""
    src = _weighted(bn_net)
    dst = _weighted(plain)
    if len(src) != len(dst):
        raise ValueError(f"{len(src)} weighted layers to fold into {len(dst)}")
    following: dict[int, nn.Module] = {}
    for seq in (m for m in bn_net.modules() if isinstance(m, nn.Sequential)):
        mods = list(seq)
        for a, b in zip(mods, mods[1:], strict=False):
            if isinstance(b, nn.BatchNorm1d | nn.BatchNorm2d):
                following[id(a)] = b
    for s, d in zip(src, dst, strict=True):
        w, bias = s.weight.double(), s.bias.double()
        norm = following.get(id(s))
        if norm is not None:
            scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
            w = w * scale.view(-1, *([1] * (w.dim() - 1)))
            bias = (bias - norm.running_mean.double()) * scale + norm.bias.double()
        d.weight.copy_(w.to(d.weight.dtype))
        d.bias.copy_(bias.to(d.bias.dtype))
    return plain
