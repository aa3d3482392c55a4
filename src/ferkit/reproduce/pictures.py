"""The pictures beside the summaries that REPRODUCTION.md links: Fig. 1 and 2, Table IX's,
every run's validation curve and the paper's figures beside ferkit's."""

from __future__ import annotations

import shutil
from pathlib import Path

from .catalogue import LONG_RUN, LONG_RUN_BESIDE, SHIPPED
from .lever_table import LONG_RUN_FIGURE
from .report import CLAIMS_FIGURE, CURVES_FIGURE, FIGURES, load_summaries
from .verdicts import row_figures, table_ix_result


def write_figures(data: str, out: Path, summaries_dir: Path) -> None:
    """Fig. 1 (augmentation grid), Fig. 2 (the BKVGG12 run's curves, when run here), Table
    IX's picture and every run's validation curve, beside the summaries, where the report links
    them."""
    from ..data.augment import AugmentConfig, preview_views
    from ..data.fer2013 import preview_faces
    from ..figures import augment_preview
    from ..training.run_folder import RunFolder

    figs = summaries_dir / FIGURES
    figs.mkdir(parents=True, exist_ok=True)
    faces = preview_faces(data)
    views = preview_views(faces.images)
    what = AugmentConfig().describe()  # the paper's
    augment_preview(faces.images, faces.labels, views, figs / "fig1-augmentation.png", what)
    curves = RunFolder(out / "runs" / SHIPPED).curves
    if curves.exists():
        shutil.copyfile(curves, figs / "fig2-bkvgg12-curves.png")
    write_summary_figures(summaries_dir)


def write_summary_figures(summaries_dir: Path) -> None:
    """The pictures drawn from the summaries alone: Table IX's and every run's validation
    curve (what ``ferkit reproduce --report-only`` redraws)."""
    from ..evaluation.evaluate import EvalResult
    from ..figures import confusion_matrices, paper_claims, validation_curves

    figs = summaries_dir / FIGURES
    figs.mkdir(parents=True, exist_ok=True)
    summaries = load_summaries(summaries_dir)
    shipped = next((s for s in summaries if s.get("experiment") == SHIPPED), None)
    if shipped is not None:
        result = EvalResult(**table_ix_result(shipped))
        confusion_matrices([result], figs / "table9-confusion.png")
    summaries = [s for s in summaries if s.get("table") != "proxy"]  # the lever table's
    if any(s.get("curve") for s in summaries):
        validation_curves(summaries, figs / CURVES_FIGURE)
    by_name = {s["experiment"]: s for s in summaries}
    if LONG_RUN in by_name:
        runs = [by_name[n] for n in (*LONG_RUN_BESIDE, LONG_RUN) if n in by_name]
        title = "The lever study's stack at length, beside the paper procedure and the fast recipe"
        validation_curves(runs, figs / LONG_RUN_FIGURE, title)
    rows = row_figures({s["experiment"]: s for s in summaries})
    if any(r.fast for r in rows):
        paper_claims(rows, figs / CLAIMS_FIGURE)
