"""Crops and test-time views (III-C-4): ``center``, ``eval1`` (10 crops) and ``eval2`` (648
views). Inference and training both crop here; the random training views are in ``augment``."""

from __future__ import annotations

import functools
import itertools

import torch

from ..geometry import view_thetas
from ..labels import IMAGE_SIZE, INPUT_SIZE

METHODS: tuple[str, ...] = ("center", "eval1", "eval2")
EVAL2_SIDES = (48, 50, 52, 54)
EVAL2_ANGLES = tuple(-45.0 + 11.25 * k for k in range(9))


def center_crop(images: torch.Tensor) -> torch.Tensor:
    """The centre 42x42 crop of (N, C, 48, 48): the ``center`` view, and training without
    augmentation (Table IV)."""
    o = (IMAGE_SIZE - INPUT_SIZE) // 2
    return images[..., o : o + INPUT_SIZE, o : o + INPUT_SIZE]


def view_params(method: str) -> list[tuple[float, float, float, float, bool]]:
    """(side, angle, ox, oy, mirror) for every view of ``method``."""
    slack = IMAGE_SIZE - INPUT_SIZE
    if method == "center":
        return [(IMAGE_SIZE, 0.0, slack / 2, slack / 2, False)]
    if method == "eval1":
        spots = [(0, 0), (slack, 0), (0, slack), (slack, slack), (slack / 2, slack / 2)]
        return [(IMAGE_SIZE, 0.0, x, y, m) for m in (False, True) for x, y in spots]
    if method == "eval2":
        out = []
        for side, angle in itertools.product(EVAL2_SIDES, EVAL2_ANGLES):
            grid = (0, (side - INPUT_SIZE) / 2, side - INPUT_SIZE)
            for m, y, x in itertools.product((False, True), grid, grid):
                out.append((side, angle, x, y, m))
        return out
    raise ValueError(f"unknown view method {method!r} (known: {', '.join(METHODS)})")


@functools.cache
def view_thetas_for(method: str) -> torch.Tensor:
    """The (V, 2, 3) affine matrices of ``method``'s views (computed once; do not modify)."""
    cols = list(zip(*view_params(method), strict=True))
    side, angle, ox, oy = (torch.tensor(c, dtype=torch.float64) for c in cols[:4])
    return view_thetas(side, angle, ox, oy, torch.tensor(cols[4]))


@functools.cache
def view_cells(method: str) -> tuple[torch.Tensor, tuple[tuple[float, float], ...]]:
    """Each view's cell (index into the second item) and every cell's (side, angle): the views
    of one rescaling and one rotation share a cell (Eval2: 36 cells of 9 crops x 2 mirrors),
    so scores averaged per cell say what each rescaling and rotation adds."""
    keys = [(side, angle) for side, angle, *_ in view_params(method)]
    cells = tuple(dict.fromkeys(keys))
    index = {c: i for i, c in enumerate(cells)}
    return torch.tensor([index[k] for k in keys]), cells


def num_views(method: str) -> int:
    """How many views ``method`` scores per image (1, 10 or 648)."""
    return len(view_params(method))
