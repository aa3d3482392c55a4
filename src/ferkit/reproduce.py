"""``ferkit reproduce``: every training and evaluation behind the paper's Tables III-IX, each
summarised in a small JSON file, and ``REPRODUCTION.md`` regenerated from those summaries.

Finished experiments are skipped, interrupted ones resumed (their runs are ordinary resumable
``ferkit train`` runs), so the command can be re-run until everything is done.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import atomic_write
from .labels import LABELS


@dataclass(frozen=True)
class Experiment:
    """One trained model of the paper and how it is tested; ``paper`` = (public %, private %).

    A recipe experiment (``base`` set) changes one thing of the paper's experiment ``base``, to
    measure what gets a short budget further; it has no figure of the paper.
    """

    name: str
    table: str
    arch: str
    loss: str
    augment: bool
    methods: tuple[str, ...]
    paper: dict[str, tuple[float, float]]  # method -> (public, private)
    augment_strength: float = 1.0  # rotation/rescale ranges x this (train --augment-strength)
    batch_size: int = 256  # the paper's (train --batch-size)
    epochs: int | None = None  # a recipe's own training length (else reproduce --epochs)
    lr: float | None = None  # a recipe's own (peak) learning rate (else reproduce --lr)
    weight_decay: float | None = None  # a recipe's own weight decay (else the paper's)
    schedule: str | None = None  # a recipe's own learning-rate schedule (else reproduce's)
    # the fast procedure's levers (train --norm-layers, --optimizer, --ema, --head-init)
    norm_layers: str = "none"
    optimizer: str = "sgd"
    ema: float = 0.0
    head_init: str = "paper"
    base: str | None = None
    change: str = ""  # what differs from ``base``, in words


EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment(
        "bkstart-ce-noaug", "IV", "bkstart", "ce", False, ("eval1",), {"eval1": (61.0, 60.6)}
    ),
    Experiment(
        "bkstart-ce",
        "IV/V/VI",
        "bkstart",
        "ce",
        True,
        ("eval1", "eval2"),
        {"eval1": (68.3, 69.5), "eval2": (69.2, 70.4)},
    ),
    Experiment(
        "bkvgg8-ce",
        "V/VI",
        "bkvgg8",
        "ce",
        True,
        ("eval1", "eval2"),
        {"eval1": (66.4, 68.2), "eval2": (67.6, 69.1)},
    ),
    Experiment(
        "bkstart-svm", "VI/VII", "bkstart", "svm", True, ("eval2",), {"eval2": (69.7, 70.9)}
    ),
    Experiment("bkvgg8-svm", "VI/VII", "bkvgg8", "svm", True, ("eval2",), {"eval2": (68.7, 70.2)}),
    Experiment("bkvgg10-svm", "VII", "bkvgg10", "svm", True, ("eval2",), {"eval2": (69.5, 70.4)}),
    Experiment(
        "bkvgg12-svm",
        "VII/IX",
        "bkvgg12",
        "svm",
        True,
        ("center", "eval1", "eval2"),
        {"eval2": (71.0, 71.9)},
    ),
    Experiment("bkvgg14-svm", "VII", "bkvgg14", "svm", True, ("eval2",), {"eval2": (70.6, 71.4)}),
)
#: The fast procedure (issue: the paper's networks trained in hours): BatchNorm folded into the
#: saved network, AdamW, a moving average of the weights; the paper's loss, augmentation, batch.
FAST = dict(
    norm_layers="bn", optimizer="adamw", lr=0.001, weight_decay=0.05, ema=0.998, head_init="zero"
)
FAST_CHANGE = (
    "fast procedure: BatchNorm after every convolution and hidden FC layer (folded into the "
    "saved network), AdamW lr 0.001 wd 0.05, 1-epoch warm-up then cosine, weight average 0.998, "
    "output layer started at zero"
)
_HALF_AUGMENTATION = "rotation +-22.5 deg, rescaling 45-51 px (half the paper's ranges)"
#: The fast procedure on BKVGG12 over 25 epochs (a recipe of its own, and the base of longer ones).
FAST_BKVGG12 = Experiment(
    "bkvgg12-svm-fast",
    "recipe",
    "bkvgg12",
    "svm",
    True,
    ("center", "eval1", "eval2"),
    {},
    epochs=25,
    schedule="cosine",
    base="bkvgg12-svm",
    change=FAST_CHANGE,
    **FAST,
)
#: Variations on the paper's recipe for short budgets (run only when named).
RECIPES: tuple[Experiment, ...] = (
    Experiment(
        "bkstart-svm-aug0.5",
        "recipe",
        "bkstart",
        "svm",
        True,
        ("eval2",),
        {},
        augment_strength=0.5,
        base="bkstart-svm",
        change=_HALF_AUGMENTATION,
    ),
    Experiment(
        "bkvgg12-svm-aug0.5",
        "recipe",
        "bkvgg12",
        "svm",
        True,
        ("center", "eval1", "eval2"),
        {},
        augment_strength=0.5,
        base="bkvgg12-svm",
        change=_HALF_AUGMENTATION,
    ),
    Experiment(
        "bkstart-svm-b64",
        "recipe",
        "bkstart",
        "svm",
        True,
        ("eval2",),
        {},
        batch_size=64,
        base="bkstart-svm",
        change="batch 64: four times the updates per epoch, same peak learning rate",
    ),
    Experiment(
        "bkstart-svm-e80",
        "recipe",
        "bkstart",
        "svm",
        True,
        ("eval2",),
        {},
        epochs=80,
        base="bkstart-svm",
        change="80 epochs: twice the base's one-cycle schedule, stretched",
    ),
    Experiment(
        "bkstart-svm-lr0.02",
        "recipe",
        "bkstart",
        "svm",
        True,
        ("eval2",),
        {},
        lr=0.02,
        base="bkstart-svm",
        change="peak learning rate 0.02: twice the base's",
    ),
    Experiment(
        "bkstart-svm-wd1e-4",
        "recipe",
        "bkstart",
        "svm",
        True,
        ("eval2",),
        {},
        weight_decay=1e-4,
        base="bkstart-svm",
        change="weight decay 0.0001: a fifth of the paper's",
    ),
    Experiment(
        "bkstart-svm-plateau",
        "recipe",
        "bkstart",
        "svm",
        True,
        ("eval2",),
        {},
        schedule="plateau",
        base="bkstart-svm",
        change="the paper's schedule: 0.01 (after a 1-epoch warm-up) / 10 each time the "
        "training loss stalls 5 epochs",
    ),
    Experiment(
        "bkstart-svm-cosine",
        "recipe",
        "bkstart",
        "svm",
        True,
        ("eval2",),
        {},
        schedule="cosine",
        base="bkstart-svm",
        change="cosine decay from 0.01 after a 1-epoch warm-up (one-cycle's slow 25 % ramp cut)",
    ),
    FAST_BKVGG12,
    dataclasses.replace(
        FAST_BKVGG12,
        name="bkvgg12-svm-fast-e50",
        epochs=50,
        base="bkvgg12-svm-fast",
        change="50 epochs: twice the fast recipe's cosine schedule, stretched",
    ),
)
#: Tests every summary records besides its table's: cheap (1 and 10 views a face against
#: Eval2's 648), so that any two runs, recipes and their bases included, compare on each test.
CHEAP_METHODS = ("center", "eval1")
#: The pictures' folder, inside the summaries folder (committed with them).
FIGURES = "figures"
#: Every run's validation accuracy against epochs and hours, in that folder.
CURVES_FIGURE = "validation-curves.png"
#: Table IX (BKVGG12, PrivateTest, % of each true class).
PAPER_TABLE_IX = dict(zip(LABELS, (63.14, 69.09, 51.89, 89.76, 61.78, 82.45, 73.16), strict=True))
PAPER_PARAMS = {
    "bkstart": "7.17 M",
    "bkvgg8": "3.40 M",
    "bkvgg10": "4.14 M",
    "bkvgg12": "4.19 M",
    "bkvgg14": "4.92 M",
}


def recorded_tests(exp: Experiment) -> tuple[str, ...]:
    """Every test an experiment's summary records: the cheap ones, then its table's."""
    return tuple(dict.fromkeys(CHEAP_METHODS + exp.methods))


def experiment(name: str) -> Experiment:
    for e in EXPERIMENTS + RECIPES:
        if e.name == name:
            return e
    known = ", ".join(e.name for e in EXPERIMENTS + RECIPES)
    raise ValueError(f"unknown experiment {name!r} (known: {known})")


@dataclass
class Budget:
    """The training recipe every experiment gets (the BKVGG12 run may be given more)."""

    epochs: int = 60
    schedule: str = "onecycle"
    lr: float = 0.01
    weight_decay: float = 5e-4
    nesterov: bool = True
    threads: int | None = None


def run_experiment(
    exp: Experiment,
    data: str,
    out: Path,
    summaries: Path,
    budget: Budget,
    quiet: bool = True,
    by_view: bool = False,
) -> dict:
    """Train (or resume, or skip) one experiment, evaluate it, write its summary JSON.

    ``quiet`` trains with a JSON line per epoch instead of a progress bar (for logs);
    evaluation shows its bar either way. What a recipe sets itself (epochs, learning rate,
    weight decay, schedule) overrides ``budget``. ``by_view`` re-runs an Eval2 recorded without its
    view-by-view breakdown (as long as the first time) and never trains a finished experiment
    on, whatever ``budget.epochs`` says.
    """
    import torch

    from .checkpoint import file_sha256, model_file
    from .train import load_run_config, train
    from .train_config import TrainConfig, command_line

    own = ("epochs", "lr", "weight_decay", "schedule")
    budget = dataclasses.replace(
        budget, **{k: getattr(exp, k) for k in own if getattr(exp, k) is not None}
    )
    threads = budget.threads or torch.get_num_threads()
    torch.set_num_threads(threads)  # for evaluating too, finished experiments' included
    summary_path = summaries / f"{exp.name}.json"
    run = out / "runs" / exp.name
    if summary_path.exists():
        done = json.loads(summary_path.read_text())
        if by_view or done.get("budget", {}).get("epochs") == budget.epochs:
            old = done.get("curve") or [[]]
            if len(old[0]) < 4 and (curve := _curve(run)):  # summaries from before 4-column curves
                done["curve"] = curve
                _write_summary(summary_path, done)
            return _complete(done, exp, run, data, summary_path, by_view)
    cfg = TrainConfig(
        data=str(data),
        out=str(run),
        arch=exp.arch,
        loss=exp.loss,
        augment=exp.augment,
        augment_strength=exp.augment_strength,
        batch_size=exp.batch_size,
        schedule=budget.schedule,
        epochs=budget.epochs,
        lr=budget.lr,
        weight_decay=budget.weight_decay,
        nesterov=budget.nesterov,
        threads=budget.threads,
        quiet=quiet,
        norm_layers=exp.norm_layers,
        optimizer=exp.optimizer,
        ema=exp.ema,
        head_init=exp.head_init,
    )
    command = command_line(cfg)
    t0 = time.perf_counter()
    if (run / "checkpoint.pt").exists():
        stored = load_run_config(run)
        stored.epochs, stored.data, stored.out = budget.epochs, str(data), str(run)
        result = train(stored, resume=True)
    else:
        result = train(cfg)
    torch.set_num_threads(threads)  # a resumed run may have set its own
    train_seconds = _wall_seconds(run) or (time.perf_counter() - t0)
    model_sha = file_sha256(model_file(run))
    summary = {
        "experiment": exp.name,
        "table": exp.table,
        "arch": exp.arch,
        "loss": exp.loss,
        "augment": exp.augment,
        "augment_strength": exp.augment_strength,
        "batch_size": exp.batch_size,
        "budget": dataclasses.asdict(budget),
        "epochs_done": result.epochs_done,
        "best_epoch": result.best_epoch,
        "val_acc": result.best_val_acc,
        "train_seconds": round(train_seconds, 1),
        "curve": _curve(run),
        "model_sha256": model_sha,
        "results": [],
        "command": command,
        "machine": machine_description(),
        "paper": {k: list(v) for k, v in exp.paper.items()},
    }
    return _complete(summary, exp, run, data, summary_path, by_view)


def _complete(
    summary: dict, exp: Experiment, run: Path, data: str, path: Path, by_view: bool = False
) -> dict:
    """Evaluate the tests ``summary`` lacks (all of them for a fresh run; the cheap ones for a
    summary from before they were recorded) and write it; left as it is when the run's weights
    are gone or are no longer the ones it describes."""
    from .checkpoint import file_sha256, load_model, model_file
    from .data import load_fer2013
    from .evaluate import evaluate

    have = {
        r["method"]
        for r in summary["results"]
        if not (by_view and r["method"] == "eval2" and not r.get("by_view"))
    }
    missing = [m for m in recorded_tests(exp) if m not in have]
    if not missing:  # the usual rerun: no need to hash the weights
        return summary
    try:
        current = file_sha256(model_file(run))
    except FileNotFoundError:
        return summary
    if not _describes(summary, current, run):
        return summary
    summary["model_sha256"] = current
    ds = load_fer2013(data)
    model = load_model(run)
    partial = run / "eval-partial"  # Eval2 of a deep network outlasts a session: resumable
    order = {m: i for i, m in enumerate(recorded_tests(exp))}
    for method in missing:  # cheapest first, each written as it is done
        results = evaluate(
            model,
            ds,
            ds.test_splits,
            [method],
            progress=True,  # even in a log: Eval2 runs for an hour or more
            resume_dir=partial,
            model_id=current,
            by_view=True,  # free: which of Eval2's views help this model, and which hurt
        )
        kept = [r for r in summary["results"] if r["method"] != method]
        summary["results"] = kept + [r.to_dict() for r in results]
        summary["results"].sort(key=lambda r: (r["split"], order.get(r["method"], len(order))))
        _write_summary(path, summary)
    shutil.rmtree(partial, ignore_errors=True)
    return summary


def _describes(summary: dict, sha: str, run: Path) -> bool:
    """Whether ``summary`` is about the weights with this SHA-256 in ``run``: by the recorded
    hash, or (summaries from before hashes) by the run's epochs and best validation epoch."""
    if "model_sha256" in summary:
        return summary["model_sha256"] == sha
    epochs = _metrics(run)
    if not epochs:
        return False
    best = max(epochs, key=lambda m: m["val_acc"])
    return (len(epochs), best["epoch"], best["val_acc"]) == (
        summary.get("epochs_done"),
        summary.get("best_epoch"),
        summary.get("val_acc"),
    )


def _write_summary(path: Path, summary: dict) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(summary, fh, indent=1)


def _metrics(run: Path) -> list[dict]:
    """The run's metrics.jsonl, one dict per epoch (none if the run has not started)."""
    p = run / "metrics.jsonl"
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def _curve(run: Path) -> list[list[float]]:
    """[epoch, validation accuracy %, wall hours so far, training accuracy %] for every epoch
    of a run (training accuracy as measured during the epoch: dropout on, batches augmented
    when the run augments)."""
    rows, hours = [], 0.0
    for m in _metrics(run):
        hours += m["seconds"] / 3600
        row = [m["epoch"], round(100 * m["val_acc"], 2), round(hours, 3)]
        rows.append(row + ([round(100 * m["train_acc"], 2)] if "train_acc" in m else []))
    return rows


def _wall_seconds(run: Path) -> float | None:
    epochs = _metrics(run)
    return sum(m["seconds"] for m in epochs) if epochs else None


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"{os.cpu_count()}-core {cpu} CPU, {torch.get_num_threads()} threads (torch {torch.__version__})"


# --------------------------------------------------------------------------- the report


def _acc(summary: dict, split: str, method: str) -> float | None:
    for r in summary["results"]:
        if r["split"] == split and r["method"] == method:
            return 100 * r["accuracy"]
    return None


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def render_report(summaries: list[dict], figures: str = f"reproduction/{FIGURES}") -> str:
    """``REPRODUCTION.md`` from the experiment summaries (and nothing else); ``figures`` is the
    pictures' folder as seen from the report."""
    from .models import list_models, model_info

    by_name = {s["experiment"]: s for s in summaries}
    lines = [
        "# Reproducing Sang, Dat & Thuan with ferkit",
        "",
        "Generated by `ferkit reproduce` from the summaries in `reproduction/`; do not edit by hand.",
        "Every model is selected on a stratified 10 % of Training, never on a test split. The",
        "development data has no PrivateTest split (it is withheld), so the private column stays",
        "empty until the same command is run on a full `fer2013.csv`.",
        "",
        "## Table III: parameters",
        "",
        "| network | ferkit | paper |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {model_info(n).params:,} | {PAPER_PARAMS[n]} |" for n in list_models()]
    lines += [
        "",
        "## Tables IV-VII: accuracy (%)",
        "",
        "| experiment | table | test | public: paper | public: ferkit | private: paper | "
        "private: ferkit | epochs | train time | machine |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for exp in EXPERIMENTS:
        s = by_name.get(exp.name)
        for method in exp.methods:
            paper = exp.paper.get(method, (None, None))
            if s is None:
                lines.append(
                    f"| {exp.name} | {exp.table} | {method} | {_fmt(paper[0])} | not run | "
                    f"{_fmt(paper[1])} | not run | - | - | - |"
                )
                continue
            lines.append(
                f"| {exp.name} | {exp.table} | {method} | {_fmt(paper[0])} | "
                f"{_fmt(_acc(s, 'PublicTest', method))} | {_fmt(paper[1])} | "
                f"{_fmt(_acc(s, 'PrivateTest', method))} | {s['epochs_done']} | "
                f"{s['train_seconds'] / 60:.0f} min | {s['machine']} |"
            )
    lines += _all_tests_section(summaries)
    lines += _by_view_section(summaries)
    lines += _shortfalls(summaries)
    lines += _recipe_section(by_name)
    lines += _curve_section(summaries, figures)
    lines += ["", "Commands (training; evaluation is `ferkit evaluate --method eval1|eval2`):", ""]
    lines += [f"- {s['experiment']}: `{s['command']}`" for s in summaries]
    s12 = by_name.get("bkvgg12-svm")
    lines += ["", "## Table IX: BKVGG12 + SVM, Eval2, % of each true class", ""]
    if s12 is None:
        lines.append("Not run yet.")
    else:
        r = _table_ix_result(s12)
        split = r["split"]
        lines += [
            f"Measured on {split}"
            + (
                " (the paper's is PrivateTest: not like for like)."
                if split == "PublicTest"
                else "."
            ),
            "",
            "| class | paper (PrivateTest) | ferkit |",
            "|---|---|---|",
        ]
        lines += [
            f"| {lab} | {PAPER_TABLE_IX[lab]:.2f} | {100 * r['per_class_accuracy'][lab]:.2f} |"
            for lab in LABELS
        ]
        lines += ["", f"![Table IX as a confusion matrix]({figures}/table9-confusion.png)"]
    if summaries:
        lines += [
            "",
            "## Figures 1 and 2",
            "",
            f"![Fig. 1: augmentation]({figures}/fig1-augmentation.png)",
        ]
    if s12 is not None:
        lines += ["", f"![Fig. 2: the BKVGG12 + SVM run]({figures}/fig2-bkvgg12-curves.png)"]
    return "\n".join(lines) + "\n"


def _table_ix_result(s12: dict) -> dict:
    """The BKVGG12 + SVM Eval2 result Table IX shows: PrivateTest when measured, else PublicTest."""
    split = "PrivateTest" if _acc(s12, "PrivateTest", "eval2") is not None else "PublicTest"
    return next(x for x in s12["results"] if x["split"] == split and x["method"] == "eval2")


def load_summaries(summaries_dir: Path) -> list[dict]:
    """Every summary JSON in ``summaries_dir``, in name order (the report's row order)."""
    return [json.loads(p.read_text()) for p in sorted(summaries_dir.glob("*.json"))]


def write_figures(data: str, out: Path, summaries_dir: Path) -> None:
    """Fig. 1 (augmentation grid), Fig. 2 (the BKVGG12 run's curves, when run here), Table
    IX's picture and every run's validation curve, beside the summaries, where the report links
    them."""
    from .data import preview_faces
    from .figures import augment_preview

    figs = summaries_dir / FIGURES
    figs.mkdir(parents=True, exist_ok=True)
    faces = preview_faces(data)
    augment_preview(faces.images, faces.labels, figs / "fig1-augmentation.png")
    curves = out / "runs" / "bkvgg12-svm" / "curves.png"
    if curves.exists():
        shutil.copyfile(curves, figs / "fig2-bkvgg12-curves.png")
    write_summary_figures(summaries_dir)


def write_summary_figures(summaries_dir: Path) -> None:
    """The pictures drawn from the summaries alone: Table IX's and every run's validation
    curve (what ``ferkit reproduce --report-only`` redraws)."""
    from .evaluate import EvalResult
    from .figures import confusion_matrices, validation_curves

    figs = summaries_dir / FIGURES
    figs.mkdir(parents=True, exist_ok=True)
    summaries = load_summaries(summaries_dir)
    s12 = next((s for s in summaries if s.get("experiment") == "bkvgg12-svm"), None)
    if s12 is not None:
        result = EvalResult(**_table_ix_result(s12))
        confusion_matrices([result], figs / "table9-confusion.png")
    if any(s.get("curve") for s in summaries):
        validation_curves(summaries, figs / CURVES_FIGURE)


def _all_tests_section(summaries: list[dict]) -> list[str]:
    """Every measured model on every test it was scored with: what the extra views buy."""
    tests = ("center", "eval1", "eval2")
    rows = [
        f"| {s['experiment']} | {s['epochs_done']} | "
        + " | ".join(_fmt(_acc(s, "PublicTest", m)) for m in tests)
        + " |"
        for s in summaries
        if s.get("results")
    ]
    if not rows:
        return []
    return [
        "",
        "## Each model on each test (PublicTest, %)",
        "",
        "Centre crop (1 view), Eval1 (10 views) and Eval2 (648 views) for every model, whatever",
        "test its row in the paper uses.",
        "",
        "| experiment | epochs | center | eval1 | eval2 |",
        "|---|---|---|---|---|",
        *rows,
    ]


def _by_view_section(summaries: list[dict]) -> list[str]:
    """Eval2 of each model whose summary has it view by view: the accuracy from the views of
    one rotation, or of one rescaling, alone (``evaluate(by_view=True)``)."""
    measured = []
    for s in summaries:
        for r in s.get("results", []):
            if r["split"] == "PublicTest" and r["method"] == "eval2" and r.get("by_view"):
                measured.append((s, r))
    if not measured:
        return []
    lines = [
        "",
        "## Eval2 view by view (PublicTest, %)",
        "",
        "The accuracy when only the views of one rotation (degrees), or of one rescaling (side,",
        "px), are averaged, beside all 648 (`ferkit evaluate --by-view`): where Eval2 falls",
        "below Eval1, which views pull it down. Summaries from before this breakdown was",
        "recorded are not listed (`ferkit reproduce --by-view` measures it for them).",
    ]
    for group, title in (("angle", "rotation"), ("side", "rescaling")):
        keys = list(dict.fromkeys(k for _, r in measured for k in r["by_view"][group]))
        lines += ["", "| experiment | eval2 | " + " | ".join(f"{title} {k}" for k in keys) + " |"]
        lines.append("|---|---|" + "---|" * len(keys))
        for s, r in measured:
            accs = r["by_view"][group]
            cells = [_fmt(100 * accs[k]) if k in accs else "-" for k in keys]
            lines.append(
                f"| {s['experiment']} | {100 * r['accuracy']:.1f} | " + " | ".join(cells) + " |"
            )
    return lines


def _shortfalls(summaries: list[dict]) -> list[str]:
    """Every measured row more than 1 point below the paper, with what was measured about why."""
    by_name = {s["experiment"]: s for s in summaries}
    out = []
    for exp in EXPERIMENTS:
        s = by_name.get(exp.name)
        for method, (public, _) in exp.paper.items() if s else ():
            got = _acc(s, "PublicTest", method)
            if got is None or got >= public - 1:
                continue
            why = f"after {s['epochs_done']} epochs ({s['train_seconds'] / 3600:.1f} h) against the paper's ~1,400"
            curve = s.get("curve") or []
            if len(curve) > 10:
                best = max(curve, key=lambda c: c[1])
                why += (
                    f"; validation accuracy went {curve[-11][1]:.1f} -> {curve[-1][1]:.1f} over "
                    f"the last 10 epochs, best {best[1]:.1f} at epoch {best[0]:.0f}"
                )
                if len(curve[-1]) > 3:  # how far the model fits what it trains on
                    seen = "augmented batches" if s.get("augment", True) else "its batches"
                    why += f"; training accuracy on {seen}, dropout on, ended at {curve[-1][3]:.1f}"
            out.append(f"- {exp.name}, {method}: {public - got:.1f} points below the paper, {why}.")
    if not out:
        return []
    return ["", "## Where ferkit falls short of the paper, and why", "", *out]


def _recipe_section(by_name: dict[str, dict]) -> list[str]:
    """Each measured recipe beside the paper-recipe run it varies, at their own budgets."""
    rows = []
    for exp in RECIPES:
        s, b = by_name.get(exp.name), by_name.get(exp.base)
        if s is None:
            continue
        cells = []
        for x in (s, b):
            if x is None:
                cells += ["not run"] * 3
                continue
            test = ", ".join(
                f"{m} {a:.1f}"
                for m in recorded_tests(exp)
                if (a := _acc(x, "PublicTest", m)) is not None
            )
            hours = f"{x['train_seconds'] / 3600:.1f} h"
            cells += [f"{x['epochs_done']} ({hours})", f"{100 * x['val_acc']:.1f}", test or "-"]
        rows.append(f"| {exp.name} | {exp.base} | {exp.change} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "",
        "## Recipes for short budgets",
        "",
        "Runs that change one thing of a paper experiment's recipe, to find what reaches the",
        "paper's figures soonest on a small budget (not in the paper; `ferkit reproduce",
        "--experiments NAME`). Epochs with the training's wall time (each summary names its",
        "machine); best validation % on the held-out 10 % of Training; test % on PublicTest.",
        "",
        "| recipe | varies | change | epochs | best validation | test | base: epochs | "
        "base: best validation | base: test |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]


#: Epochs at which the curve table samples each run (and its last epoch).
CURVE_EPOCHS = (5, 10, 20, 40, 60, 80, 100, 120, 160, 200, 300, 400, 600, 800, 1000, 1400)


def _curve_section(summaries: list[dict], figures: str) -> list[str]:
    """Validation accuracy against epochs and hours: where each budget went."""
    with_curves = [s for s in summaries if s.get("curve")]
    if not with_curves:
        return []
    lines = [
        "",
        "## Validation accuracy against epochs and hours",
        "",
        "Accuracy on the 10 % of Training held out for model selection, after each number of",
        "epochs, with the wall-clock hours of training so far on the machine of the table above,",
        "and the training accuracy of that epoch (dropout on, batches augmented where the run",
        "augments): where the two part, more epochs stop paying.",
        "",
        f"![Validation accuracy of every run against epochs and hours]({figures}/{CURVES_FIGURE})",
        "",
        "| experiment | epoch | validation % | training % | hours |",
        "|---|---|---|---|---|",
    ]
    for s in with_curves:
        last = s["curve"][-1][0]
        for epoch, acc, hours, *train in s["curve"]:
            if epoch in CURVE_EPOCHS or epoch == last:
                tr = f"{train[0]:.1f}" if train else "-"
                lines.append(f"| {s['experiment']} | {epoch} | {acc:.1f} | {tr} | {hours:.2f} |")
    return lines


def write_report(summaries_dir: Path, report: Path) -> str:
    """Read every summary JSON in ``summaries_dir`` and (re)write ``report``."""
    summaries = load_summaries(summaries_dir)
    text = render_report(summaries, os.path.relpath(summaries_dir / FIGURES, report.parent))
    with atomic_write(report, "w") as fh:
        fh.write(text)
    return text


def reproduce(
    data: str,
    out: str,
    experiments: list[str] | None,
    budget: Budget,
    summaries: str = "reproduction",
    report: str = "REPRODUCTION.md",
    by_view: bool = False,
) -> str:
    """Run the chosen experiments (default: all), then regenerate the figures and the report;
    ``by_view``: see :func:`run_experiment`."""
    chosen = [experiment(n) for n in experiments] if experiments else list(EXPERIMENTS)
    out_p, sum_p = Path(out), Path(summaries)
    sum_p.mkdir(parents=True, exist_ok=True)
    for exp in chosen:
        print(f"ferkit reproduce: {exp.name}", file=sys.stderr)
        run_experiment(exp, data, out_p, sum_p, budget, not sys.stderr.isatty(), by_view)
    write_figures(data, out_p, sum_p)
    return write_report(sum_p, Path(report))
