"""Running the catalogue: train (or resume, or skip) each experiment as an ordinary resumable
``ferkit train`` run, evaluate the tests its summary lacks, write the summary, then the report."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..atomic import atomic_write
from .catalogue import EXPERIMENTS, Experiment, experiment, recorded_tests
from .pictures import write_figures
from .report import write_report


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

    from ..training.loop import train
    from ..training.run_folder import RunFolder

    budget = dataclasses.replace(
        budget, **{k: getattr(exp, k) for k in OWN if getattr(exp, k) is not None}
    )
    threads = budget.threads or torch.get_num_threads()
    torch.set_num_threads(threads)  # for evaluating too, finished experiments' included
    summary_path = summaries / f"{exp.name}.json"
    run = out / "runs" / exp.name
    folder = RunFolder(run)
    if summary_path.exists():
        done = json.loads(summary_path.read_text())
        if by_view or done.get("budget", {}).get("epochs") == budget.epochs:
            return _complete(done, exp, run, data, summary_path, by_view)
    cfg = train_config(exp, budget, data, run, quiet)
    t0 = time.perf_counter()
    if folder.checkpoint.exists():
        cfg = folder.config()  # what trained it, as it began
        cfg.epochs, cfg.data, cfg.out = budget.epochs, str(data), str(run)
        result = train(cfg, resume=True)
    else:
        result = train(cfg)
    torch.set_num_threads(threads)  # a resumed run may have set its own
    seconds = folder.wall_seconds() or (time.perf_counter() - t0)
    summary = _summary(exp, budget, result, seconds, folder, cfg)
    return _complete(summary, exp, run, data, summary_path, by_view)


#: What a recipe may set itself, over the budget of the paper's rows.
OWN = ("epochs", "lr", "weight_decay", "schedule")


def train_config(exp: Experiment, budget: Budget, data: str, run: Path, quiet: bool):
    """The ``TrainConfig`` of an experiment: what it says of its model, its own options, and
    the budget (with the experiment's own epochs, rate, decay and schedule) for the rest."""
    from ..training.config import TrainConfig

    trained = {f.name for f in dataclasses.fields(TrainConfig)} & {
        f.name for f in dataclasses.fields(Experiment)
    }
    cfg = TrainConfig(
        data=str(data),
        out=str(run),
        quiet=quiet,
        nesterov=budget.nesterov,
        threads=budget.threads,
        **{k: getattr(exp, k) for k in sorted(trained - set(OWN))},
        **{k: getattr(budget, k) for k in OWN},
    )
    options = dict(exp.options)
    if options.get("distill") is not None:
        options["distill"] = str(_teacher_file(exp, run.parent.parent / options["distill"]))
    return dataclasses.replace(cfg, **options)


def _teacher_file(exp: Experiment, path: Path) -> Path:
    """An experiment's teacher file under reproduce's --out, which must have been made first."""
    from ..userfiles import UserPathError, require_file

    try:
        return require_file(path)
    except UserPathError as e:
        raise UserPathError(
            f"{e}: the teacher file of {exp.name}; make it first with `ferkit teach` "
            "(REPRODUCTION.md gives the command)"
        ) from None


def _summary(exp: Experiment, budget: Budget, result, seconds: float, folder, cfg) -> dict:
    """A trained experiment's summary, before its tests."""
    from ..device import machine_description
    from ..fermodel.files import file_sha256, model_file
    from ..training.config import command_line

    return {
        "experiment": exp.name,
        "table": exp.table,
        "arch": exp.arch,
        "loss": exp.loss,
        "augment": exp.augment,
        "augment_strength": cfg.augment_strength,
        "batch_size": cfg.batch_size,
        "budget": dataclasses.asdict(budget),
        "epochs_done": result.epochs_done,
        "best_epoch": result.best_epoch,
        "val_acc": result.best_val_acc,
        "train_seconds": round(seconds, 1),
        "curve": folder.curve(),
        "model_sha256": file_sha256(model_file(folder.path)),
        "results": [],
        "command": command_line(cfg),
        "machine": machine_description(),
        "paper": {k: list(v) for k, v in exp.paper.items()},
    }


def _complete(
    summary: dict, exp: Experiment, run: Path, data: str, path: Path, by_view: bool = False
) -> dict:
    """Evaluate the tests ``summary`` lacks (all of them for a fresh run; the cheap ones for a
    summary from before they were recorded) and write it; left as it is when the run's weights
    are gone or are no longer the ones it describes."""
    from ..data.fer2013 import load_fer2013
    from ..evaluation.evaluate import evaluate
    from ..fermodel.files import file_sha256, load_model, model_file

    have = {
        r["method"]
        for r in summary["results"]
        if not (by_view and r["method"] == "eval2" and not r.get("by_view"))
    }
    missing = [m for m in recorded_tests(exp) if m not in have]
    if not missing:  # the usual rerun: no need to hash the weights
        if not path.exists():  # a run judged without tests (a proxy) is summarised as trained
            _write_summary(path, summary)
        return summary
    try:
        current = file_sha256(model_file(run))
    except FileNotFoundError:
        return _left_as_it_is(summary, exp, path, missing, f"its run {run} has no weights")
    if summary.get("model_sha256") != current:  # not about these weights any more
        return _left_as_it_is(
            summary, exp, path, missing, f"the weights in {run} are not the ones it describes"
        )
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


def _left_as_it_is(
    summary: dict, exp: Experiment, path: Path, missing: list[str], why: str
) -> dict:
    """Say why a summary lacking some of its tests is not completed (silence looked like done)."""
    print(
        f"ferkit reproduce: {exp.name}: {path} lacks {', '.join(missing)} but {why}; "
        f"it stays as it is (move it aside to train the experiment again)",
        file=sys.stderr,
    )
    return summary


def _write_summary(path: Path, summary: dict) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(summary, fh, indent=1)


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
