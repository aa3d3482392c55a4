"""``ferkit reproduce``: every training and evaluation behind the paper's Tables III-IX, each
summarised in a small JSON file, and ``REPRODUCTION.md`` regenerated from those summaries.

Its parts: ``catalogue`` (the experiments and the paper's figures: data), ``runner``
(train, resume or skip each, evaluate, summarise), ``verdicts`` (what the summaries say of the
paper's claims), ``report`` and ``lever_table`` (the Markdown) and ``pictures``, all from the
summaries alone. Finished experiments are skipped, interrupted ones resumed, so the
command can be re-run until everything is done.
"""

from .catalogue import (
    CHEAP_METHODS,
    EXPERIMENTS,
    FAST,
    FAST_EXPERIMENTS,
    RECIPES,
    Experiment,
    experiment,
    recorded_tests,
)
from .pictures import write_figures, write_summary_figures
from .report import CURVES_FIGURE, FIGURES, load_summaries, render_report, write_report
from .runner import Budget, reproduce, run_experiment

__all__ = [
    "CHEAP_METHODS",
    "CURVES_FIGURE",
    "EXPERIMENTS",
    "FAST",
    "FAST_EXPERIMENTS",
    "FIGURES",
    "RECIPES",
    "Budget",
    "Experiment",
    "experiment",
    "load_summaries",
    "recorded_tests",
    "render_report",
    "reproduce",
    "run_experiment",
    "write_figures",
    "write_report",
    "write_summary_figures",
]
