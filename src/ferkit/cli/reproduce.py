"""`ferkit reproduce`: run the paper's experiments and regenerate REPRODUCTION.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..argtypes import (
    DATA_HELP,
    POSITIVE,
    POSITIVE_INT,
    add_threads_option,
)
from ..training.config import SCHEDULES
from .options import UsageError

NAME = "reproduce"
HELP = "run the paper's experiments and regenerate REPRODUCTION.md"
DESCRIPTION = None


def add_arguments(sp: argparse.ArgumentParser) -> None:
    from ..reproduce.catalogue import EXPERIMENTS, FAST_EXPERIMENTS, PROXY_EXPERIMENTS, RECIPES

    fast = dict.fromkeys(e.name for e in FAST_EXPERIMENTS if e.table == "fast")
    sp.description = (
        "Train and evaluate every model of Tables IV-IX (skipping finished ones, resuming "
        "interrupted ones), write one summary JSON per experiment and regenerate REPRODUCTION.md "
        "from the summaries. Experiments: "
        + ", ".join(e.name for e in EXPERIMENTS)
        + ". The same rows with the fast procedure, 25 epochs (run when named; bkvgg12-svm's is "
        "the recipe bkvgg12-svm-fast): "
        + ", ".join(fast)
        + ". Recipes for short budgets (run when named): "
        + ", ".join(e.name for e in RECIPES)
        + ". The lever study's proxy runs (BKVGG12 + SVM, 10 epochs, validation only; run "
        "when named, with --threads 1): " + ", ".join(e.name for e in PROXY_EXPERIMENTS) + "."
    )
    sp.add_argument("--data", help=DATA_HELP)
    sp.add_argument("--out", help="folder for the runs (figures go beside the summaries)")
    sp.add_argument(
        "--experiments", nargs="+", metavar="NAME", help="which (default: all the paper's)"
    )
    sp.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: regenerate the report and the pictures drawn from the summaries "
        "(after changing ferkit, or when a run started on older code wrote the report)",
    )
    sp.add_argument(
        "--epochs",
        type=POSITIVE_INT,
        default=60,
        help="training budget per experiment (a recipe that varies the epochs keeps its own)",
    )
    sp.add_argument(
        "--schedule",
        default="onecycle",
        choices=SCHEDULES,
        help="learning-rate schedule of every experiment that does not set its own (default "
        "onecycle: a fixed budget suits --epochs)",
    )
    sp.add_argument(
        "--lr",
        type=POSITIVE,
        default=0.01,
        help="(peak) learning rate (a recipe that varies it keeps its own)",
    )
    add_threads_option(sp)
    sp.add_argument(
        "--by-view",
        action="store_true",
        help="re-run the Eval2 of finished experiments whose summary lacks its view-by-view "
        "breakdown (as long as their first Eval2); finished experiments are not trained on, "
        "whatever --epochs says",
    )
    sp.add_argument("--summaries", default="reproduction", help="folder of the summary JSON files")
    sp.add_argument("--report", default="REPRODUCTION.md", help="the report to regenerate")


def run(args: argparse.Namespace) -> int:
    from ..reproduce import Budget, reproduce, write_report, write_summary_figures

    if args.report_only:
        write_summary_figures(Path(args.summaries))
        text = write_report(Path(args.summaries), Path(args.report))
    elif not (args.data and args.out):
        raise UsageError("reproduce needs --data PATH and --out DIR (or --report-only)")
    else:
        budget = Budget(
            epochs=args.epochs, schedule=args.schedule, lr=args.lr, threads=args.threads
        )
        text = reproduce(
            args.data, args.out, args.experiments, budget, args.summaries, args.report, args.by_view
        )
    print(f"ferkit: wrote {args.report} ({len(text.splitlines())} lines)", file=sys.stderr)
    return 0
