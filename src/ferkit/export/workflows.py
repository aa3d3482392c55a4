"""Deploying a trained model: fp16 weights (half the size) with a model card, and the int8
calibration (``ferkit quantize``), each kept only if it scores within a tolerance of fp32 on a
test split.

The card goes into the file's metadata and, as Markdown, beside it (``<name>.md``): what the
model is, how it was trained (from its own config, and from a ``ferkit reproduce`` summary when
given one), what it scored, the data's terms and the model's known limits.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..fermodel.files import (
    CalibrationError,
    Int8Calibration,
    calibration_path,
    read_model_file,
    save_model,
)
from ..training.config import changed_options, recorded_settings
from ..userfiles import public_command, public_path

#: What every card says about FER-2013 and the limits any model trained on it has.
DATA_CARD: dict = {
    "data": "FER-2013 (Goodfellow et al. 2013, the ICML 2013 'Challenges in Representation "
    "Learning' facial expression challenge on Kaggle): 48x48 grey faces found by web image "
    "search, one of 7 expression labels each; trained on its Training split (10 % held out "
    "for model selection), never on a test split.",
    "terms_of_use": "FER-2013 was published by its authors (Pierre-Luc Carrier and Aaron "
    "Courville) for the Kaggle challenge under the competition's rules, for research; no "
    "licence for other uses is stated, and these weights inherit that: check before any "
    "commercial use.",
    "limits": [
        "Input is a 48x48 grey face framed as FER-2013 frames them (ferkit's detector and crop "
        "do this); colour, resolution and context are thrown away.",
        "FER-2013's labels are noisy: people agree with them about 65 +- 5 % of the time.",
        "Its faces come from web search: ages, skin tones, head poses, lighting and posed "
        "against spontaneous expressions are not balanced, and accuracy differs between groups "
        "in ways nobody has measured on this model.",
        "Disgust is 1.5 % of the training faces (436): the model rarely says disgust.",
        "It names a displayed expression, not what a person feels; do not use it to make "
        "decisions about people.",
        "Accuracy on real photos is lower than on FER-2013's test faces.",
    ],
}


@dataclass(frozen=True)
class PrecisionCheck:
    """fp32's accuracy and a lower-precision copy's (fp16 weights or int8) on the same faces:
    the one check behind the fp16 export and the int8 calibration."""

    split: str
    method: str
    precision: str  # "fp16" or "int8"
    fp32: float
    other: float

    @property
    def points_lost(self) -> float:
        """Accuracy points the lower precision loses (negative when it gains)."""
        return 100 * (self.fp32 - self.other)

    def to_dict(self) -> dict:
        """As model cards and calibration files store it: ``{split, method, fp32, fp16|int8}``."""
        return {
            "split": self.split,
            "method": self.method,
            "fp32": self.fp32,
            self.precision: self.other,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PrecisionCheck:
        precision = next(k for k in ("fp16", "int8") if k in d)
        return cls(d["split"], d["method"], precision, d["fp32"], d[precision])

    def line(self) -> str:
        """One line for the terminal."""
        return (
            f"{self.split} {self.method}: fp32 {100 * self.fp32:.2f} %, "
            f"{self.precision} {100 * self.other:.2f} %"
        )


def public_config(config: dict) -> dict:
    """A model's training settings with its data and run paths as they may be shown to others
    (files trained before paths were recorded so still hold the trainer's absolute ones)."""
    paths = {k: public_path(v) for k in ("data", "out") if isinstance(v := config.get(k), str)}
    return {**config, **paths}


def export_model(
    model_path: str | os.PathLike,
    out: str | os.PathLike,
    dtype: str = "fp16",
    card: dict | None = None,
    verify_data: str | None = None,
    split: str = "PublicTest",
    method: str = "center",
    tolerance_points: float = 0.1,
    summary: dict | None = None,
) -> PrecisionCheck | None:
    """Write ``model_path`` to ``out`` in ``dtype`` with its card (``card`` overrides fields),
    and the card as Markdown beside it; with ``verify_data``, refuse (ValueError) an fp16
    export whose accuracy differs from fp32 by more than ``tolerance_points``. Weights stored in
    fp16 already (a shipped file re-exported, e.g. to add its temperature) are not compared with
    themselves: their card keeps the check made when they were first exported."""
    if dtype not in ("fp16", "fp32"):
        raise ValueError(f"dtype must be fp16 or fp32, not {dtype!r}")
    read = read_model_file(model_path)  # the file's one opening
    model = read.model
    ds = _load_once(verify_data)
    _fit_missing_temperature(model, ds)
    torch_dtype = torch.float16 if dtype == "fp16" else torch.float32
    check = None
    if ds is not None and dtype == "fp16" and not read.fp16:
        check = _compare(model, ds, split, method, _measured(read.sha256, summary))
        if abs(check.points_lost) > tolerance_points:
            raise ValueError(
                f"fp16 changes {split} {method} accuracy by {abs(check.points_lost):.2f} "
                f"points (> {tolerance_points}): export fp32 instead"
            )
    model.meta.card = {**build_card(model, dtype, summary, check), **(card or {})}
    model.meta.config = public_config(model.meta.config)
    save_model(model, out, dtype=torch_dtype)
    with atomic_write(Path(out).with_suffix(".md"), "w") as fh:
        fh.write(card_markdown(model.meta.card))
    return check


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)  # None: trained without validation


def build_card(model, dtype: str, summary: dict | None, check: PrecisionCheck | None) -> dict:
    """The card's fields from the model's own metadata, a reproduce summary and the fp16 check."""
    cfg, metrics = model.meta.config, model.meta.metrics
    card = {
        **{k: v for k, v in model.meta.card.items() if k not in DATA_CARD},
        "model": f"{model.meta.arch} + {model.meta.loss}",
        "parameters": model.params,
        "weights": dtype,
        "procedure": training_procedure(cfg),
        "training": recorded_settings(cfg),
        "validation_accuracy": _rounded(metrics.get("val_acc", float("nan"))),
        "temperature": model.meta.temperature,
        "best_epoch": metrics.get("best_epoch"),
        "machine": model.meta.card.get("machine") or cfg.get("machine"),  # kept on re-export
        "torch": cfg.get("torch", torch.__version__),
    }
    if summary:
        card["command"] = public_command(summary["command"]) if summary.get("command") else None
        card["wall_time_hours"] = round(summary.get("train_seconds", 0) / 3600, 2)
        card["machine"] = summary.get("machine")
        acc: dict = {}
        for r in summary.get("results", []):
            acc.setdefault(r["split"], {})[r["method"]] = round(r["accuracy"], 4)
        card["accuracy"] = acc
    if check:
        card["fp16_check"] = check.to_dict()
    return {**card, **DATA_CARD}


def training_procedure(cfg: dict) -> str:
    """In words, how the weights were trained: the paper's procedure, or which of the fast
    procedure's levers (the saved network is the paper's either way), then every other
    training option that differs from its default, so that no lever goes unsaid."""
    levers = []
    described = {"norm_layers", "optimizer", "lr", "weight_decay", "ema", "head_init"}
    if cfg.get("norm_layers", "none") != "none":
        levers.append("train-time BatchNorm folded into the saved weights")
    if cfg.get("optimizer", "sgd") != "sgd":
        levers.append(
            f"{cfg['optimizer']} (lr {cfg.get('lr')}, weight decay {cfg.get('weight_decay')})"
        )
    if cfg.get("ema"):
        levers.append(f"weight average {cfg['ema']}")
    if cfg.get("head_init", "paper") != "paper":
        levers.append(f"output layer started at {cfg['head_init']}")
    rest = changed_options({k: v for k, v in cfg.items() if k not in described})
    base = (
        "fast: " + ", ".join(levers)
        if levers
        else "the paper's (SGD with momentum, no normalisation layers)"
    )
    return f"{base}; options {' '.join(rest)}" if rest else base


def card_markdown(card: dict) -> str:
    """The card as a short Markdown page, its fields in order."""
    lines = [f"# ferkit model card: {card.get('model', 'model')}", ""]
    for key, value in card.items():
        if key == "limits":
            lines += ["", "## Known limits", "", *[f"- {x}" for x in value], ""]
        elif isinstance(value, dict):
            lines.append(f"- **{key}**: `{json.dumps(value)}`")
        elif key == "command":
            lines.append(f"- **{key}**: `{value}`")
        elif key not in ("data", "terms_of_use"):
            lines.append(f"- **{key}**: {value}")
    lines[2:2] = [f"{card['data']}", "", f"Terms of use: {card['terms_of_use']}", ""]
    return "\n".join(lines).rstrip() + "\n"


def export_onnx(
    model_path: str | os.PathLike | None,
    out: str | os.PathLike,
    card: dict | None = None,
    verify_data: str | None = None,
    split: str = "PublicTest",
    method: str = "center",
    onnx_input: str = "crops",
):
    """Write ``model_path`` as a self-describing ONNX file (fp32) with its card: the network on
    normalised crops, or (``onnx_input="faces"``) all of inference on 48x48 uint8 faces. With
    ``verify_data``, ONNX Runtime is checked against torch on ``split`` first (the faces graph
    against Eval1) and nothing is written past the parity targets
    (``onnx_model.MAX_SCORE_DIFFERENCE``, ``MIN_SAME_PREDICTIONS``)."""
    from ..fermodel.onnx import (
        MAX_SCORE_DIFFERENCE,
        MIN_SAME_PREDICTIONS,
        check_faces_parity,
        check_parity,
        onnx_bytes,
        save_onnx,
        to_onnx_backend,
    )

    model = read_model_file(model_path).model
    ds = _load_once(verify_data)
    _fit_missing_temperature(model, ds)
    model.meta.card = {**build_card(model, "fp32 (onnx)", None, None), **(card or {})}
    parity = None
    if ds is not None:
        faces = ds.split(split).images
        if onnx_input == "faces":
            parity = check_faces_parity(model, onnx_bytes(model, "faces"), faces, split)
        else:
            parity = check_parity(model, to_onnx_backend(model), faces, split, method)
        if not parity.ok:
            raise ValueError(
                f"ONNX Runtime differs from torch on {split} ({method}): max |score difference| "
                f"{parity.max_score_difference:.2e} (limit {MAX_SCORE_DIFFERENCE:g}), "
                f"{100 * parity.same_predictions:.2f} % identical predictions (need "
                f"{100 * MIN_SAME_PREDICTIONS:g} %); nothing written"
            )
        model.meta.card["onnx_check"] = asdict(parity)
    model.meta.config = public_config(model.meta.config)
    save_onnx(model, out, onnx_input)  # with the card, check included
    return parity


def _load_once(data: str | os.PathLike | None):
    """The data set a workflow checks with (read once, for every use), or None."""
    if not data:
        return None
    from ..data.fer2013 import load_fer2013

    return load_fer2013(data)


def _fit_missing_temperature(model, ds) -> None:
    """A model trained before temperatures were fitted gets one from the validation part of
    ``ds``'s Training (the faces it was selected on), when data is given."""
    if model.meta.temperature is not None or ds is None:
        return
    from ..fermodel.temperature import fit_on_validation

    model.meta.temperature = fit_on_validation(model, ds)


def _measured(sha256: str, summary: dict | None) -> dict[tuple[str, str], float]:
    """fp32 accuracies a reproduce summary measured on exactly these weights (same SHA-256),
    computed in fp32: a result that records its precision says so, an older one counts when
    its machine had no bf16 instructions (so auto was fp32)."""
    if not summary or summary.get("model_sha256") != sha256:
        return {}
    fp32_machine = "no bf16" in summary.get("machine", "")
    return {
        (r["split"], r["method"]): r["accuracy"]
        for r in summary.get("results", [])
        if r.get("precision", "fp32" if fp32_machine else None) == "fp32"
    }


def _compare(model, ds, split: str, method: str, measured: dict | None = None) -> PrecisionCheck:
    """fp32 against fp16-rounded weights on one split; fp32 from ``measured`` when it has it
    (an Eval2 pass of BKVGG12 is about an hour on 2 CPU cores)."""
    import copy

    half = copy.deepcopy(model)
    for p in half.net.parameters():  # round-trip through fp16, compute in fp32 as loading does
        p.data = p.data.half().float()
    fp32 = (measured or {}).get((split, method))
    return check_precision(model, half, "fp16", ds, split, method, fp32)


def check_precision(
    model,
    other,
    precision: str,
    ds,
    split: str,
    method: str,
    fp32: float | None = None,
    progress: bool = False,
) -> PrecisionCheck:
    """Score the fp32 ``model`` and its lower-precision copy ``other`` on the same faces, both
    computing in fp32 (bf16 autocast would blur the rounding measured with its own); ``fp32``
    when it was measured already (an Eval2 pass of BKVGG12 is about an hour on 2 CPU cores)."""
    from ..evaluation.evaluate import evaluate

    ds.split(split)  # a clear error before any scoring
    kw = dict(progress=progress, precision="fp32")
    if fp32 is None:
        fp32 = evaluate(model, ds, [split], [method], **kw)[0].accuracy
    acc = evaluate(other, ds, [split], [method], **kw)[0].accuracy
    return PrecisionCheck(split, method, precision, fp32, acc)


def quantize_model(
    model_path: str | os.PathLike | None,
    data: str | os.PathLike,
    faces: int = 2048,
    split: str | None = "PublicTest",
    method: str = "center",
    tolerance: float = 0.5,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Path, Int8Calibration]:
    """Calibrate on ``faces`` random Training faces of ``data``, check int8 against fp32 on
    ``split`` (None: no check) and write the calibration beside the weights.

    Nothing is written when int8 scores more than ``tolerance`` points below fp32.
    """
    from ..data.fer2013 import TRAIN_SPLIT, load_fer2013
    from ..fermodel.int8 import calibrate, quantize

    if faces < 1:
        raise ValueError("--faces must be at least 1")
    read = read_model_file(model_path)  # the file's one opening (ModelFileError if none)
    model, path = read.model, read.path
    ds = load_fer2013(data)
    train = ds.split(TRAIN_SPLIT)
    pick = np.random.default_rng(seed).choice(len(train), min(faces, len(train)), replace=False)
    ranges = calibrate(model, train.images[np.sort(pick)])
    check: dict = {}
    if split is not None:
        c = check_precision(
            model, quantize(model, ranges), "int8", ds, split, method, progress=progress
        )
        if c.points_lost > tolerance:
            raise CalibrationError(
                f"int8 scores {100 * c.other:.2f} % against fp32's {100 * c.fp32:.2f} % on "
                f"{split} ({method}): more than {tolerance} points lower; no calibration written"
            )
        check = c.to_dict()
    cal = Int8Calibration(
        model_sha256=read.sha256,
        ranges=ranges,
        faces=len(pick),
        data=f"{Path(data).name}, {len(pick)} random Training faces (seed {seed}), centre crops",
        check=check,
    )
    out = calibration_path(path)
    cal.save(out)
    return out, cal
