"""Every training option in one place. ``TrainConfig``'s fields are ``ferkit train``'s options
(name, default, help text and allowed values live with the field), the settings a run stores
so that ``--resume`` needs nothing else, and the command line a summary records
(:func:`command_line`): the parser, the checks and the recorded commands cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..argtypes import (
    COUNT,
    DATA_HELP,
    LOSSES,
    NON_NEGATIVE,
    NORM_LAYERS,
    POSITIVE,
    PRECISIONS,
    SEED,
    THREADS_HELP,
    number,
    thread_count,
)
from ..labels import PAPER_RESCALE, PAPER_ROTATION

SCHEDULES = ("plateau", "onecycle", "cosine")
OPTIMIZERS = ("sgd", "adamw")
HEAD_INITS = ("paper", "zero")
MIRRORS = ("random", "alternate")
EMA_BN = ("averaged", "recomputed")
DEVICES = ("auto", "cpu", "cuda", "mps")
#: Options every recorded command spells out, default or not (the rest appear when changed).
RECORDED_ALWAYS = ("arch", "loss", "schedule", "epochs", "lr", "weight_decay")


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002 (argparse's word)
    *,
    type: Callable[[str], Any] | None = None,  # noqa: A002
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    group: str | None = None,
    paper: bool = False,
    on_resume: bool = False,
    recorded: bool = True,
    hidden: bool = False,
) -> Any:
    """A ``TrainConfig`` field with its command-line option: ``type`` checks a value (the CLI's
    and :meth:`TrainConfig.validate`'s), ``group`` names mutually exclusive options,
    ``paper`` says the default is the paper's, ``on_resume`` lets ``--resume`` change it, ``recorded=False`` keeps it out of recorded
    commands, ``hidden`` out of ``--help``."""
    meta = dict(
        help=help,
        type=type,
        choices=choices,
        metavar=metavar,
        group=group,
        paper=paper,
        on_resume=on_resume,
        recorded=recorded,
        hidden=hidden,
    )
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every training option; stored in the run so ``--resume`` needs nothing else."""

    data: str = option(help=DATA_HELP, on_resume=True)
    out: str = option(help="run folder to create")
    arch: str = option("bkvgg12", "network, one of `ferkit models`")
    loss: str = option(
        "svm", "svm: the L2 multi-class SVM (eq. 4); ce: cross-entropy", choices=LOSSES
    )
    schedule: str = option(
        "plateau",
        "plateau: the paper's lr/10 when the training loss stalls; onecycle, cosine: fixed "
        "budgets over --epochs",
        choices=SCHEDULES,
        paper=True,
    )
    epochs: int = option(
        100,
        "total epochs (with --resume: raise the total)",
        type=number(int, min=1, max=100_000),
        on_resume=True,
    )
    lr: float = option(
        0.01,
        "initial (plateau, cosine) or peak (onecycle) learning rate",
        type=POSITIVE,
        paper=True,
    )
    weight_decay: float = option(5e-4, "L2 weight decay", type=NON_NEGATIVE, paper=True)
    momentum: float = option(0.9, "SGD momentum", type=number(float, min=0, below=1), paper=True)
    nesterov: bool = option(False, "Nesterov momentum")
    batch_size: int = option(
        256, "global batch size", type=number(int, min=1, max=65_536), paper=True
    )
    val_fraction: float = option(
        0.1,
        "stratified, seeded share of Training held out for model selection; 0: none, all of "
        "Training trains and the last epoch is saved, without a fitted temperature (fix the "
        "epoch count on a run with validation first)",
        type=number(float, min=0, below=1),
        group="validation",
    )
    val_split: str | None = option(
        None, "validate on this split instead (never for reported test figures)", group="validation"
    )
    limit: int | None = option(
        None,
        "use a seeded random N of Training's faces (validation is held out of those): a "
        "smoke run in minutes, e.g. --limit 2000 --epochs 2",
        type=number(int, min=2, max=10_000_000),
        metavar="N",
    )
    augment: bool = option(True, "train on centre crops instead (Table IV's baseline)")
    augment_strength: float = option(
        1.0,
        "scale the --rotation, --rescale and --shift ranges by S; mirroring, crops and "
        "erasing stay (III-C-2; below 1 suits short budgets; with --augment-ramp-from, the "
        "strength the run ends at)",
        type=number(float, above=0, max=2),
        metavar="S",
        paper=True,
    )
    rotation: float = option(
        PAPER_ROTATION,
        "largest random rotation, degrees (before --augment-strength)",
        type=number(float, min=0, max=180),
        metavar="DEG",
        paper=True,
    )
    rescale: float = option(
        PAPER_RESCALE,
        "largest relative change of the face's side (0.125: 42-54 px) (before --augment-strength)",
        type=number(float, min=0, max=0.5),
        metavar="F",
        paper=True,
    )
    shift: float = option(
        0.0,
        "extra random shift up to this many pixels each way, beyond the 42-px crop's own "
        "0-6 (before --augment-strength)",
        type=number(float, min=0, max=21),
        metavar="PX",
    )
    erase: float = option(
        0.0,
        "random erasing: the share of views that get one rectangle (2-33 %% of the view) set "
        "to the mean",
        type=number(float, min=0, max=1),
        metavar="P",
    )
    augment_ramp_from: float | None = option(
        None,
        "start the run at this augmentation strength and ramp it linearly, epoch by epoch, to "
        "--augment-strength at the last epoch (default: no ramp)",
        type=number(float, min=0, max=2),
        metavar="S0",
    )
    mirror: str = option(
        "random",
        "random: mirror half the views at random (the paper's); alternate: mirror each face "
        "every other epoch, from its own random start",
        choices=MIRRORS,
        paper=True,
    )
    # eq. 2's init + the SVM loss give gradient norms ~1e3 at the start: lr 0.01 from step one
    # diverges, so plateau and cosine warm up
    warmup_epochs: float = option(
        1.0,
        "plateau, cosine: linear learning-rate warm-up from lr/100 over this many epochs "
        "(0 = none)",
        type=NON_NEGATIVE,
    )
    clip_grad_norm: float | None = option(
        None,
        "cap the gradient's global norm at this value (default: no cap, as in the paper)",
        type=POSITIVE,
    )
    # the fast procedure's levers (defaults: the paper's procedure)
    norm_layers: str = option(
        "none",
        "bn: train with BatchNorm after every convolution and hidden FC layer, folded into the "
        "saved model (which stays the paper's network, same tensors and parameter count); "
        "none: no normalisation layers",
        choices=NORM_LAYERS,
        paper=True,
    )
    optimizer: str = option(
        "sgd",
        "sgd: momentum SGD; adamw: Adam with decoupled weight decay (give it its own --lr, "
        "e.g. 0.001, and --weight-decay, e.g. 0.05)",
        choices=OPTIMIZERS,
        paper=True,
    )
    ema: float = option(
        0.0,
        "keep a moving average of the weights with this decay per step (e.g. 0.998; 0 = off); "
        "the average is what is validated and saved",
        type=number(float, min=0, below=1),
        metavar="DECAY",
    )
    head_init: str = option(
        "paper",
        "paper: eq. 2 for every layer; zero: the output layer starts at 0",
        choices=HEAD_INITS,
        paper=True,
    )
    whiten_init: bool = option(
        False, "start the first convolution as +- whitening filters of the training patches"
    )
    dirac_init: bool = option(
        False,
        "start each later convolution as the identity on its first input-width filters",
    )
    bn_scale: bool = option(
        True, "--norm-layers bn: fix every BatchNorm's scale at 1 (learn only its shift)"
    )
    bn_bias_lr: float = option(
        1.0,
        "--norm-layers bn: the BatchNorm shifts' learning rate as a multiple of --lr",
        type=POSITIVE,
        metavar="X",
    )
    bn_momentum: float = option(
        0.1,
        "--norm-layers bn: the running statistics' update rate per step (torch's default)",
        type=number(float, above=0, max=1),
    )
    ema_start: float = option(
        0.0,
        "--ema: start the average after this share of the run (before: it follows the weights)",
        type=number(float, min=0, below=1),
        metavar="F",
    )
    ema_bn: str = option(
        "averaged",
        "--ema: averaged: the average's BatchNorm statistics are the averaged running ones; "
        "recomputed: measured afresh on training centre crops before each validation",
        choices=EMA_BN,
    )
    distill: str | None = option(
        None,
        "a teacher file (ferkit teach): train towards its probabilities for each Training "
        "face as well as towards the labels (knowledge distillation; teachers that trained on "
        "this run's validation faces make its selection optimistic: give them this run's "
        "--seed and --val-fraction, or judge the run at a fixed epoch)",
        metavar="FILE",
    )
    distill_weight: float = option(
        0.5,
        "--distill: the teacher's share of the loss ((1 - W) x the loss + W x the "
        "distillation term)",
        type=number(float, min=0, max=1),
        metavar="W",
    )
    distill_temperature: float = option(
        2.0,
        "--distill: the temperature both the teacher's probabilities and the student's "
        "scores are softened to",
        type=number(float, above=0, max=100),
        metavar="T",
    )
    distill_score_scale: float = option(
        1.0,
        "--distill: the student's scores times S are its logits in the distillation term "
        "(an SVM student's scores keep the hinge's margin; calibrated teachers' probabilities "
        "are scores over a fitted temperature tau: S = 1 / tau matches both)",
        type=number(float, above=0, max=100),
        metavar="S",
    )
    patience: int = option(
        5, "plateau: epochs without a training-loss improvement before lr/10", type=COUNT
    )
    max_drops: int = option(
        5, "plateau: stop when the loss stalls again after this many drops", type=COUNT
    )
    seed: int = option(0, "random seed", type=SEED)
    skip_bad: bool = option(
        False,
        "leave bad data rows out (reported on stderr) instead of stopping at the first",
        recorded=False,
    )
    threads: int | None = option(
        None, THREADS_HELP.format(default="torch's"), type=thread_count, on_resume=True
    )
    checkpoint_minutes: float = option(
        5.0,
        "also save checkpoint.pt inside an epoch every M minutes, so that a kill loses at most "
        "that much (--resume continues from the step it reached, bit-exact); 0: only at the "
        "end of each epoch. One process only: under torchrun, epoch ends only",
        type=NON_NEGATIVE,
        metavar="M",
        on_resume=True,
        recorded=False,
    )
    device: str = option("auto", "training device", choices=DEVICES, on_resume=True)
    precision: str = option(
        "auto",
        "auto: bf16/fp16 autocast where the hardware has it (CUDA, CPUs with AVX512-BF16/AMX), "
        "else fp32",
        choices=PRECISIONS,
    )
    quiet: bool = option(
        False, "no progress bar: one JSON line per epoch", on_resume=True, recorded=False
    )
    # testing aid: each rank records the indices it trained on
    trace_shards: str | None = option(None, recorded=False, hidden=True)

    def validate(self) -> None:
        """One clear ValueError for settings that cannot work: each option's own check, the
        same the command line makes (for settings built in Python or read from a run)."""
        from ..models import list_models  # torch: not needed for --help

        if self.arch.lower() not in list_models():
            raise ValueError(f"unknown network {self.arch!r} (known: {', '.join(list_models())})")
        for f in dataclasses.fields(self):
            value, meta, flag = getattr(self, f.name), f.metadata, option_flag(f.name)
            if meta.get("choices") and value not in meta["choices"]:
                known = ", ".join(meta["choices"])
                raise ValueError(f"unknown {flag} {value!r} (known: {known})")
            check = meta.get("type")
            if check is None or value is None or isinstance(value, bool):
                continue
            if not isinstance(value, int | float):
                raise ValueError(f"{flag} must be a number, not {value!r}")
            try:
                check(repr(value))
            except argparse.ArgumentTypeError as e:
                raise ValueError(f"{flag} {e}") from None
        for flag, needs in self.ineffective():
            raise ValueError(f"{flag} has no effect without {needs}")

    def ineffective(self, table: dict | None = None) -> list[tuple[str, str]]:
        """The options changed from their defaults where another setting makes them do
        nothing: (option, what it needs); refused. ``table=IGNORED``: those only warned of,
        because recorded runs and recipes use them."""
        found = []
        for f in dataclasses.fields(self):
            needs = (_NEEDS if table is None else table).get(f.name)
            if needs and getattr(self, f.name) != f.default and not needs[1](self):
                found.append(
                    (
                        bool_flag(f.name, f.default)
                        if isinstance(f.default, bool)
                        else option_flag(f.name),
                        needs[0],
                    )
                )
        return found


def _augmented(cfg: TrainConfig) -> bool:
    return cfg.augment


def _normed(cfg: TrainConfig) -> bool:
    return cfg.norm_layers == "bn"


def _averaged(cfg: TrainConfig) -> bool:
    return bool(cfg.ema)


def _distilled(cfg: TrainConfig) -> bool:
    return cfg.distill is not None


def _sgd(cfg: TrainConfig) -> bool:
    return cfg.optimizer == "sgd"


def _plateau(cfg: TrainConfig) -> bool:
    return cfg.schedule == "plateau"


#: The options that only act beside another setting: field -> (that setting, its test).
_NEEDS: dict[str, tuple[str, Callable[[TrainConfig], bool]]] = {
    **{
        name: ("augmentation (drop --no-augment)", _augmented)
        for name in (
            "augment_strength",
            "rotation",
            "rescale",
            "shift",
            "erase",
            "augment_ramp_from",
            "mirror",
        )
    },
    **{name: ("--norm-layers bn", _normed) for name in ("bn_scale", "bn_bias_lr", "bn_momentum")},
    **{name: ("--ema", _averaged) for name in ("ema_start", "ema_bn")},
    **{
        name: ("--distill", _distilled)
        for name in (
            "distill_weight",
            "distill_temperature",
            "distill_score_scale",
        )
    },
}
#: The same for combinations recorded runs and recipes already hold (``reproduce`` trains every
#: AdamW recipe with ``--nesterov``): a new run is warned, and ``--resume`` keeps working.
IGNORED: dict[str, tuple[str, Callable[[TrainConfig], bool]]] = {
    **{name: ("--optimizer sgd", _sgd) for name in ("momentum", "nesterov")},
    **{name: ("--schedule plateau", _plateau) for name in ("patience", "max_drops")},
}


def option_flag(name: str) -> str:
    """A field's command-line option: ``weight_decay`` -> ``--weight-decay``."""
    return "--" + name.replace("_", "-")


def bool_flag(name: str, default: bool) -> str:
    """The flag that changes a boolean field from its default (``--nesterov``, ``--no-augment``)."""
    return option_flag(name) if not default else "--no-" + name.replace("_", "-")


#: The options that shape the training augmentation (``augment-preview`` takes them too).
AUGMENT_OPTIONS = ("augment_strength", "rotation", "rescale", "shift", "erase")


def add_train_options(parser: argparse.ArgumentParser, only: tuple[str, ...] = ()) -> None:
    """Every field of :class:`TrainConfig` (or those named in ``only``) as an option of
    ``parser``, with its help, check and default. Options left out are ``None`` in the parsed
    namespace (the field's default then)."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        if only and f.name not in only:
            continue
        meta = f.metadata
        where = parser
        if meta["group"]:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            where = groups[meta["group"]]
        if meta["hidden"]:
            where.add_argument(option_flag(f.name), help=argparse.SUPPRESS)
            continue
        help_text = meta["help"]
        if isinstance(f.default, bool):
            where.add_argument(
                bool_flag(f.name, f.default),
                dest=f.name,
                action="store_const",
                const=not f.default,
                help=help_text,
            )
            continue
        if f.default not in (None, dataclasses.MISSING):
            shown = f"{f.default:g}" if isinstance(f.default, float) else f.default
            help_text += (
                f" (default {shown}, the paper's)" if meta["paper"] else f" (default {shown})"
            )
        where.add_argument(
            option_flag(f.name),
            type=meta["type"],
            choices=meta["choices"],
            metavar=meta["metavar"],
            help=help_text,
        )


def augment_config(given: dict[str, Any]):
    """The augmentation that ``given`` options (``AUGMENT_OPTIONS``, ``None`` for a default)
    describe, at its full strength."""
    from ..data.augment import AugmentConfig

    cfg = config_from_options({"data": "", "out": "", **given})
    full = AugmentConfig.from_ranges(cfg.rotation, cfg.rescale, cfg.shift, cfg.erase)
    return full.scaled(cfg.augment_strength)


def config_from_options(given: dict[str, Any]) -> TrainConfig:
    """A ``TrainConfig`` from parsed options (``None``: not given, the field's default)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in given.items() if k in names and v is not None})


def resume_overrides(given: dict[str, Any]) -> dict[str, Any]:
    """The options given beside ``--resume`` that may change a stored run's settings."""
    return {
        f.name: given[f.name]
        for f in dataclasses.fields(TrainConfig)
        if f.metadata["on_resume"] and given.get(f.name) is not None
    }


def recorded_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The recorded training options found in ``settings`` (a run's stored config, which holds
    more), in ``TrainConfig``'s order, data and out left out: what a model card shows."""
    return {
        f.name: settings[f.name]
        for f in dataclasses.fields(TrainConfig)
        if f.metadata["recorded"] and f.name not in ("data", "out") and f.name in settings
    }


def changed_options(settings: dict[str, Any], always: tuple[str, ...] = ()) -> list[str]:
    """The command-line words for each recorded option in ``settings`` that differs from its
    default (and each named in ``always``): ``["--optimizer", "adamw", "--nesterov"]``."""
    args: list[str] = []
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for name, value in recorded_settings(settings).items():
        default = defaults[name]
        if name not in always and value == default:
            continue
        if isinstance(default, bool):
            args.append(bool_flag(name, default))
        else:
            args += [option_flag(name), str(value)]
    return args


def command_line(cfg: TrainConfig) -> str:
    """The ``ferkit train`` command that makes ``cfg``: data, out (as they may be shown to
    others: ``userfiles.public_path``), the options in ``RECORDED_ALWAYS``, then every other
    recorded option that differs from its default."""
    from ..userfiles import public_path, shell_word

    head = ["ferkit", "train", "--data", public_path(cfg.data), "--out", public_path(cfg.out)]
    words = head + changed_options(dataclasses.asdict(cfg), RECORDED_ALWAYS)
    return " ".join(map(shell_word, words))
