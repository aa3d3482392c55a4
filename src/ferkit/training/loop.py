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
from ..device import autocast_dtype, memory_format, resolve_device
from ..fermodel.files import save_model
from ..fermodel.model import FerModel, ModelMeta
from ..fermodel.views import center_crop
from ..figures import training_curves
from ..labels import TRAIN_SPLIT
from ..losses import get_loss
from ..models import create_model
from .averaging import decay_at, recompute_batchnorm, update_ema
from .components import (
    STATISTICS_IMAGES,
    DistInfo,
    build_network,
    checked_within,
    config_record,
    epoch_seed,
    lr_at,
    make_optimizer,
    progress_bar,
    saved_network,
    shard,
    trace_order,
    trace_weights,
    train_step,
    validate,
    within_epoch,
)
from .config import TrainConfig
from .run_folder import (
    CheckpointError,
    EpochMetrics,
    RunFolder,
    load_checkpoint,
    save_checkpoint,
)

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "lr_at", "make_optimizer", "train"]


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


@dataclass
class _Setup:
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
class _Data:
    """Training and validation faces, normalised once and kept on the device."""

    x_train: torch.Tensor  # (N, 1, 48, 48): augmented per batch
    y_train: torch.Tensor
    x_val: torch.Tensor  # centre crops
    y_val: torch.Tensor
    val_imgs: np.ndarray  # as read, for the temperature
    val_lbls: np.ndarray
    normalizer: Normalizer


@dataclass
class _Trained:
    """One epoch's training, over every rank's images."""

    loss: float
    acc: float
    images_per_s: float
    t0: float  # when the epoch began (its seconds run to the end of validation)


@dataclass
class _State:
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
            "config": json.dumps(dataclasses.asdict(cfg)),
            "rng": {"torch": torch.get_rng_state()},
        }


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
    """The run, top to bottom: set-up, data, model, resume, epochs, temperature."""
    setup = _set_up(cfg)
    data = _load_data(setup)
    plain, state = _build(setup, data)
    if resume:
        _restore(setup, state)
    meta = ModelMeta(
        arch=cfg.arch.lower(),
        loss=cfg.loss,
        config=config_record(cfg, setup.device, setup.amp, setup.di),
    )
    stop_reason = f"all {cfg.epochs} epochs done"
    epoch = _Epochs(setup, data, state)
    for n in range(state.next_epoch, cfg.epochs + 1):
        if cfg.schedule == "plateau" and state.drops > cfg.max_drops:
            stop_reason = f"stopped on a plateau after {cfg.max_drops} learning-rate drops"
            break
        trained = epoch.train(n)
        val_loss, val_acc = epoch.validate()
        m, improved = _record(setup, state, n, trained, val_loss, val_acc)
        _write_files(setup, state, plain, data.normalizer, meta, m, improved)
        if cfg.trace_shards:
            trace_weights(cfg.trace_shards, setup.di.rank, state.net)
    if setup.di.main and setup.run.model.exists():
        t = _fit_temperature(setup.run.model, data.val_imgs, data.val_lbls)
        if t is not None:
            setup.say(
                f"probabilities: temperature {t:g} fitted on the {len(data.val_lbls)} "
                "validation faces"
            )
    if setup.di.world > 1:
        dist.barrier()
    setup.say(
        f"{stop_reason}: best validation accuracy {state.best_val:.4f} at epoch {state.best_epoch}"
    )
    last = state.history[-1].epoch if state.history else 0
    return TrainResult(cfg.out, last, state.best_epoch, state.best_val, state.history)


def _set_up(cfg: TrainConfig) -> _Setup:
    """The run folder (checked, stale temporaries gone), threads, device, processes, numerics."""
    run = RunFolder(Path(cfg.out))
    di = DistInfo()
    if di.main:
        run.check_writable()
        remove_stale_temporaries(run.path)  # left by a kill -9 mid-write
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if di.world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", di.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _Setup(
        cfg, run, di, device, autocast_dtype(device, cfg.precision), memory_format(device)
    )


def _load_data(setup: _Setup) -> _Data:
    """Training split into train and validation faces, normalised once, kept on the device."""
    cfg, di = setup.cfg, setup.di
    ds = load_fer2013(cfg.data, on_error="skip" if cfg.skip_bad else "raise")
    if ds.n_skipped:
        setup.say(f"ferkit: {ds.skipped_message()}")
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
    device = setup.device
    return _Data(
        x_train=normalizer(train_imgs).to(device),
        y_train=torch.as_tensor(train_lbls).to(device),
        x_val=center_crop(normalizer(val_imgs)).to(device).contiguous(memory_format=setup.fmt),
        y_val=torch.as_tensor(val_lbls).to(device),
        val_imgs=val_imgs,
        val_lbls=val_lbls,
        normalizer=normalizer,
    )


def _build(setup: _Setup, data: _Data) -> tuple[torch.nn.Module, _State]:
    """The paper's network (what every saved model is) and the state that trains it."""
    cfg = setup.cfg
    torch.manual_seed(cfg.seed)
    plain = create_model(cfg.arch)
    net = build_network(cfg, plain, data.x_train).to(setup.device).to(memory_format=setup.fmt)
    average = copy.deepcopy(net).eval().requires_grad_(False) if cfg.ema else None
    optimizer = make_optimizer(cfg, net)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.1, patience=cfg.patience, threshold=1e-3
    )
    return plain, _State(net, average, optimizer, plateau)


def _restore(setup: _Setup, state: _State) -> None:
    """Continue from ``checkpoint.pt``: weights, average, optimiser, schedule, random state and
    metrics, exactly as they were (a file that does not fit is a CheckpointError)."""
    run = setup.run
    ck = load_checkpoint(run.checkpoint)
    try:
        state.net.load_state_dict(ck["model"])
        if state.average is not None:
            state.average.load_state_dict(ck["ema"])
        state.optimizer.load_state_dict(ck["optimizer"])
        state.plateau.load_state_dict(ck["plateau"])
        torch.set_rng_state(ck["rng"]["torch"])
        state.next_epoch = int(ck["epoch"]) + 1
        state.best_val, state.best_epoch = ck["best_val_acc"], ck["best_epoch"]
        state.drops = ck["drops"]
        state.within = checked_within(ck)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(
            f"{run.checkpoint}: does not fit this run's settings ({first})"
        ) from None
    state.history = run.read_metrics(upto=ck["epoch"])
    if setup.di.main:
        run.write_metrics(state.history)  # drop lines of an unfinished epoch
    if state.next_epoch > setup.cfg.epochs:
        setup.say(
            f"{run.path} has finished its {setup.cfg.epochs} epochs (raise them with --epochs N)"
        )
    else:
        at = f", step {state.within['step']}" if state.within else ""
        setup.say(f"resuming {run.path} at epoch {state.next_epoch}{at} of {setup.cfg.epochs}")


class _Epochs:
    """One epoch of training on this rank's shard, and its validation."""

    def __init__(self, setup: _Setup, data: _Data, state: _State) -> None:
        cfg, device = setup.cfg, setup.device
        self.setup, self.data, self.state = setup, data, state
        self.model = (
            torch.nn.parallel.DistributedDataParallel(state.net)
            if setup.di.world > 1
            else state.net
        )
        self.loss_fn = get_loss(cfg.loss)
        self.n_train = len(data.y_train)
        self.steps = self.n_train // cfg.batch_size  # the last partial batch is dropped
        self.local_batch = cfg.batch_size // setup.di.world
        self.aug_full = AugmentConfig.from_ranges(cfg.rotation, cfg.rescale, cfg.shift, cfg.erase)
        self.flip_bits = torch.randint(  # alternating mirroring: each face's own first side
            0,
            2,
            (self.n_train,),
            generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, 0, 2)),
        ).to(device)
        self.ema_start_step = round(cfg.ema_start * cfg.epochs * self.steps)
        recompute = cfg.ema_bn == "recomputed"
        self.bn_views = data.x_train[:STATISTICS_IMAGES] if recompute else None

    def train(self, epoch: int) -> _Trained:
        """Train epoch ``epoch`` (from where a checkpoint inside it left off)."""
        setup, state, cfg, di = self.setup, self.state, self.setup.cfg, self.setup.di
        device, steps, run = setup.device, self.steps, setup.run
        t0 = time.perf_counter()
        self.model.train()
        torch.manual_seed(epoch_seed(cfg.seed, epoch, 1 + di.rank))  # dropout
        order = torch.randperm(
            self.n_train, generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, 0))
        )
        order = shard(order[: steps * cfg.batch_size], di.rank, di.world).to(device)
        aug_gen = torch.Generator(device=device).manual_seed(
            epoch_seed(cfg.seed, epoch, 100 + di.rank)
        )
        if cfg.trace_shards:
            trace_order(cfg.trace_shards, di.rank, epoch, order)
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        first = 0
        if state.within is not None:  # continue the epoch a checkpoint left at step `first`
            w, state.within = state.within, None
            first, t0 = w["step"], t0 - w["seconds"]
            loss_sum.fill_(w["loss_sum"])
            correct.fill_(w["correct"])
            aug_gen.set_state(w["aug_rng"])
            torch.set_rng_state(w["torch_rng"])  # dropout, as it was at that step
            if "cuda_rng" in w:
                torch.cuda.set_rng_state(w["cuda_rng"], device)
        strength = ramped_strength(cfg.augment_strength, cfg.augment_ramp_from, epoch, cfg.epochs)
        aug_cfg = self.aug_full.scaled(strength)
        bar = progress_bar(steps, epoch, cfg, di.main, first)
        saved_at = time.monotonic()
        for step in range(first, steps):
            done = epoch - 1 + step / steps
            if (lr := lr_at(cfg, done / cfg.epochs, done)) is not None:
                for g in state.optimizer.param_groups:
                    g["lr"] = lr * g.get("lr_scale", 1.0)
            idx = order[step * self.local_batch : (step + 1) * self.local_batch]
            xb, yb = self._batch(idx, epoch, aug_gen, aug_cfg), self.data.y_train[idx]
            loss, scores = train_step(
                self.model, state.optimizer, self.loss_fn, xb, yb, setup.amp, cfg.clip_grad_norm
            )
            if state.average is not None:
                decay = decay_at(cfg.ema, (epoch - 1) * steps + step, self.ema_start_step)
                update_ema(state.average, state.net, decay)
            loss_sum += loss.detach() * len(yb)
            correct += (scores.detach().argmax(1) == yb).sum()
            if bar is not None and (step % 10 == 9 or step == steps - 1):  # the only host syncs
                seen = (step + 1) * self.local_batch
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
                at = within_epoch(step + 1, loss_sum, correct, t0, aug_gen, device)
                save_checkpoint(state.to_checkpoint(cfg, epoch - 1, at), run.checkpoint)
                saved_at = time.monotonic()
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t0
        totals = di.all_sum(torch.stack([loss_sum, correct.double()]))
        n_seen = steps * cfg.batch_size
        train_loss, train_acc = totals[0].item() / n_seen, totals[1].item() / n_seen
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"training loss became {train_loss} in epoch {epoch}: lower --lr (now {cfg.lr}); "
                f"the last good state is epoch {epoch - 1} in {run.checkpoint}"
            )
        return _Trained(train_loss, train_acc, n_seen / seconds, t0)

    def _batch(self, idx: torch.Tensor, epoch: int, aug_gen, aug_cfg) -> torch.Tensor:
        """The batch's views: augmented (mirroring alternated when asked), or centre crops."""
        xb = self.data.x_train[idx]
        if self.setup.cfg.augment:
            alternate = self.setup.cfg.mirror == "alternate"
            mirror = alternating_mirror(self.flip_bits[idx], epoch) if alternate else None
            xb = augment(xb, aug_gen, aug_cfg, mirror)
        else:
            xb = center_crop(xb)
        return xb.contiguous(memory_format=self.setup.fmt)

    def validate(self) -> tuple[float, float]:
        """(loss, accuracy) of what is judged, its BatchNorm statistics measured afresh first
        when asked (``--ema-bn recomputed``)."""
        setup, state = self.setup, self.state
        if state.average is not None and self.bn_views is not None:
            views = center_crop(self.bn_views).contiguous(memory_format=setup.fmt)
            recompute_batchnorm(state.average, views)
        judged = state.average if state.average is not None else self.model
        return validate(
            judged,
            self.data.x_val,
            self.data.y_val,
            self.loss_fn,
            setup.device,
            setup.amp,
            setup.di,
        )


def _record(
    setup: _Setup, state: _State, epoch: int, trained: _Trained, val_loss: float, val_acc: float
) -> tuple[EpochMetrics, bool]:
    """The plateau schedule's step, the epoch's metrics into the history, and whether it is the
    best so far."""
    cfg = setup.cfg
    lr_now = state.optimizer.param_groups[0]["lr"]
    if cfg.schedule == "plateau" and epoch >= cfg.warmup_epochs:
        state.plateau.step(trained.loss)
        if state.optimizer.param_groups[0]["lr"] < lr_now * 0.5:
            state.drops += 1
            setup.say(
                f"epoch {epoch}: training loss stalled, learning rate -> "
                f"{state.optimizer.param_groups[0]['lr']:.2e}"
            )
    m = EpochMetrics(
        epoch,
        trained.loss,
        trained.acc,
        val_loss,
        val_acc,
        lr_now,
        trained.images_per_s,
        time.perf_counter() - trained.t0,
    )
    state.history.append(m)
    improved = val_acc > state.best_val
    if improved:
        state.best_val, state.best_epoch = val_acc, epoch
    return m, improved


def _write_files(
    setup: _Setup,
    state: _State,
    plain: torch.nn.Module,
    normalizer: Normalizer,
    meta: ModelMeta,
    m: EpochMetrics,
    improved: bool,
) -> None:
    """Rank 0: the best model (the paper's network), metrics, curves, then the checkpoint last."""
    if not setup.di.main:
        return
    cfg, run = setup.cfg, setup.run
    if improved:
        meta.metrics = {
            "best_epoch": m.epoch,
            "val_acc": m.val_acc,
            "val_loss": m.val_loss,
            "train_acc": m.train_acc,
            "epochs_done": m.epoch,
        }
        save_model(FerModel(saved_network(state.judged, plain), normalizer, meta), run.model)
    run.write_metrics(state.history)
    training_curves(
        [x.epoch for x in state.history],
        [x.train_acc for x in state.history],
        [x.val_acc for x in state.history],
        run.curves,
        f"{cfg.arch} + {cfg.loss}",
    )
    save_checkpoint(state.to_checkpoint(cfg, m.epoch), run.checkpoint)
    if cfg.quiet:
        setup.say(json.dumps(dataclasses.asdict(m)))
    else:
        setup.say(
            f"epoch {m.epoch}/{cfg.epochs}: loss {m.train_loss:.4f} acc {m.train_acc:.3f} | "
            f"val loss {m.val_loss:.4f} acc {m.val_acc:.3f}{' *' if improved else ''} | "
            f"{m.images_per_s:.0f} img/s, {m.seconds:.0f} s"
        )


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
