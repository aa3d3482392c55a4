"""The paper's training augmentation (III-C-2), on whole batches, on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import apply_per_image, view_thetas
from .labels import IMAGE_SIZE, INPUT_SIZE


@dataclass(frozen=True)
class AugmentConfig:
    """Mirror with ``p_mirror``; rotate U[-max_angle, max_angle]; rescale to a side U[min, max]."""

    p_mirror: float = 0.5
    max_angle: float = 45.0
    min_side: float = 42.0
    max_side: float = 54.0

    def scaled(self, strength: float) -> AugmentConfig:
        """Rotation and rescaling ranges times ``strength`` around the identity (angle 0, side
        48); mirroring and the random crop stay. Lighter than the paper's (``strength < 1``) is
        for short training budgets, where its full strength underfits (REPRODUCTION.md)."""
        half = (self.max_side - self.min_side) / 2 * strength
        mid = IMAGE_SIZE + (self.max_side + self.min_side - 2 * IMAGE_SIZE) / 2 * strength
        return AugmentConfig(self.p_mirror, self.max_angle * strength, mid - half, mid + half)


def augment(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 (frozen dataclass)
) -> torch.Tensor:
    """Fresh random views of normalised faces: (N, 1, 48, 48) -> (N, 1, 42, 42).

    Mirror, rotation, rescale and the random 42x42 crop are sampled per image and applied as
    one bilinear affine map. ``generator`` (on the images' device) makes it reproducible.
    """
    n, dev = images.shape[0], images.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, device=dev, generator=generator, dtype=torch.float64)

    mirror = torch.rand(n, device=dev, generator=generator) < config.p_mirror
    angle = uniform(-config.max_angle, config.max_angle)
    side = uniform(config.min_side, config.max_side)
    slack = side - INPUT_SIZE
    ox = slack * torch.rand(n, device=dev, generator=generator, dtype=torch.float64)
    oy = slack * torch.rand(n, device=dev, generator=generator, dtype=torch.float64)
    return apply_per_image(images, view_thetas(side, angle, ox, oy, mirror))
