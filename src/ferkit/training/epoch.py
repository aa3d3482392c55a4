"""One epoch of training on this rank's shard, and its validation: the inner loop of
``loop.train``, with the lever study's per-step parts (augmentation strength ramp, alternating
mirroring, the late weight average and its recomputed BatchNorm statistics)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..data.augment import AugmentConfig, alternating_mirror, augment, ramped_strength
from ..fermodel.views import center_crop
from ..losses import distilled, get_loss
from .averaging import decay_at, recompute_batchnorm, update_ema
from .components import (
    STATISTICS_IMAGES,
    epoch_seed,
    lr_at,
    progress_bar,
    shard,
    trace_order,
    train_step,
    validate,
    within_epoch,
)
from .run_folder import save_checkpoint
from .state import Data, Setup, State


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite (the learning rate is too high)."""


@dataclass
class Trained:
    """One epoch's training, over every rank's images."""

    loss: float
    acc: float
    images_per_s: float
    t0: float  # when the epoch began (its seconds run to the end of validation)


class Epochs:
    """One epoch of training on this rank's shard, and its validation."""

    def __init__(self, setup: Setup, data: Data, state: State) -> None:
        cfg, device = setup.cfg, setup.device
        self.setup, self.data, self.state = setup, data, state
        self.model = (
            torch.nn.parallel.DistributedDataParallel(state.net)
            if setup.di.world > 1
            else state.net
        )
        self.loss_fn = get_loss(cfg.loss)  # what validation measures
        #: what training minimises: the loss, mixed with the teacher's where --distill
        self.train_loss = (
            distilled(
                self.loss_fn, cfg.distill_weight, cfg.distill_temperature, cfg.distill_score_scale
            )
            if data.t_train is not None
            else self.loss_fn
        )
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

    def train(self, epoch: int) -> Trained:
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
            teacher = None if self.data.t_train is None else self.data.t_train[idx]
            loss, scores = train_step(
                self.model,
                state.optimizer,
                self.train_loss,
                xb,
                yb,
                setup.amp,
                cfg.clip_grad_norm,
                teacher,
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
            kept = (
                f"the last good state, epoch {epoch - 1}, stays in {run.checkpoint}: start "
                "again over it with --overwrite and a lower --lr"
                if epoch > 1 and run.checkpoint.exists()
                else "nothing of this run was kept: start again with a lower --lr"
            )
            raise TrainingDiverged(
                f"training loss became {train_loss} in epoch {epoch}, the learning rate is too "
                f"high (--lr {cfg.lr}); {kept}"
            )
        return Trained(train_loss, train_acc, n_seen / seconds, t0)

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

    def validate(self) -> tuple[float | None, float | None]:
        """(loss, accuracy) of what is judged, its BatchNorm statistics measured afresh first
        when asked (``--ema-bn recomputed``); (None, None) without validation faces."""
        setup, state = self.setup, self.state
        if state.average is not None and self.bn_views is not None:
            views = center_crop(self.bn_views).contiguous(memory_format=setup.fmt)
            recompute_batchnorm(state.average, views)
        if not len(self.data.y_val):
            return None, None
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
