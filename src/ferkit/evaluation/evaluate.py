"""Test-time evaluation (III-C-4): accuracy, per-class accuracy and the confusion matrix per
split and view method, and the reports ``ferkit evaluate --out`` writes."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..data.fer2013 import DataError, FerDataset
from ..fermodel.model import FerModel
from ..fermodel.views import METHODS, num_views, view_cells
from ..labels import LABELS


@dataclass
class EvalResult:
    """One (split, method) row of ``report.json``; accuracies are fractions in [0, 1]."""

    split: str
    method: str
    n: int
    views: int
    accuracy: float
    per_class_accuracy: dict[str, float]
    confusion: list[list[int]]  # rows = true class, columns = predicted
    seconds: float
    by_view: dict | None = None  # evaluate(by_view=True): see view_breakdown
    # expected calibration error of the probabilities, plain softmax and at the model's
    # temperature, with their reliability diagrams' bins (see temperature.reliability)
    calibration: dict | None = None
    precision: str = "fp32"  # what the network computed in: fp32, bf16, fp16 (autocast) or int8

    def to_dict(self) -> dict:
        """The ``report.json`` row (``by_view`` and ``calibration`` only when measured)."""
        d = asdict(self)
        for key in ("by_view", "calibration"):
            if d[key] is None:
                del d[key]
        return d


def confusion_matrix(true: np.ndarray, pred: np.ndarray, k: int = len(LABELS)) -> np.ndarray:
    """Counts (k, k): rows the true class, columns the predicted one."""
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def result_from_predictions(
    split: str, method: str, true: np.ndarray, pred: np.ndarray, seconds: float = 0.0
) -> EvalResult:
    """Accuracy, per-class accuracy (% of each true class) and the confusion matrix."""
    cm = confusion_matrix(true, pred)
    rows = cm.sum(1)
    per_class = {
        lab: float(cm[i, i] / rows[i]) if rows[i] else float("nan") for i, lab in enumerate(LABELS)
    }
    return EvalResult(
        split,
        method,
        int(len(true)),
        num_views(method),
        float(np.trace(cm) / max(1, len(true))),
        per_class,
        cm.tolist(),
        seconds,
    )


def calibration_of(model: FerModel, averaged: np.ndarray, labels: np.ndarray) -> dict:
    """ECE and reliability bins of the plain softmax (temperature 1) and of the model's own
    probabilities (at its fitted temperature, when it has one)."""
    from dataclasses import asdict

    import torch

    from ..fermodel.temperature import calibrated, reliability

    scores = torch.as_tensor(averaged)
    plain = reliability(calibrated(scores, model.loss, None), labels)
    fitted = reliability(model.probabilities(scores), labels)
    return {
        "temperature": model.meta.temperature,
        "ece_softmax": plain.ece,
        "ece": fitted.ece,
        "reliability_softmax": asdict(plain),
        "reliability": asdict(fitted),
    }


def evaluate(
    model: FerModel,
    data: FerDataset,
    splits: list[str] | None = None,
    methods: list[str] | None = None,
    progress: bool = True,
    batch: int = 128,
    resume_dir: str | os.PathLike | None = None,
    model_id: str = "",
    by_view: bool = False,
    precision: str = "auto",
) -> list[EvalResult]:
    """Score every requested split with every requested view method.

    ``precision`` is the network's compute precision (``device.autocast_dtype``: auto is bf16
    on CPUs with bf16 instructions, which moves accuracies by ~0.1 point against fp32); each
    result records what was used.

    With ``resume_dir``, scores are saved there every :data:`RESUME_SLICE` images, so an
    interrupted evaluation (Eval2 of a deep network is hours on a CPU) continues where it
    stopped; ``model_id`` (e.g. the weights' SHA-256) ties the saved scores to the model, and
    scores of another model, split or method are recomputed, never mixed in.

    With ``by_view``, Eval1 and Eval2 results also say what each rescaling and rotation adds
    (:func:`view_breakdown`), from the same views at no extra cost.
    """
    from ..device import autocast_dtype

    splits = splits or data.test_splits
    methods = methods or ["center"]
    _check_request(data, splits, methods, resume_dir, model_id)
    selected = [(name, data.split(name)) for name in splits]  # errors before any work
    val_split = model.meta.config.get("val_split")
    dtype = autocast_dtype(model.norm_mean.device, precision)
    computed = model.compute_precision(dtype)  # what each result records
    results = []
    for name, split in selected:
        if name == val_split:
            warnings.warn(
                f"the model was validated (selected) on {name}: its accuracy there is optimistic",
                stacklevel=2,
            )
        for method in methods:
            bar = _bar(len(split), f"{name} {method}", progress)
            cells, keys = view_cells(method) if by_view and method != "center" else (None, ())
            if resume_dir is None:
                t0 = time.perf_counter()
                scores = model.score(split.images, method, batch, dtype, bar and bar.update, cells)
                scores, seconds = scores.cpu().numpy(), time.perf_counter() - t0
            else:
                grouped = "-by-view" if cells is not None else ""
                partial = Path(resume_dir) / f"scores-{name}-{method}{grouped}.npz"
                # scores of another model, length or compute precision are not mixed in
                key = f"{model_id} {name} {method} {len(split)}{grouped} {computed}"
                scores, seconds = _score_resumable(
                    model,
                    split.images,
                    method,
                    batch,
                    dtype,
                    bar and bar.update,
                    cells,
                    partial,
                    key,
                )
            if bar:
                bar.close()
            result = _result(model, name, method, split.labels, scores, seconds, cells, keys)
            result.precision = computed
            results.append(result)
    return results


def _check_request(data: FerDataset, splits, methods, resume_dir, model_id: str) -> None:
    """Refuse, before any work, what cannot be evaluated."""
    if not splits:
        raise DataError(
            data.path,
            None,
            f"nothing to evaluate: no test split (splits present: {', '.join(data.splits)}; "
            "name one with --split)",
        )
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r} (known: {', '.join(METHODS)}, all)")
    if resume_dir is not None and not model_id:
        raise ValueError("resume_dir needs a model_id that identifies the model's weights")


def _result(model, name, method, labels, scores, seconds, cells, keys) -> EvalResult:
    """One split and method's result from its scores (per view cell when ``cells``: then the
    views' average weighs each cell by its size, and the breakdown says what each adds)."""
    breakdown = None
    if cells is not None:  # (N, cells, 7)
        counts = np.bincount(cells.numpy()).astype(np.float32)
        breakdown = view_breakdown(scores, keys, counts, labels)
        scores = (scores * counts[None, :, None]).sum(1) / counts.sum()
    result = result_from_predictions(name, method, labels, scores.argmax(1), seconds)
    result.by_view = breakdown
    result.calibration = calibration_of(model, scores, labels)
    return result


def model_identity(
    model_path: str | os.PathLike | Sequence[str | os.PathLike | None] | None,
    int8: bool,
    backend: str,
) -> str:
    """What ties saved scores to a model (``evaluate --resume``): its weights' SHA-256 (each
    member's, for an ensemble), and the int8 or ONNX form that computes them."""
    from ..fermodel.files import file_sha256, model_file, shipped_model_path

    paths = model_path if isinstance(model_path, list | tuple) else [model_path]
    weights = [model_file(p) if p else shipped_model_path() for p in paths]
    form = ("+int8" if int8 else "") + ("+onnx" if backend == "onnx" else "")
    return "+".join(file_sha256(w) for w in weights) + form


def view_breakdown(
    cell_scores: np.ndarray,
    cells: tuple[tuple[float, float], ...],
    counts: np.ndarray,
    labels: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Accuracy (fractions) when only some of a method's views are averaged: those of one
    rescaling (``side``: 48-54 px), of one rotation (``angle``), or of every rotation up to
    +-a degrees (``max_angle``); ``cell_scores`` (N, cells, 7) are per-cell means."""
    side = np.array([c[0] for c in cells])
    angle = np.array([c[1] for c in cells])

    def accuracy(mask: np.ndarray) -> float:
        weights = (counts * mask)[None, :, None]
        return float(((cell_scores * weights).sum(1).argmax(1) == labels).mean())

    return {
        "side": {f"{s:g}": accuracy(side == s) for s in sorted(set(side))},
        "angle": {f"{a:g}": accuracy(angle == a) for a in sorted(set(angle))},
        "max_angle": {f"{a:g}": accuracy(abs(angle) <= a) for a in sorted(set(abs(angle)))},
    }


RESUME_SLICE = 256  # images scored between saves: ~5 min of BKVGG14 Eval2 on one CPU thread


def _score_resumable(model, images, method, batch, dtype, on_chunk, cells, path: Path, key: str):
    """:meth:`FerModel.score` in slices, each slice's scores saved (atomically) to ``path``."""
    k = len(model.labels)
    shape = (0, k) if cells is None else (0, int(cells.max()) + 1, k)
    done, seconds = np.zeros(shape, np.float32), 0.0
    if path.exists():
        try:
            with np.load(path) as z:
                if str(z["key"]) == key:
                    done, seconds = z["scores"], float(z["seconds"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # damaged: redo
            pass
    if on_chunk is not None and len(done):
        on_chunk(len(done))
    for i in range(len(done), len(images), RESUME_SLICE):
        t0 = time.perf_counter()
        part = model.score(images[i : i + RESUME_SLICE], method, batch, dtype, on_chunk, cells)
        done = np.concatenate([done, part.cpu().numpy().astype(np.float32)])
        seconds += time.perf_counter() - t0
        with atomic_write(path) as fh:
            np.savez(fh, scores=done, seconds=seconds, key=key)
    return done, seconds


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    # into a log file (not a terminal), a few updates a minute rather than ten a second
    every = 0.1 if sys.stderr.isatty() else 30.0
    return tqdm(
        total=total,
        desc=desc,
        unit="img",
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        mininterval=every,
    )


# --------------------------------------------------------------------------- reports


def report_dict(model: FerModel, path, results: list[EvalResult]) -> dict:
    """The ``report.json`` object (docs/CONTRACT.md)."""
    return {
        "model": {
            "arch": model.meta.arch,
            "loss": model.loss,
            "params": model.params,
            "path": _model_path_text(path),
        },
        "results": [r.to_dict() for r in results],
    }


def _model_path_text(path) -> str:
    """The report's model path: "shipped", a path, or an ensemble's paths joined by " + "."""
    paths = path if isinstance(path, list | tuple) else [path]
    return " + ".join(str(p) if p else "shipped" for p in paths)


def report_markdown(report: dict) -> str:
    """The report as tables: summary, then per (split, method) Table IX's form in %."""
    m = report["model"]
    lines = [
        f"# ferkit evaluation: {m['arch']} + {m['loss']}",
        "",
        f"Model: `{m['path']}` ({m['params']:,} parameters)",
        "",
        "| split | method | views | images | accuracy |",
        "|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['split']} | {r['method']} | {r['views']} | {r['n']} | "
            f"{100 * r['accuracy']:.2f} % |"
        )
    for r in report["results"]:
        lines += [
            "",
            f"## {r['split']}, {r['method']}: {100 * r['accuracy']:.2f} %",
            "",
            "Rows: true class; columns: predicted class; % of each true class.",
            "",
            "| true \\ predicted | " + " | ".join(LABELS) + " |",
            "|---|" + "---|" * len(LABELS),
        ]
        cm = np.asarray(r["confusion"], dtype=float)
        rows = cm.sum(1, keepdims=True)
        pct = np.divide(100 * cm, rows, out=np.zeros_like(cm), where=rows > 0)
        for i, lab in enumerate(LABELS):
            cells = [f"**{v:.2f}**" if i == j else f"{v:.2f}" for j, v in enumerate(pct[i])]
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
        lines += _breakdown_markdown(r.get("by_view"))
    return "\n".join(lines) + "\n"


def _breakdown_markdown(by_view: dict | None) -> list[str]:
    """view_breakdown's accuracies as one table per grouping, in %."""
    if not by_view:
        return []
    titles = {
        "side": "views of one rescaling (side, px)",
        "angle": "views of one rotation (degrees)",
        "max_angle": "views rotated by at most +-a degrees",
    }
    lines = []
    for group, accs in by_view.items():
        lines += ["", f"Accuracy from the {titles[group]}:", ""]
        lines += ["| " + " | ".join(accs) + " |", "|" + "---|" * len(accs)]
        lines.append("| " + " | ".join(f"{100 * a:.2f}" for a in accs.values()) + " |")
    return lines


def write_reports(report: dict, results: list[EvalResult], out: str | os.PathLike) -> None:
    """``report.json``, ``report.md``, ``confusion.png`` and ``reliability.png`` in ``out``."""
    from ..figures import confusion_matrices, reliability_diagrams

    out = Path(out)
    with atomic_write(out / "report.json", "w") as fh:
        json.dump(report, fh, indent=1)
    with atomic_write(out / "report.md", "w") as fh:
        fh.write(report_markdown(report))
    confusion_matrices(results, out / "confusion.png")
    if any(r.calibration for r in results):
        reliability_diagrams(results, out / "reliability.png")
