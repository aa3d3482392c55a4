"""Exporting a trained model for shipping: fp16 weights (half the size) with a model card,
kept only if fp16 scores within a tolerance of fp32 on a test split."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .checkpoint import load_model, save_model


@dataclass
class ExportCheck:
    """fp32 and fp16 accuracy of the same model on the same faces."""

    split: str
    method: str
    fp32: float
    fp16: float

    @property
    def difference_points(self) -> float:
        return 100 * abs(self.fp32 - self.fp16)


def export_model(
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    dtype: str = "fp16",
    card: dict | None = None,
    verify_data: str | None = None,
    split: str = "PublicTest",
    method: str = "center",
    tolerance_points: float = 0.1,
) -> ExportCheck | None:
    """Write ``model_path`` to ``out`` in ``dtype``; with ``verify_data``, refuse (ValueError)
    an fp16 export whose accuracy differs from fp32 by more than ``tolerance_points``."""
    if dtype not in ("fp16", "fp32"):
        raise ValueError(f"dtype must be fp16 or fp32, not {dtype!r}")
    model = load_model(model_path)
    if card:
        model.meta.card = {**model.meta.card, **card}
    torch_dtype = torch.float16 if dtype == "fp16" else torch.float32
    check = None
    if verify_data and dtype == "fp16":
        check = _compare(model, verify_data, split, method)
        if check.difference_points > tolerance_points:
            raise ValueError(
                f"fp16 changes {split} {method} accuracy by {check.difference_points:.2f} "
                f"points (> {tolerance_points}): export fp32 instead"
            )
    save_model(model, out, dtype=torch_dtype)
    return check


def _compare(model, data: str, split: str, method: str) -> ExportCheck:
    import copy

    from .data import load_fer2013
    from .evaluate import evaluate

    ds = load_fer2013(data)
    (full,) = evaluate(model, ds, [split], [method], progress=False)
    half = copy.deepcopy(model)
    for p in half.net.parameters():  # round-trip through fp16, compute in fp32 as loading does
        p.data = p.data.half().float()
    (rounded,) = evaluate(half, ds, [split], [method], progress=False)
    return ExportCheck(split, method, full.accuracy, rounded.accuracy)
