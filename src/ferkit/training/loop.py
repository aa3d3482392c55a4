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

import contextlib
import copy
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..atomic import remove_stale_temporaries
from ..data.fer2013 import DataError, load_fer2013, stratified_split
from ..data.preprocess import Normalizer
from ..device import autocast_dtype, memory_format, resolve_device
from ..fermodel.files import file_sha256, save_model
from ..fermodel.model import FerModel, ModelMeta
from ..fermodel.views import center_crop
from ..figures import training_curves
from ..labels import TRAIN_SPLIT
from ..models import create_model
from .components import (
    DistInfo,
    build_network,
    checked_within,
    config_record,
    make_optimizer,
    saved_network,
    trace_weights,
)
from .config import TrainConfig
from .epoch import Epochs, Trained, TrainingDiverged
from .run_folder import (
    CheckpointError,
    EpochMetrics,
    RunFolder,
    load_checkpoint,
    run_lock,
    save_checkpoint,
)
from .state import Data, Setup, State
from .teacher import read_teacher_file

__all__ = ["TrainResult", "TrainingDiverged", "train"]


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    out: str
    epochs_done: int
    best_epoch: int
    best_val_acc: float
    history: list[EpochMetrics] = field(default_factory=list)


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train (or continue) the run in ``cfg.out``; returns its summary. Rank 0 writes the files.

    A folder that already holds a run is refused unless ``resume`` (continue it) or
    ``overwrite`` (start again over it); a run folder this call created is removed again if
    training fails before writing anything into it."""
    cfg.validate()
    out = Path(cfg.out)
    created = not out.exists()
    try:
        with _locked(out):  # before the check: two runs started at once cannot both pass it
            if not resume and not overwrite and (found := RunFolder(out).run_files()):
                raise ValueError(
                    f"{out} already holds a run ({', '.join(found)}): continue it with --resume "
                    f"{out}, choose a new --out, or pass --overwrite to start again over it"
                )
            return _train(cfg, resume)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _locked(out: Path):
    """The run folder's lock, taken by the one process that writes it (rank 0), once the
    folder is known to be writable."""
    if not DistInfo().main:
        return contextlib.nullcontext()
    RunFolder(out).check_writable()
    return run_lock(out)


def _train(cfg: TrainConfig, resume: bool) -> TrainResult:
    """The run, top to bottom: set-up, data, model, resume, epochs, temperature."""
    setup = _set_up(cfg)
    data = _load_data(setup)
    plain, state = _build(setup, data)
    state.data_record = data.record
    if resume:
        _restore(setup, state)
    meta = ModelMeta(
        arch=cfg.arch.lower(),
        loss=cfg.loss,
        config=config_record(cfg, setup.device, setup.amp, setup.di),
    )
    stop_reason = f"all {cfg.epochs} epochs done"
    epoch = Epochs(setup, data, state)
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
    if setup.di.main and setup.run.model.exists() and len(data.val_lbls):
        t = _fit_temperature(setup.run.model, data.val_imgs, data.val_lbls)
        if t is not None:
            setup.say(
                f"probabilities: temperature {t:g} fitted on the {len(data.val_lbls)} "
                "validation faces"
            )
    if setup.di.world > 1:
        dist.barrier()
    judged = (
        f"best validation accuracy {state.best_val:.4f} at epoch {state.best_epoch}"
        if len(data.val_lbls)
        else f"no validation faces: the model of epoch {state.best_epoch}, the last, is saved"
    )
    setup.say(f"{stop_reason}: {judged}")
    last = state.history[-1].epoch if state.history else 0
    return TrainResult(cfg.out, last, state.best_epoch, state.best_val, state.history)


def _set_up(cfg: TrainConfig) -> Setup:
    """The run folder (checked, stale temporaries gone), threads, device, processes, numerics."""
    run = RunFolder(Path(cfg.out))
    di = DistInfo()
    if di.main:  # writable: checked when train() took the folder's lock
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
    return Setup(cfg, run, di, device, autocast_dtype(device, cfg.precision), memory_format(device))


def _load_data(setup: Setup) -> Data:
    """Training split into train and validation faces, normalised once, kept on the device."""
    cfg, di = setup.cfg, setup.di
    ds = load_fer2013(cfg.data, on_error="skip" if cfg.skip_bad else "raise")
    if ds.n_skipped:
        setup.say(f"ferkit: {ds.skipped_message()}")
    full = ds.split(TRAIN_SPLIT)
    teacher = read_teacher_file(cfg.distill, full) if cfg.distill else None
    if cfg.limit and cfg.limit < len(full):
        pick = full.sample_indices(cfg.limit, cfg.seed)
        full = full.sample(cfg.limit, cfg.seed)
        teacher = None if teacher is None else teacher[pick]
    if cfg.val_split:
        val_set = ds.split(cfg.val_split)
        train_imgs, train_lbls = full.images, full.labels
        val_imgs, val_lbls = val_set.images, val_set.labels
    else:  # --val-fraction 0: no validation faces, every Training face trains
        tr_idx, va_idx = stratified_split(full.labels, cfg.val_fraction, cfg.seed)
        train_imgs, train_lbls = full.images[tr_idx], full.labels[tr_idx]
        val_imgs, val_lbls = full.images[va_idx], full.labels[va_idx]
        teacher = None if teacher is None else teacher[tr_idx]
    if cfg.batch_size > len(train_lbls):
        raise ValueError(
            f"--batch-size {cfg.batch_size} is larger than the {len(train_lbls)} training images"
        )
    if cfg.batch_size % di.world:
        raise ValueError(f"--batch-size {cfg.batch_size} is not divisible by {di.world} processes")
    normalizer = Normalizer.fit(train_imgs)
    device = setup.device
    used = [full] + ([val_set] if cfg.val_split else [])
    record = {"sha256": hashlib.sha256("".join(s.fingerprint() for s in used).encode()).hexdigest()}
    if cfg.distill:
        record["teacher_sha256"] = file_sha256(cfg.distill)
    return Data(
        record=record,
        x_train=normalizer(train_imgs).to(device),
        y_train=torch.as_tensor(train_lbls).to(device),
        x_val=center_crop(normalizer(val_imgs)).to(device).contiguous(memory_format=setup.fmt),
        y_val=torch.as_tensor(val_lbls).to(device),
        val_imgs=val_imgs,
        val_lbls=val_lbls,
        normalizer=normalizer,
        t_train=None if teacher is None else torch.as_tensor(teacher).to(device),
    )


def _build(setup: Setup, data: Data) -> tuple[torch.nn.Module, State]:
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
    return plain, State(net, average, optimizer, plateau)


def _restore(setup: Setup, state: State) -> None:
    """Continue from ``checkpoint.pt``: weights, average, optimiser, schedule, random state and
    metrics, exactly as they were (a file that does not fit is a CheckpointError)."""
    run = setup.run
    ck = load_checkpoint(run.checkpoint)
    began_on = ck.get("data", {}).get("sha256")  # older checkpoints hold none: not checked
    if began_on is not None and began_on != state.data_record["sha256"]:
        raise DataError(
            setup.cfg.data,
            None,
            f"not the data {run.path} began on (other faces or labels in the splits it trains "
            "on): resume with the data it began on (--resume RUN --data PATH), or start a new run",
        )
    taught_by = ck.get("data", {}).get("teacher_sha256")
    if taught_by != state.data_record.get("teacher_sha256"):
        raise DataError(
            setup.cfg.distill or setup.cfg.data,
            None,
            f"not the teacher file {run.path} began with: resume with the same --distill file",
        )
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


def _record(
    setup: Setup,
    state: State,
    epoch: int,
    trained: Trained,
    val_loss: float | None,
    val_acc: float | None,
) -> tuple[EpochMetrics, bool]:
    """The plateau schedule's step, the epoch's metrics into the history, and whether it is the
    best so far (without validation, every epoch is: the last is kept)."""
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
    improved = val_acc is None or val_acc > state.best_val
    if improved:
        state.best_val, state.best_epoch = (state.best_val if val_acc is None else val_acc), epoch
    return m, improved


def _write_files(
    setup: Setup,
    state: State,
    plain: torch.nn.Module,
    normalizer: Normalizer,
    meta: ModelMeta,
    m: EpochMetrics,
    improved: bool,
) -> None:
    """Rank 0: the best model (the paper's network), metrics, curves, then the checkpoint last."""
    if not setup.di.main:
        return
    with _says_how_to_go_on(setup.run):
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
    _print_epoch(setup, m, improved)


@contextlib.contextmanager
def _says_how_to_go_on(run: RunFolder) -> Iterator[None]:
    """A write that fails (a full disk, a quota) as one line saying how to continue: every file
    is written atomically, so the folder holds whole files of the last epoch written."""
    try:
        yield
    except OSError as e:
        how = (
            f"free space, then `ferkit train --resume {run.path}` continues after epoch "
            f"{load_checkpoint(run.checkpoint)['epoch']}"
            if run.checkpoint.exists()
            else "free space, then start again with --overwrite (no epoch was checkpointed)"
        )
        raise OSError(f"{e.strerror or e} while writing the run's files: {how}") from None


def _print_epoch(setup: Setup, m: EpochMetrics, improved: bool) -> None:
    cfg = setup.cfg
    if cfg.quiet:
        setup.say(json.dumps(dataclasses.asdict(m)))
    else:
        val = (
            "no validation"
            if m.val_acc is None
            else f"val loss {m.val_loss:.4f} acc {m.val_acc:.3f}{' *' if improved else ''}"
        )
        setup.say(
            f"epoch {m.epoch}/{cfg.epochs}: loss {m.train_loss:.4f} acc {m.train_acc:.3f} | "
            f"{val} | {m.images_per_s:.0f} img/s, {m.seconds:.0f} s"
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
