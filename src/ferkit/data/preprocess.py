"""The paper's preprocessing (III-C-1): per-image standardisation, then per-pixel normalisation.

Step 1 needs nothing but the image; step 2's mean image and per-pixel std are fitted on the
training set and travel with a trained model (``norm.mean`` / ``norm.std``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..labels import IMAGE_SIZE

IMAGE_STD = 3.125  #: every image is scaled to this standard deviation (step 1)
EPS = 1e-6  #: a constant (blank) image has std 0: divide by max(std, EPS) so it stays 0


def standardize_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Step 1: subtract each image's mean, scale its std to 3.125. (N, H, W) -> float32."""
    x = torch.as_tensor(images).float()
    if not len(x):  # no images (a run without validation faces): nothing to scale
        return x
    flat = x.flatten(1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=False, keepdim=True)
    return ((flat - mean) * (IMAGE_STD / std.clamp_min(EPS))).view_as(x)


@dataclass
class Normalizer:
    """Both preprocessing steps; ``mean``/``std`` are the fitted 48x48 per-pixel statistics."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, images: torch.Tensor | np.ndarray, chunk: int = 4096) -> Normalizer:
        """Fit step 2 on training images (N, 48, 48), after step 1, in float64 for accuracy."""
        n = len(images)
        if n == 0:
            raise ValueError("cannot fit the normaliser on zero images")
        total = torch.zeros(IMAGE_SIZE, IMAGE_SIZE, dtype=torch.float64)
        total_sq = torch.zeros_like(total)
        for i in range(0, n, chunk):
            x = standardize_images(images[i : i + chunk]).double()
            total += x.sum(0)
            total_sq += (x * x).sum(0)
        mean = total / n
        var = (total_sq / n - mean * mean).clamp_min(0)
        return cls(mean.float(), var.sqrt().float().clamp_min(EPS))

    def __call__(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 or float images (N, 48, 48) -> normalised float32 (N, 1, 48, 48)."""
        x = standardize_images(images)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return ((x - mean) / std).unsqueeze(1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors saved with a model, under the names docs/CONTRACT.md gives."""
        return {
            "norm.mean": self.mean.float().contiguous(),
            "norm.std": self.std.float().contiguous(),
        }

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor]) -> Normalizer:
        """Rebuild from :meth:`state_dict`'s tensors (extra keys are ignored)."""
        return cls(tensors["norm.mean"].float(), tensors["norm.std"].float())
