"""The weight average the fast procedure validates and saves: an exponential moving average,
optionally started late in the run, with its BatchNorm statistics optionally measured afresh
(an average of weights is not matched by the average of their running statistics)."""

from __future__ import annotations

import torch
from torch import nn

from ..models.norm import batchnorms


def ema_decay(decay: float, step: int) -> float:
    """The average's decay after ``step`` updates, ramped up (as timm's) so that the first
    steps do not pull it towards the random initialisation."""
    return min(decay, (1 + step) / (10 + step))


def decay_at(decay: float, step: int, start_step: int) -> float:
    """The decay of update ``step`` for an average that starts at ``start_step``: 0 before (the
    average follows the weights), then :func:`ema_decay` counted from the start."""
    return 0.0 if step < start_step else ema_decay(decay, step - start_step)


@torch.no_grad()
def update_ema(average: nn.Module, net: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * net, over parameters and float buffers
    (BatchNorm's running statistics); integer buffers are copied."""
    pairs = list(zip(average.state_dict().values(), net.state_dict().values(), strict=True))
    floats = [(a, b) for a, b in pairs if a.is_floating_point()]
    if floats:
        torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - decay)
    for a, b in pairs:
        if not a.is_floating_point():
            a.copy_(b)


@torch.no_grad()
def recompute_batchnorm(net: nn.Module, images: torch.Tensor, batch_size: int = 512) -> None:
    """Measure every BatchNorm's running mean and variance afresh as the plain average over
    ``images`` (already views: N, 1, 42, 42), with dropout off; the network is left in eval
    mode. A network without BatchNorm is left as it is."""
    norms = batchnorms(net)
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    net.eval()
    for m in norms:
        m.train()
    try:
        for i in range(0, len(images), batch_size):
            net(images[i : i + batch_size])
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        net.eval()
