"""Training (III-C-3): SGD with momentum, batch 256, the paper's augmentation, L2-SVM or CE loss,
best-validation weights kept; resumable after any interruption, and DDP under ``torchrun``.

The fast procedure changes how the paper's network is trained, never what is saved:
``norm_layers="bn"`` trains with BatchNorm that is folded into the convolutions and FC layers
of every saved model, ``optimizer="adamw"``, ``ema`` (an exponential moving average of the
weights is what is validated and saved) and ``head_init="zero"``.

Read top to bottom: config -> data -> model -> optimiser and schedule -> epochs -> files.
Randomness is derived from ``(seed, epoch)`` at the start of every epoch, so a run resumed
from ``checkpoint.pt`` continues bit-for-bit as if it had never stopped (same device, same
thread count).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..atomic import remove_stale_temporaries
from ..data.augment import AugmentConfig, alternating_mirror, augment, ramped_strength
from ..data.fer2013 import load_fer2013, stratified_split
from ..data.preprocess import Normalizer
from ..device import autocast, autocast_dtype, machine_description, memory_format, resolve_device
from ..fermodel.files import save_model
from ..fermodel.model import FerModel, ModelMeta
from ..fermodel.views import center_crop
from ..figures import training_curves
from ..labels import TRAIN_SPLIT
from ..losses import get_loss
from ..models import create_model
from ..models.init import dirac_init, whiten_first_conv
from ..models.norm import batchnorms, fold_batchnorm, with_batchnorm
from .averaging import decay_at, recompute_batchnorm, update_ema
from .config import TrainConfig
from .run_folder import (
    CheckpointError,
    EpochMetrics,
    RunFolder,
    load_checkpoint,
    save_checkpoint,
)

#: Training images whose centre crops measure the patch whitening and recomputed BatchNorm
#: statistics (a fixed share: the first of the seeded split).
STATISTICS_IMAGES = 5120


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite (the learning rate is too high)."""


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    out: str
    epochs_done: int
    best_epoch: int
    best_val_acc: float
    history: list[EpochMetrics] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


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
    groups = [
        {"params": [p for p in trained if id(p) not in shifts | scales], "lr_scale": 1.0},
        {"params": [p for p in trained if id(p) in scales], "weight_decay": 0.0, "lr_scale": 1.0},
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


class _DistInfo:
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


# --------------------------------------------------------------------------- the run


def train_step(
    net,
    optimizer,
    loss_fn,
    xb: torch.Tensor,
    yb: torch.Tensor,
    amp: torch.dtype | None,
    clip: float | None = None,
):
    """One SGD step on a prepared batch; returns (loss, scores), both still on the device.

    ``clip`` caps the gradient's global norm (the norm stays a tensor: no host sync)."""
    with autocast(xb.device, amp):
        scores = net(xb)
    loss = loss_fn(scores.float(), yb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip, foreach=True)
    optimizer.step()
    return loss, scores


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train (or continue) the run in ``cfg.out``; returns its summary. Rank 0 writes the files.

    A folder that already holds a run is refused unless ``resume`` (continue it) or
    ``overwrite`` (start again over it); a run folder this call created is removed again if
    training fails before writing anything into it."""
    cfg.validate()
    out = Path(cfg.out)
    if not resume and not overwrite and (found := RunFolder(out).run_files()):
        raise ValueError(
            f"{out} already holds a run ({', '.join(found)}): continue it with --resume {out}, "
            "choose a new --out, or pass --overwrite to start again over it"
        )
    created = not out.exists()
    try:
        return _train(cfg, resume)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _train(cfg: TrainConfig, resume: bool) -> TrainResult:
    out = Path(cfg.out)
    run = RunFolder(out)
    di = _DistInfo()
    if di.main:
        run.check_writable()
        remove_stale_temporaries(out)  # left by a kill -9 mid-write
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if di.world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", di.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    amp = autocast_dtype(device, cfg.precision)
    fmt = memory_format(device)
    say = (lambda msg: None) if not di.main else (lambda msg: print(msg, file=sys.stderr))

    # ---- data: Training split into train/val, normalised once, kept on the device
    ds = load_fer2013(cfg.data, on_error="skip" if cfg.skip_bad else "raise")
    if ds.n_skipped:
        say(f"ferkit: {ds.skipped_message()}")
    full = ds.split(TRAIN_SPLIT)
    if cfg.val_split:
        val_set = ds.split(cfg.val_split)
        train_imgs, train_lbls = full.images, full.labels
        val_imgs, val_lbls = val_set.images, val_set.labels
    else:
        tr_idx, va_idx = stratified_split(full.labels, cfg.val_fraction, cfg.seed)
        train_imgs, train_lbls = full.images[tr_idx], full.labels[tr_idx]
        val_imgs, val_lbls = full.images[va_idx], full.labels[va_idx]
    if cfg.batch_size > len(train_lbls):
        raise ValueError(
            f"--batch-size {cfg.batch_size} is larger than the {len(train_lbls)} training images"
        )
    if cfg.batch_size % di.world:
        raise ValueError(f"--batch-size {cfg.batch_size} is not divisible by {di.world} processes")
    normalizer = Normalizer.fit(train_imgs)
    x_train = normalizer(train_imgs).to(device)
    y_train = torch.as_tensor(train_lbls).to(device)
    x_val = center_crop(normalizer(val_imgs)).to(device).contiguous(memory_format=fmt)
    y_val = torch.as_tensor(val_lbls).to(device)

    # ---- model, optimiser, loss
    torch.manual_seed(cfg.seed)
    plain = create_model(cfg.arch)  # the paper's network: what every saved model is
    net = build_network(cfg, plain, x_train)
    net = net.to(device).to(memory_format=fmt)
    average = copy.deepcopy(net).eval().requires_grad_(False) if cfg.ema else None
    optimizer = make_optimizer(cfg, net)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.1, patience=cfg.patience, threshold=1e-3
    )
    loss_fn = get_loss(cfg.loss)
    start_epoch, best_val, best_epoch, drops = 1, -1.0, 0, 0
    history: list[EpochMetrics] = []
    within: dict | None = None  # where a checkpoint saved inside an epoch left that epoch
    if resume:
        ck = load_checkpoint(run.checkpoint)
        try:
            net.load_state_dict(ck["model"])
            if average is not None:
                average.load_state_dict(ck["ema"])
            optimizer.load_state_dict(ck["optimizer"])
            plateau.load_state_dict(ck["plateau"])
            torch.set_rng_state(ck["rng"]["torch"])
            start_epoch = int(ck["epoch"]) + 1
            best_val, best_epoch, drops = ck["best_val_acc"], ck["best_epoch"], ck["drops"]
            within = _checked_within(ck)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise CheckpointError(
                f"{run.checkpoint}: does not fit this run's settings ({first})"
            ) from None
        history = run.read_metrics(upto=ck["epoch"])
        if di.main:
            run.write_metrics(history)  # drop lines of an unfinished epoch
        if start_epoch > cfg.epochs:
            say(f"{out} has finished its {cfg.epochs} epochs (raise them with --epochs N)")
        else:
            at = f", step {within['step']}" if within else ""
            say(f"resuming {out} at epoch {start_epoch}{at} of {cfg.epochs}")
    model_net = torch.nn.parallel.DistributedDataParallel(net) if di.world > 1 else net

    local_batch = cfg.batch_size // di.world
    n_train = len(y_train)
    steps = n_train // cfg.batch_size  # the last partial batch is dropped (fresh order every epoch)
    meta = ModelMeta(
        arch=cfg.arch.lower(), loss=cfg.loss, config=_config_record(cfg, device, amp, di)
    )
    stop_reason = f"all {cfg.epochs} epochs done"

    def state(epochs_done: int, within: dict | None = None) -> dict:
        """What ``checkpoint.pt`` holds after ``epochs_done`` whole epochs (plus ``within``
        when it is saved inside the next one)."""
        return {
            **({"within": within} if within else {}),
            "model": net.state_dict(),  # unfolded: --resume continues bit-exact
            **({"ema": average.state_dict()} if average is not None else {}),
            "optimizer": optimizer.state_dict(),
            "plateau": plateau.state_dict(),
            "epoch": epochs_done,
            "best_val_acc": best_val,
            "best_epoch": best_epoch,
            "drops": drops,
            "config": json.dumps(dataclasses.asdict(cfg)),
            "rng": {"torch": torch.get_rng_state()},
        }

    aug_full = AugmentConfig.from_ranges(cfg.rotation, cfg.rescale, cfg.shift, cfg.erase)
    flip_bits = torch.randint(  # alternating mirroring: each face's own first side
        0, 2, (n_train,), generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, 0, 2))
    ).to(device)
    ema_start_step = round(cfg.ema_start * cfg.epochs * steps)
    bn_views = x_train[:STATISTICS_IMAGES] if cfg.ema_bn == "recomputed" else None

    for epoch in range(start_epoch, cfg.epochs + 1):
        if cfg.schedule == "plateau" and drops > cfg.max_drops:
            stop_reason = f"stopped on a plateau after {cfg.max_drops} learning-rate drops"
            break
        # ---- one epoch of training on this rank's shard
        t0 = time.perf_counter()
        model_net.train()
        torch.manual_seed(epoch_seed(cfg.seed, epoch, 1 + di.rank))  # dropout
        order = torch.randperm(
            n_train, generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0))
        )
        order = shard(order[: steps * cfg.batch_size], di.rank, di.world).to(device)
        aug_gen = torch.Generator(device=device).manual_seed(
            epoch_seed(cfg.seed, epoch, 100 + di.rank)
        )
        if cfg.trace_shards:
            _trace(cfg.trace_shards, di.rank, epoch, order)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        first = 0
        if within is not None:  # continue the epoch a checkpoint left at step `first`
            first, t0 = within["step"], t0 - within["seconds"]
            loss_sum.fill_(within["loss_sum"])
            correct.fill_(within["correct"])
            aug_gen.set_state(within["aug_rng"])
            torch.set_rng_state(within["torch_rng"])  # dropout, as it was at that step
            if "cuda_rng" in within:
                torch.cuda.set_rng_state(within["cuda_rng"], device)
            within = None
        strength = ramped_strength(cfg.augment_strength, cfg.augment_ramp_from, epoch, cfg.epochs)
        aug_cfg = aug_full.scaled(strength)
        bar = _progress(steps, epoch, cfg, di.main, first)
        saved_at = time.monotonic()
        for step in range(first, steps):
            done = epoch - 1 + step / steps
            if (lr := lr_at(cfg, done / cfg.epochs, done)) is not None:
                for g in optimizer.param_groups:
                    g["lr"] = lr * g.get("lr_scale", 1.0)
            idx = order[step * local_batch : (step + 1) * local_batch]
            xb = x_train[idx]
            if cfg.augment:
                mirror = (
                    alternating_mirror(flip_bits[idx], epoch) if cfg.mirror == "alternate" else None
                )
                xb = augment(xb, aug_gen, aug_cfg, mirror)
            else:
                xb = center_crop(xb)
            yb = y_train[idx]
            xb = xb.contiguous(memory_format=fmt)
            loss, scores = train_step(
                model_net, optimizer, loss_fn, xb, yb, amp, cfg.clip_grad_norm
            )
            if average is not None:
                update_ema(
                    average, net, decay_at(cfg.ema, (epoch - 1) * steps + step, ema_start_step)
                )
            loss_sum += loss.detach() * len(yb)
            correct += (scores.detach().argmax(1) == yb).sum()
            if bar is not None and (step % 10 == 9 or step == steps - 1):  # the only host syncs
                seen = (step + 1) * local_batch
                bar.set_postfix(
                    loss=f"{loss_sum.item() / seen:.4f}",
                    acc=f"{correct.item() / seen:.3f}",
                    img_s=f"{seen * di.world / (time.perf_counter() - t0):.0f}",
                )
                bar.update(step + 1 - bar.n)
            if (
                cfg.checkpoint_minutes
                and di.world == 1
                and step + 1 < steps
                and time.monotonic() - saved_at >= 60 * cfg.checkpoint_minutes
            ):
                at = _within(step + 1, loss_sum, correct, t0, aug_gen, device)
                save_checkpoint(state(epoch - 1, at), run.checkpoint)
                saved_at = time.monotonic()
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - t0
        totals = di.all_sum(torch.stack([loss_sum, correct.double()]))
        n_seen = steps * cfg.batch_size
        train_loss, train_acc = totals[0].item() / n_seen, totals[1].item() / n_seen
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"training loss became {train_loss} in epoch {epoch}: lower --lr (now {cfg.lr}); "
                f"the last good state is epoch {epoch - 1} in {run.checkpoint}"
            )

        # ---- validation (each rank scores its share of the validation set)
        judged = average if average is not None else model_net  # what is validated and saved
        if average is not None and bn_views is not None:
            recompute_batchnorm(average, center_crop(bn_views).contiguous(memory_format=fmt))
        val_loss, val_acc = _validate(judged, x_val, y_val, loss_fn, device, amp, di)
        lr_now = optimizer.param_groups[0]["lr"]
        if cfg.schedule == "plateau" and epoch >= cfg.warmup_epochs:
            plateau.step(train_loss)
            if optimizer.param_groups[0]["lr"] < lr_now * 0.5:
                drops += 1
                say(
                    f"epoch {epoch}: training loss stalled, learning rate -> {optimizer.param_groups[0]['lr']:.2e}"
                )
        m = EpochMetrics(
            epoch,
            train_loss,
            train_acc,
            val_loss,
            val_acc,
            lr_now,
            n_seen / train_seconds,
            time.perf_counter() - t0,
        )
        history.append(m)
        improved = val_acc > best_val
        if improved:
            best_val, best_epoch = val_acc, epoch

        # ---- files (rank 0): best model, metrics, curves, then the checkpoint last
        if di.main:
            if improved:
                meta.metrics = {
                    "best_epoch": epoch,
                    "val_acc": val_acc,
                    "val_loss": val_loss,
                    "train_acc": train_acc,
                    "epochs_done": epoch,
                }
                save_model(
                    FerModel(
                        saved_network(average if average is not None else net, plain),
                        normalizer,
                        meta,
                    ),
                    run.model,
                )
            run.write_metrics(history)
            training_curves(
                [m.epoch for m in history],
                [m.train_acc for m in history],
                [m.val_acc for m in history],
                run.curves,
                f"{cfg.arch} + {cfg.loss}",
            )
            save_checkpoint(state(epoch), run.checkpoint)
            if cfg.quiet:
                say(json.dumps(dataclasses.asdict(m)))
            else:
                say(
                    f"epoch {epoch}/{cfg.epochs}: loss {train_loss:.4f} acc {train_acc:.3f} | "
                    f"val loss {val_loss:.4f} acc {val_acc:.3f}{' *' if improved else ''} | "
                    f"{m.images_per_s:.0f} img/s, {m.seconds:.0f} s"
                )
        if cfg.trace_shards:
            _trace_weights(cfg.trace_shards, di.rank, net)
    if di.main and run.model.exists():
        t = _fit_temperature(run.model, val_imgs, val_lbls)
        if t is not None:
            say(f"probabilities: temperature {t:g} fitted on the {len(val_lbls)} validation faces")
    if di.world > 1:
        dist.barrier()
    say(f"{stop_reason}: best validation accuracy {best_val:.4f} at epoch {best_epoch}")
    return TrainResult(str(out), history[-1].epoch if history else 0, best_epoch, best_val, history)


def _fit_temperature(path: Path, images: np.ndarray, labels: np.ndarray):
    """Fit the saved best model's temperature on the validation faces (Eval1, as ``predict``
    scores) and store it in the file; a file that has one already (no new best since) is
    left as it is."""
    from ..fermodel.files import load_model
    from ..fermodel.temperature import fit_temperature

    model = load_model(path)
    if model.meta.temperature is not None:
        return None
    model.meta.temperature = fit_temperature(model.score(images, "eval1").cpu(), labels, model.loss)
    save_model(model, path)
    return model.meta.temperature


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


def _validate(net, x_val, y_val, loss_fn, device, amp, di: _DistInfo) -> tuple[float, float]:
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


def _within(step: int, loss_sum, correct, t0: float, aug_gen, device) -> dict:
    """Where an epoch stands after ``step`` batches: what :func:`_checked_within` restores."""
    return {
        "step": step,
        "loss_sum": loss_sum.item(),
        "correct": int(correct.item()),
        "seconds": time.perf_counter() - t0,
        "aug_rng": aug_gen.get_state(),
        **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
    }


def _checked_within(ck: dict) -> dict | None:
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


def _progress(steps: int, epoch: int, cfg: TrainConfig, main: bool, first: int = 0):
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


def _config_record(cfg: TrainConfig, device, amp, di: _DistInfo) -> dict:
    """The training options plus what was actually used (for the model's metadata)."""
    rec = dataclasses.asdict(cfg)
    rec.pop("trace_shards", None)
    rec.update(
        device_used=str(device),
        precision_used=str(amp or torch.float32).replace("torch.", ""),
        world_size=di.world,
        threads_used=torch.get_num_threads(),
        torch=torch.__version__,
        machine=machine_description(device),
    )
    return rec


def _trace(folder: str, rank: int, epoch: int, order: torch.Tensor) -> None:
    p = Path(folder) / f"rank{rank}-epoch{epoch}.npy"
    p.parent.mkdir(parents=True, exist_ok=True)
    np.save(p, order.cpu().numpy())


def _trace_weights(folder: str, rank: int, net: torch.nn.Module) -> None:
    from safetensors.torch import save_file

    save_file(
        {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
        str(Path(folder) / f"rank{rank}-weights.safetensors"),
    )
