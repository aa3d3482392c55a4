"""The paper's training augmentation (III-C-2), on whole batches, on the training device, and
the shapes the lever study gives it: separate rotation, rescale and shift ranges, random
erasing, a strength that ramps over the run, and alternating mirroring."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..geometry import apply_per_image, view_thetas
from ..labels import IMAGE_SIZE, INPUT_SIZE, PAPER_RESCALE, PAPER_ROTATION

#: Random erasing's rectangle: 2-33 % of the view, aspect 0.3-3.3 (Zhong et al. 2020).
ERASE_AREA, ERASE_ASPECT = (0.02, 1 / 3), (0.3, 1 / 0.3)


@dataclass(frozen=True)
class AugmentConfig:
    """Mirror with ``p_mirror``; rotate U[-max_angle, max_angle]; rescale to a side U[min, max];
    shift by U[-max_shift, max_shift] px on each axis beyond the crop's own slack; erase one
    rectangle with probability ``erase``."""

    p_mirror: float = 0.5
    max_angle: float = PAPER_ROTATION
    min_side: float = IMAGE_SIZE * (1 - PAPER_RESCALE)
    max_side: float = IMAGE_SIZE * (1 + PAPER_RESCALE)
    max_shift: float = 0.0
    erase: float = 0.0

    @classmethod
    def from_ranges(
        cls,
        rotation: float = PAPER_ROTATION,
        rescale: float = PAPER_RESCALE,
        shift: float = 0.0,
        erase: float = 0.0,
    ) -> AugmentConfig:
        """Rotation in degrees, rescale as the largest relative change of the side, shift in
        px; the paper's augmentation is ``from_ranges()``."""
        return cls(
            0.5, rotation, IMAGE_SIZE * (1 - rescale), IMAGE_SIZE * (1 + rescale), shift, erase
        )

    def describe(self) -> str:
        """In words, for a picture's title: ``mirror, rotate +-45 deg, side 42-54 px, crop``."""
        parts = ["mirror", f"rotate +-{self.max_angle:g} deg"]
        parts += [f"side {self.min_side:.0f}-{self.max_side:.0f} px", "crop"]
        if self.max_shift:
            parts.append(f"shift +-{self.max_shift:g} px")
        if self.erase:
            parts.append(f"erase {self.erase:g}")
        return ", ".join(parts)

    def scaled(self, strength: float) -> AugmentConfig:
        """Rotation, rescaling and shift ranges times ``strength`` around the identity (angle 0,
        side 48, no shift); mirroring, erasing and the random crop stay. Lighter than the
        paper's (``strength < 1``) is for short training budgets (REPRODUCTION.md)."""
        half = (self.max_side - self.min_side) / 2 * strength
        mid = IMAGE_SIZE + (self.max_side + self.min_side - 2 * IMAGE_SIZE) / 2 * strength
        return dataclasses.replace(
            self,
            max_angle=self.max_angle * strength,
            min_side=mid - half,
            max_side=mid + half,
            max_shift=self.max_shift * strength,
        )


def ramped_strength(final: float, start: float | None, epoch: int, epochs: int) -> float:
    """The augmentation strength of ``epoch`` (1-based) of ``epochs``: ``final`` throughout, or
    a straight line from ``start`` at the first epoch to ``final`` at the last."""
    if start is None or epochs <= 1:
        return final
    return start + (final - start) * (epoch - 1) / (epochs - 1)


def alternating_mirror(flip_bits: torch.Tensor, epoch: int) -> torch.Tensor:
    """Each image mirrored every other epoch, starting from its own fixed random bit: every
    face is seen both ways in any two epochs in a row (random mirroring repeats a side half the
    time)."""
    return (flip_bits + epoch) % 2 == 1


def augment(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 (frozen dataclass)
    mirror: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fresh random views of normalised faces: (N, 1, 48, 48) -> (N, 1, 42, 42).

    Mirror, rotation, rescale, shift and the random 42x42 crop are sampled per image and applied
    as one bilinear affine map; erasing follows. ``mirror`` (N booleans) replaces the random
    mirroring. ``generator`` (on the images' device) makes it reproducible.
    """
    n, dev = images.shape[0], images.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, device=dev, generator=generator, dtype=torch.float64)

    coin = torch.rand(n, device=dev, generator=generator) < config.p_mirror
    mirror = coin if mirror is None else mirror.to(dev)
    angle = uniform(-config.max_angle, config.max_angle)
    side = uniform(config.min_side, config.max_side)
    slack = side - INPUT_SIZE
    ox = slack * torch.rand(n, device=dev, generator=generator, dtype=torch.float64)
    oy = slack * torch.rand(n, device=dev, generator=generator, dtype=torch.float64)
    if config.max_shift:
        ox = ox + uniform(-config.max_shift, config.max_shift)
        oy = oy + uniform(-config.max_shift, config.max_shift)
    views = apply_per_image(images, view_thetas(side, angle, ox, oy, mirror))
    return random_erase(views, config.erase, generator) if config.erase else views


def random_erase(
    views: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Each view, with probability ``p``, gets one rectangle (2-33 % of its area, aspect 0.3-3.3,
    at a random place) set to 0, the training mean once normalised (random erasing)."""
    n, _, h, w = views.shape
    dev = views.device

    def rand() -> torch.Tensor:
        return torch.rand(n, device=dev, generator=generator)

    hit = rand() < p
    area = (ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * rand()) * h * w
    log_lo, log_hi = torch.log(torch.tensor(ERASE_ASPECT, device=dev))
    aspect = torch.exp(log_lo + (log_hi - log_lo) * rand())
    eh = torch.sqrt(area * aspect).round().clamp(1, h)
    ew = torch.sqrt(area / aspect).round().clamp(1, w)
    top = ((h - eh + 1) * rand()).floor()
    left = ((w - ew + 1) * rand()).floor()
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = (
        (rows >= top.view(-1, 1, 1))
        & (rows < (top + eh).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1))
        & (cols < (left + ew).view(-1, 1, 1))
        & hit.view(-1, 1, 1)
    )
    return views.masked_fill(box.unsqueeze(1), 0.0)


def preview_views(
    images, n_aug: int = 7, seed: int = 0, config: AugmentConfig | None = None
) -> list[torch.Tensor]:
    """``n_aug`` augmented views of each face (uint8 (N, 48, 48)) for a picture: shown after
    per-image standardisation only, since the geometry is what matters there and per-pixel
    normalisation would make the faces hard to read."""
    from .preprocess import standardize_images

    x = standardize_images(images).unsqueeze(1)
    gen = torch.Generator().manual_seed(seed)
    return [augment(x, gen, config or AugmentConfig()) for _ in range(n_aug)]
