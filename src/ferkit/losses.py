"""The paper's two losses (eqs. 3 and 4) and how each turns scores into probabilities."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from .argtypes import LOSSES

LossName = Literal["svm", "ce"]


def l2_svm_loss(scores: torch.Tensor, target: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Eq. 4: ``1/N sum_i sum_{j != l_i} max(0, s_ij - s_il_i + 1)^2``.

    Written out because ``nn.MultiMarginLoss(p=2)`` also divides by the number of classes,
    which silently scales the learning rate by 1/7.
    """
    true = scores.gather(1, target.view(-1, 1))
    hinge = (scores - true + margin).clamp_min(0)
    hinge = hinge.scatter(1, target.view(-1, 1), 0.0)  # j != l_i
    return hinge.square().sum(1).mean()


def cross_entropy_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 3: cross-entropy of the softmax of the scores."""
    return F.cross_entropy(scores, target)


def get_loss(name: str):
    """The loss function called ``name`` (``svm`` or ``ce``)."""
    if name == "svm":
        return l2_svm_loss
    if name == "ce":
        return cross_entropy_loss
    raise ValueError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})")


def distillation_loss(
    scores: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0, scale: float = 1.0
) -> torch.Tensor:
    """Knowledge distillation (Hinton et al., 2015): ``T^2 KL(q_T || softmax(S s / T))``, batch
    mean, where ``q_T`` is the teacher's probabilities ``teacher`` (N, 7) softened to
    temperature T (their logs divided by T), ``s`` the student's scores and ``S`` their scale
    as logits. An SVM student's scores have the hinge's margin of 1 while calibrated teacher
    probabilities are its scores over a fitted temperature (about 0.36): S = 1 / that
    temperature lets one set of scores satisfy both terms. T^2 keeps the gradient's scale as
    T changes."""
    target = (teacher.float().clamp_min(1e-12).log() / temperature).softmax(-1)
    log_student = F.log_softmax(scores * scale / temperature, dim=-1)
    return temperature**2 * F.kl_div(log_student, target, reduction="batchmean")


def distilled(loss_fn, weight: float, temperature: float, scale: float = 1.0):
    """``loss_fn`` mixed with :func:`distillation_loss`: ``(1 - weight) x loss + weight x
    distillation``, called as ``(scores, target, teacher)``."""

    def loss(scores: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        hard = loss_fn(scores, target)
        soft = distillation_loss(scores, teacher, temperature, scale)
        return (1 - weight) * hard + weight * soft

    return loss


def view_scores(scores: torch.Tensor, loss: str) -> torch.Tensor:
    """What is averaged over test views: raw scores for SVM, softmax probabilities for CE."""
    return scores.float() if loss == "svm" else scores.float().softmax(-1)


def probabilities(scores: torch.Tensor, loss: str) -> torch.Tensor:
    """Class probabilities for display: CE averages probabilities already; SVM scores get a softmax.

    For an SVM model the softmax of raw scores is a monotone, documented convenience (the
    arg-max is unchanged), not a calibrated probability.
    """
    return scores.float() if loss == "ce" else scores.float().softmax(-1)
