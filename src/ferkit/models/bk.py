"""The paper's networks (Tables I-II): BKStart and the BKVGG family, with eq. 2's initialisation.

Like torchvision's ``vgg.py``, the BKVGG networks are one table of block configurations and
one builder. All convolutions are stride 1 with "same" padding; pools use "same" (ceil)
output sizes, so 42 -> 21 -> 11 -> 6: only this reproduces Table III's parameter counts.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..labels import INPUT_SIZE, NUM_CLASSES

#: BKVGG channels per convolution, per block (Table II). A 2x2/2 max-pool follows blocks 1-3.
BKVGG_CONFIGS: dict[str, list[list[int]]] = {
    "bkvgg8": [[32], [64], [128], [256, 256]],
    "bkvgg10": [[32], [64], [128, 128], [256, 256, 256]],
    "bkvgg12": [[32, 32], [64, 64], [128, 128], [256, 256, 256]],
    "bkvgg14": [[32, 32], [64, 64], [128, 128, 128], [256, 256, 256, 256]],
}
BKVGG_HIDDEN = (256, 256)
BKSTART_HIDDEN = (3072,)
DROPOUT = 0.5


class BKNet(nn.Module):
    """A feature extractor (convolutions and pools) and a classifier (FC layers with dropout)."""

    def __init__(self, features: nn.Sequential, in_features: int, hidden: tuple[int, ...]):
        super().__init__()
        self.features = features
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU(inplace=True), nn.Dropout(DROPOUT)]
            in_features = width
        layers.append(nn.Linear(in_features, NUM_CLASSES))
        self.classifier = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 42, 42) normalised faces -> (N, 7) class scores."""
        return self.classifier(self.features(x))


def init_weights(module: nn.Module) -> None:
    """Eq. 2: weights ~ N(0, sqrt(2 / nInput)) with nInput the fan-in; biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            fan_in = m.weight[0].numel()  # kh * kw * in_channels, or in_features
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))
            nn.init.zeros_(m.bias)


def make_bkvgg(config: list[list[int]]) -> BKNet:
    """Build a BKVGG network from its per-block channel table."""
    layers: list[nn.Module] = []
    channels, side = 1, INPUT_SIZE
    for b, block in enumerate(config):
        for width in block:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        if b < len(config) - 1:
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            side = math.ceil(side / 2)
    return BKNet(nn.Sequential(*layers), channels * side * side, BKVGG_HIDDEN)


def make_bkstart() -> BKNet:
    """BKStart (Table I): three convolutions with 3x3/2 pools, then FC-3072 and FC-7."""
    features = nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, padding=1),  # 42 -> 21
        nn.ZeroPad2d((1, 2, 1, 2)),  # "same" padding for an even kernel is asymmetric
        nn.Conv2d(32, 32, 4),
        nn.ReLU(inplace=True),
        nn.AvgPool2d(3, 2, padding=1, count_include_pad=False),  # 21 -> 11
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.AvgPool2d(3, 2, padding=1, count_include_pad=False),  # 11 -> 6
    )
    return BKNet(features, 64 * 6 * 6, BKSTART_HIDDEN)
