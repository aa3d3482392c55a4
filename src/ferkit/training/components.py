"""The pieces the training loop (``loop.py``) is built of: the schedule, the optimiser, one
step, the network to train and the one to save, validation, and the bookkeeping that lets a
run resume bit-exact and run under ``torchrun``."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..device import autocast, machine_description
from ..fermodel.views import center_crop
from ..models.init import dirac_init, whiten_first_conv
from ..models.norm import batchnorms, fold_batchnorm, with_batchnorm
from .config import TrainConfig

#: Training images whose centre crops measure the patch whitening and recomputed BatchNorm
#: statistics (a fixed share: the first of the seeded split).
STATISTICS_IMAGES = 5120


def shard(indices: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's disjoint share of an epoch's order (equal sizes: the remainder is dropped)."""
    per = len(indices) // world
    return indices[rank * per : (rank + 1) * per]


def lr_at(cfg: TrainConfig, progress: float, epoch_progress: float = math.inf) -> float | None:
    """The learning rate set by the schedule at ``progress`` in [0, 1] of the run, with
    ``epoch_progress`` epochs done; None where the plateau scheduler is in charge (after the
    first step past warm-up, which starts it at ``cfg.lr``, not at warm-up's last value)."""
    if cfg.schedule != "onecycle" and epoch_progress < cfg.warmup_epochs:
        return cfg.lr * (0.01 + 0.99 * epoch_progress / cfg.warmup_epochs)
    if cfg.schedule == "plateau":  # the full rate once warm-up is over, then lr / 10 on stalls
        return cfg.lr if epoch_progress == cfg.warmup_epochs else None
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * progress))
    # onecycle: cosine warm-up from lr/25 over the first 25%, cosine decay to lr/1e4.
    start, end, warm = cfg.lr / 25, cfg.lr / 1e4, 0.25
    if progress < warm:
        return start + (cfg.lr - start) * 0.5 * (1 - math.cos(math.pi * progress / warm))
    p = (progress - warm) / (1 - warm)
    return end + (cfg.lr - end) * 0.5 * (1 + math.cos(math.pi * p))


def make_optimizer(cfg: TrainConfig, net: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (the paper's) or AdamW; BatchNorm's own scale and shift are not
    decayed (they do not exist in the saved network: decaying them only fights the folding),
    and its shifts step at ``cfg.bn_bias_lr`` times the rate (each group's ``lr_scale``).
    Parameters that are not trained (a fixed BatchNorm scale) are left out."""
    norms = batchnorms(net)
    shifts = {id(m.bias) for m in norms}
    scales = {id(m.weight) for m in norms}
    trained = [p for p in net.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trained if id(p) not in shifts | scales], "lr_scale": 1.0}]
    if cfg.bn_bias_lr == 1.0:  # one BatchNorm group, as runs before --bn-bias-lr had (resumable)
        norm = [p for p in trained if id(p) in shifts | scales]
        groups.append({"params": norm, "weight_decay": 0.0, "lr_scale": 1.0})
    else:
        groups += [
            {
                "params": [p for p in trained if id(p) in scales],
                "weight_decay": 0.0,
                "lr_scale": 1.0,
            },
            {
                "params": [p for p in trained if id(p) in shifts],
                "weight_decay": 0.0,
                "lr_scale": cfg.bn_bias_lr,
            },
        ]
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        groups,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent, reproducible seeds per (run seed, epoch, purpose)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class DistInfo:
    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(t)
        return t


def train_step(
    net,
    optimizer,
    loss_fn,
    xb: torch.Tensor,
    yb: torch.Tensor,
    amp: torch.dtype | None,
    clip: float | None = None,
    teacher: torch.Tensor | None = None,
):
    """One SGD step on a prepared batch; returns (loss, scores), both still on the device.

    ``clip`` caps the gradient's global norm (the norm stays a tensor: no host sync);
    ``teacher``: the batch's teacher probabilities, for a distilling ``loss_fn``."""
    with autocast(xb.device, amp):
        scores = net(xb)
    loss = loss_fn(scores.float(), yb) if teacher is None else loss_fn(scores.float(), yb, teacher)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip, foreach=True)
    optimizer.step()
    return loss, scores


def build_network(cfg: TrainConfig, plain: torch.nn.Module, images: torch.Tensor):
    """The network that trains, from the paper's ``plain`` one: with the BatchNorm to fold
    (``norm_layers``), and the chosen initialisations (``head_init``, ``whiten_init`` from the
    training ``images``' centre crops, ``dirac_init``)."""
    if cfg.norm_layers == "bn":
        net = with_batchnorm(plain, learn_scale=cfg.bn_scale, momentum=cfg.bn_momentum)
    else:
        net = copy.deepcopy(plain)
    if cfg.head_init == "zero":
        out_layer = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        torch.nn.init.zeros_(out_layer.weight)
    if cfg.whiten_init:
        whiten_first_conv(net, center_crop(images[:STATISTICS_IMAGES]).cpu())
    if cfg.dirac_init:
        dirac_init(net)
    return net


def saved_network(net: torch.nn.Module, plain: torch.nn.Module) -> torch.nn.Module:
    """The paper's network to save for the trained ``net``: ``net`` itself, or with its
    BatchNorm folded into ``plain`` (a CPU network of the same architecture, reused)."""
    has_norm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    if not has_norm:
        return net
    return fold_batchnorm(copy.deepcopy(net).float().cpu(), plain)


def validate(net, x_val, y_val, loss_fn, device, amp, di: DistInfo) -> tuple[float, float]:
    net.eval()
    idx = torch.arange(len(y_val)).tensor_split(di.world)[di.rank].to(device)  # this rank's slice
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.float64)
    with torch.no_grad():
        for i in range(0, len(idx), 1024):
            j = idx[i : i + 1024]
            with autocast(device, amp):
                s = net(x_val[j])
            loss_sum += loss_fn(s.float(), y_val[j]).double() * len(j)
            correct += (s.argmax(1) == y_val[j]).sum()
    totals = di.all_sum(torch.stack([loss_sum, correct]))
    n = max(1, len(y_val))
    return totals[0].item() / n, totals[1].item() / n


def within_epoch(step: int, loss_sum, correct, t0: float, aug_gen, device) -> dict:
    """Where an epoch stands after ``step`` batches: what :func:`checked_within` restores."""
    return {
        "step": step,
        "loss_sum": loss_sum.item(),
        "correct": int(correct.item()),
        "seconds": time.perf_counter() - t0,
        "aug_rng": aug_gen.get_state(),
        **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
    }


def checked_within(ck: dict) -> dict | None:
    """The ``within`` part of a checkpoint saved inside an epoch, its types checked (a
    crafted file is a CheckpointError, not a traceback three steps later)."""
    within = ck.get("within")
    if within is None:
        return None
    step, aug = within["step"], within["aug_rng"]
    if not isinstance(step, int) or step < 0 or not isinstance(aug, torch.Tensor):
        raise ValueError("its 'within' entry is malformed")
    return {
        **within,
        "loss_sum": float(within["loss_sum"]),
        "correct": int(within["correct"]),
        "seconds": float(within["seconds"]),
        "torch_rng": ck["rng"]["torch"],
    }


def progress_bar(steps: int, epoch: int, cfg: TrainConfig, main: bool, first: int = 0):
    if not main or cfg.quiet:
        return None
    from tqdm import tqdm

    return tqdm(
        total=steps,
        initial=first,
        desc=f"epoch {epoch}/{cfg.epochs}",
        unit="batch",
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
    )


def config_record(cfg: TrainConfig, device, amp, di: DistInfo) -> dict:
    """The training options plus what was actually used (for the model's metadata)."""
    from ..userfiles import public_path

    rec = dataclasses.asdict(cfg)
    rec.pop("trace_shards", None)
    rec.update(
        data=public_path(cfg.data),  # the model file is shared: no machine's folder layout
        out=public_path(cfg.out),
        device_used=str(device),
        precision_used=str(amp or torch.float32).replace("torch.", ""),
        world_size=di.world,
        threads_used=torch.get_num_threads(),
        torch=torch.__version__,
        machine=machine_description(device),
    )
    return rec


def trace_order(folder: str, rank: int, epoch: int, order: torch.Tensor) -> None:
    p = Path(folder) / f"rank{rank}-epoch{epoch}.npy"
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, order.cpu().numpy())


def trace_weights(folder: str, rank: int, net: torch.nn.Module) -> None:
    from safetensors.torch import save_file

    save_file(
        {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
        str(Path(folder) / f"rank{rank}-weights.safetensors"),
    )
