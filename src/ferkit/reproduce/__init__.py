"""``ferkit reproduce``: every training and evaluation behind the paper's Tables III-IX, each
summarised in a small JSON file, and ``REPRODUCTION.md`` regenerated from those summaries.

Three parts: ``catalogue`` (the experiments and the paper's figures: data), ``runner``
(train, resume or skip each, evaluate, summarise) and ``report`` (the Markdown and pictures
from the summaries alone). Finished experiments are skipped, interrupted ones resumed, so the
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
from .report import (
    CURVES_FIGURE,
    FIGURES,
    load_summaries,
    render_report,
    write_figures,
    write_report,
    write_summary_figures,
)
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
