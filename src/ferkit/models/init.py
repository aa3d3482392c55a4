"""Initialisations from the small-convnet speed records, for training only: the saved network
is the paper's either way, these only choose where its weights start.

``whiten_first_conv`` starts the first convolution as a whitening filter bank of the data's
own patches (so the first layer decorrelates pixels from step one); ``dirac_init`` starts each
convolution whose input is at most as wide as its output as the identity on its first
channels (a deep network that passes its input through, and learns away from it).
"""

from __future__ import annotations

import torch
from torch import nn


def _convs(net: nn.Module) -> list[nn.Conv2d]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


@torch.no_grad()
def whiten_first_conv(net: nn.Module, images: torch.Tensor, eps: float = 5e-4) -> int:
    """Set the first convolution's leading filters to ``+-`` the eigenvectors of the patch
    covariance of ``images`` (N, C, H, W), each divided by the square root of its eigenvalue
    (largest first); returns how many filters were set. Filters beyond ``2 x`` the patch size
    keep their initialisation; the biases become 0."""
    conv = _convs(net)[0]
    kh, kw = conv.kernel_size
    patches = images.float().unfold(2, kh, 1).unfold(3, kw, 1)  # N, C, H', W', kh, kw
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, conv.in_channels * kh * kw)
    cov = patches.T.double() @ patches.double() / len(patches)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    values, vectors = values.flip(0), vectors.flip(1)
    k = min(len(values), conv.out_channels // 2)
    filters = (vectors[:, :k] / torch.sqrt(values[:k].clamp_min(0) + eps)).T
    filters = filters.reshape(k, conv.in_channels, kh, kw).to(conv.weight.dtype)
    conv.weight[:k] = filters
    conv.weight[k : 2 * k] = -filters
    conv.bias.zero_()
    return 2 * k


@torch.no_grad()
def dirac_init(net: nn.Module) -> int:
    """Start every convolution after the first whose output is at least as wide as its input
    as the identity on its first ``in_channels`` filters (the rest keep their initialisation);
    returns how many convolutions were changed."""
    changed = 0
    for conv in _convs(net)[1:]:
        if conv.out_channels >= conv.in_channels and conv.groups == 1:
            nn.init.dirac_(conv.weight[: conv.in_channels])
            conv.bias.zero_()
            changed += 1
    return changed
