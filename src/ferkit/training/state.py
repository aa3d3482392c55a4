"""What the training loop carries: where it computes (``Setup``), the faces it trains and
validates on (``Data``), and what changes from epoch to epoch (``State``: what
``checkpoint.pt`` holds)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.preprocess import Normalizer
from .components import DistInfo
from .config import TrainConfig
from .run_folder import EpochMetrics, RunFolder


@dataclass
class Setup:
    """Where and how the run computes: fixed for the run."""

    cfg: TrainConfig
    run: RunFolder
    di: DistInfo
    device: torch.device
    amp: torch.dtype | None
    fmt: torch.memory_format

    def say(self, msg: str) -> None:
        if self.di.main:
            print(msg, file=sys.stderr)


@dataclass
class Data:
    """Training and validation faces, normalised once and kept on the device."""

    x_train: torch.Tensor  # (N, 1, 48, 48): augmented per batch
    y_train: torch.Tensor
    x_val: torch.Tensor  # centre crops
    y_val: torch.Tensor
    val_imgs: np.ndarray  # as read, for the temperature
    val_lbls: np.ndarray
    normalizer: Normalizer
    record: dict = field(default_factory=dict)  # {"sha256": the faces trained and validated on}
    t_train: torch.Tensor | None = None  # --distill: the teacher's probabilities per face


@dataclass
class State:
    """What changes from epoch to epoch: what ``checkpoint.pt`` holds."""

    net: torch.nn.Module  # trains (with its BatchNorm, unfolded)
    average: torch.nn.Module | None  # the weight average, when --ema
    optimizer: torch.optim.Optimizer
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau
    next_epoch: int = 1
    best_val: float = -1.0
    best_epoch: int = 0
    drops: int = 0
    history: list[EpochMetrics] = field(default_factory=list)
    within: dict | None = None  # where a checkpoint saved inside an epoch left that epoch
    data_record: dict = field(default_factory=dict)  # what the run trains on: checked on resume

    @property
    def judged(self) -> torch.nn.Module:
        """What is validated and saved: the average when there is one."""
        return self.average if self.average is not None else self.net

    def to_checkpoint(self, cfg: TrainConfig, epochs_done: int, within: dict | None = None):
        return {
            **({"within": within} if within else {}),
            "model": self.net.state_dict(),  # unfolded: --resume continues bit-exact
            **({"ema": self.average.state_dict()} if self.average is not None else {}),
            "optimizer": self.optimizer.state_dict(),
            "plateau": self.plateau.state_dict(),
            "epoch": epochs_done,
            "best_val_acc": self.best_val,
            "best_epoch": self.best_epoch,
            "drops": self.drops,
            # the data path made absolute: --resume works from any folder
            "config": json.dumps(dataclasses.asdict(cfg) | {"data": os.path.abspath(cfg.data)}),
            "data": self.data_record,
            "rng": {"torch": torch.get_rng_state()},
        }
