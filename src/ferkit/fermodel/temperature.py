"""Probabilities that mean what they say: one temperature fitted on held-out faces.

A model's ``probabilities`` are a softmax of its view-averaged outputs (raw scores for an
L2-SVM model, the log of the averaged probabilities for a cross-entropy one) divided by a
temperature T fitted to minimise the negative log-likelihood on the validation part of
Training. T changes no prediction (the arg-max is the same), only how sure the numbers say the
model is. The expected calibration error (ECE) measures what it buys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: T is searched in [1/100, 100] (log scale): wider than any model here needs.
LOG_T_RANGE = (math.log(0.01), math.log(100.0))
ECE_BINS = 15


def logits(averaged: torch.Tensor, loss: str) -> torch.Tensor:
    """What the temperature divides: raw scores (SVM), or log-probabilities (CE)."""
    x = torch.as_tensor(averaged).float()
    return x if loss == "svm" else x.clamp_min(1e-12).log()


def calibrated(averaged: torch.Tensor, loss: str, temperature: float | None) -> torch.Tensor:
    """Class probabilities of view-averaged outputs at ``temperature`` (None: 1)."""
    return (logits(averaged, loss) / (temperature or 1.0)).softmax(-1)


def _nll(z: torch.Tensor, labels: torch.Tensor, t: float) -> float:
    return float(torch.nn.functional.cross_entropy(z.double() / t, labels))


def fit_temperature(averaged: torch.Tensor, labels, loss: str) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (a golden-section
    search on log T: deterministic, no optimiser state)."""
    z, y = logits(averaged, loss), torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(y) == 0:
        raise ValueError("cannot fit a temperature on zero faces")
    lo, hi = LOG_T_RANGE
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = _nll(z, y, math.exp(a)), _nll(z, y, math.exp(b))
    for _ in range(60):  # (0.618)^60 of the range: far below any meaningful digit
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = _nll(z, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = _nll(z, y, math.exp(b))
    return round(math.exp((lo + hi) / 2), 4)


@dataclass
class Reliability:
    """Confidence against accuracy in equal-width confidence bins (a reliability diagram)."""

    ece: float
    bin_confidence: list[float]
    bin_accuracy: list[float]
    bin_count: list[int]


def reliability(probabilities: torch.Tensor, labels, bins: int = ECE_BINS) -> Reliability:
    """ECE: the count-weighted mean |accuracy - confidence| over the bins of the top class's
    probability."""
    p = torch.as_tensor(probabilities).float()
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    conf, pred = p.max(1)
    right = (pred == y).float()
    which = (conf * bins).long().clamp(max=bins - 1)
    confs, accs, counts, ece = [], [], [], 0.0
    for k in range(bins):
        m = which == k
        n = int(m.sum())
        counts.append(n)
        confs.append(float(conf[m].mean()) if n else 0.0)
        accs.append(float(right[m].mean()) if n else 0.0)
        ece += n * abs(accs[-1] - confs[-1])
    return Reliability(ece / max(1, len(y)), confs, accs, counts)


def validation_faces(model, data) -> tuple[np.ndarray, np.ndarray]:
    """The faces the model was selected on: its run's held-out share of Training (rebuilt from
    the seed and fraction in its config), or its ``val_split``."""
    from ..data.fer2013 import stratified_split
    from ..labels import TRAIN_SPLIT

    cfg = model.meta.config
    if cfg.get("val_split"):
        split = data.split(cfg["val_split"])
        return split.images, split.labels
    train = data.split(TRAIN_SPLIT)
    _, val = stratified_split(train.labels, cfg.get("val_fraction", 0.1), cfg.get("seed", 0))
    return train.images[val], train.labels[val]


def fit_on_validation(model, data, method: str = "eval1") -> float:
    """The temperature of ``model`` fitted on its validation faces with ``method``'s views
    (Eval1: what ``predict`` and ``serve`` use by default)."""
    images, labels = validation_faces(model, data)
    return fit_temperature(model.score(images, method).cpu(), labels, model.loss)
