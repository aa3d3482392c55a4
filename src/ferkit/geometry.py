"""One affine resampling from a 48x48 face to a 42x42 view: the shared core of augmentation
(random maps) and test-time views (fixed maps).

A view is: mirror the 48x48 image (optional), rescale it to side ``S``, rotate it by
``angle`` degrees about its centre, and take the 42x42 crop at pixel offset ``(ox, oy)``
of the rescaled image. All of it is one ``affine_grid``/``grid_sample`` (bilinear), so a
face is resampled once; area outside the image is 0 (the training mean, once normalised).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .labels import IMAGE_SIZE, INPUT_SIZE


def view_thetas(
    side: torch.Tensor,
    angle: torch.Tensor,
    ox: torch.Tensor,
    oy: torch.Tensor,
    mirror: torch.Tensor,
    in_size: int = IMAGE_SIZE,
    out_size: int = INPUT_SIZE,
) -> torch.Tensor:
    """``affine_grid`` matrices (V, 2, 3) for V views given as 1-D tensors of parameters.

    In pixel units (align_corners=False) an output point ``u`` samples the input at
    ``c + R(-angle) (u + o - S/2) / (S / in_size)``; this is that map in normalised units.
    """
    side, angle, ox, oy = (t.double() for t in (side, angle, ox, oy))
    rad = angle * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    inv_scale = in_size / side
    # M = R(-angle) / s, applied to column vectors (x, y); y points down the image.
    m00, m01 = cos * inv_scale, sin * inv_scale
    m10, m11 = -sin * inv_scale, cos * inv_scale
    half_out = out_size / 2.0
    vx = half_out + ox - side / 2.0
    vy = half_out + oy - side / 2.0
    half_in = in_size / 2.0
    a = half_out / half_in
    theta = torch.stack(
        [
            torch.stack([a * m00, a * m01, (m00 * vx + m01 * vy) / half_in], -1),
            torch.stack([a * m10, a * m11, (m10 * vx + m11 * vy) / half_in], -1),
        ],
        -2,
    )
    flip = torch.where(mirror.bool(), -1.0, 1.0).to(theta)
    theta[:, 0, :] *= flip.unsqueeze(-1)  # mirroring the source negates its x coordinate
    return theta.float()


def apply_per_image(images: torch.Tensor, thetas: torch.Tensor, out_size: int = INPUT_SIZE):
    """One view per image: (N, C, 48, 48) and (N, 2, 3) -> (N, C, out, out)."""
    n, c = images.shape[:2]
    grid = F.affine_grid(thetas.to(images), [n, c, out_size, out_size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def apply_all_views(images: torch.Tensor, thetas: torch.Tensor, out_size: int = INPUT_SIZE):
    """Every view of every image: (N, 1, 48, 48) and (V, 2, 3) -> (N, V, 1, out, out).

    The N images ride as channels of one grid_sample per view set, so no image is copied V times
    before sampling.
    """
    n = images.shape[0]
    v = thetas.shape[0]
    grid = F.affine_grid(thetas.to(images), [v, n, out_size, out_size], align_corners=False)
    stacked = images[:, 0].unsqueeze(0).expand(v, -1, -1, -1)
    out = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.transpose(0, 1).unsqueeze(2)
