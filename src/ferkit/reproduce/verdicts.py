"""What the summaries say about the paper's claims: each row's figures with both procedures and
their seed spread, and a verdict on each comparison the paper makes."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .catalogue import CLAIMS, EXPERIMENTS, FAST_EXPERIMENTS, Claim

#: The two procedures a claim is judged with (the verdict table's columns).
PAPER_PROCEDURE, FAST_PROCEDURE = "paper's procedure", "fast procedure"


def accuracy(summary: dict, split: str, method: str) -> float | None:
    for r in summary["results"]:
        if r["split"] == split and r["method"] == method:
            return 100 * r["accuracy"]
    return None


@dataclass(frozen=True)
class RowFigures:
    """One row of Tables IV-VII on PublicTest (%): the paper's, ferkit's with the paper's
    procedure, and ferkit's with the fast one (one figure per seed run)."""

    experiment: str
    method: str
    paper: float | None
    paper_procedure: float | None
    fast: tuple[float, ...]
    paper_procedure_epochs: int | None = None

    @property
    def fast_mean(self) -> float | None:
        return statistics.fmean(self.fast) if self.fast else None

    @property
    def fast_sd(self) -> float | None:
        return statistics.stdev(self.fast) if len(self.fast) > 1 else None


def _fast_runs(base: str, by_name: dict[str, dict]) -> list[dict]:
    """The summaries of a paper experiment's fast-procedure runs (one per seed) that exist."""
    return [by_name[f.name] for f in FAST_EXPERIMENTS if f.base == base and f.name in by_name]


def row_figures(by_name: dict[str, dict]) -> list[RowFigures]:
    """Every (experiment, test) of the paper's tables with what was measured for it."""
    rows = []
    for exp in EXPERIMENTS:
        s = by_name.get(exp.name)
        for method in exp.methods:
            fast = tuple(
                a
                for run in _fast_runs(exp.name, by_name)
                if (a := accuracy(run, "PublicTest", method)) is not None
            )
            slow = accuracy(s, "PublicTest", method) if s else None
            paper = exp.paper.get(method, (None, None))[0]
            epochs = s["epochs_done"] if s else None
            rows.append(RowFigures(exp.name, method, paper, slow, fast, epochs))
    return rows


def paired_seed_spread(by_name: dict[str, dict]) -> float | None:
    """The largest standard deviation, over the seeds of one fast row, of the difference
    between two tests of the same model (Eval2 minus Eval1): the noise of a comparison made on
    one run, which is far smaller than that between two runs."""
    spreads = []
    for exp in EXPERIMENTS:
        diffs = [
            a - b
            for s in _fast_runs(exp.name, by_name)
            if (a := accuracy(s, "PublicTest", "eval2")) is not None
            if (b := accuracy(s, "PublicTest", "eval1")) is not None
        ]
        if len(diffs) > 1:
            spreads.append(statistics.stdev(diffs))
    return max(spreads) if spreads else None


def claim_verdicts(
    rows: list[RowFigures], paired_sd: float | None = None
) -> list[tuple[Claim, float, dict[str, str]]]:
    """Each of the paper's comparisons: its difference (points) and, per procedure, ferkit's
    with a verdict. Two runs differ by seed noise with about sqrt(2) x the seed spread, so a
    difference within twice that cannot be told from noise; two tests of one run differ with
    ``paired_sd`` (:func:`paired_seed_spread`), so within twice that. Without a measured spread
    the verdict says so, and paper-procedure runs of different lengths are not compared."""
    at = {(r.experiment, r.method): r for r in rows}
    spreads = [r.fast_sd for r in rows if r.fast_sd is not None]
    between = max(spreads) if spreads else None
    out = []
    for claim in CLAIMS:
        a, b = at[claim.a], at[claim.b]
        # one run's two tests differ with paired_sd; two runs with sqrt(2) x the seed spread
        sd, k = (paired_sd, 2.0) if claim.a[0] == claim.b[0] else (between, 2 * math.sqrt(2))
        noise = {PAPER_PROCEDURE: None, FAST_PROCEDURE: k * sd if sd is not None else None}
        verdicts = {}
        for procedure, pick in (
            (PAPER_PROCEDURE, lambda r: r.paper_procedure),
            (FAST_PROCEDURE, lambda r: r.fast_mean),
        ):
            if pick(a) is None or pick(b) is None:
                verdicts[procedure] = "not measured"
                continue
            d, limit = pick(a) - pick(b), noise[procedure]
            ea, eb = a.paper_procedure_epochs, b.paper_procedure_epochs
            word = "confirms" if d > 0 else "contradicts"
            if procedure == PAPER_PROCEDURE and ea != eb:
                verdicts[procedure] = f"{d:+.1f}: cannot tell (runs of {ea} and {eb} epochs)"
            elif limit is None:
                verdicts[procedure] = f"{d:+.1f}: {word} (no seed spread measured)"
            elif abs(d) <= limit:
                verdicts[procedure] = f"{d:+.1f}: within seed noise (+-{limit:.1f})"
            else:
                verdicts[procedure] = f"{d:+.1f}: {word} (beyond seed noise)"
        out.append((claim, a.paper - b.paper, verdicts))
    return out


def table_ix_result(s12: dict) -> dict:
    """The BKVGG12 + SVM Eval2 result Table IX shows: PrivateTest when measured, else PublicTest."""
    split = "PrivateTest" if accuracy(s12, "PrivateTest", "eval2") is not None else "PublicTest"
    return next(x for x in s12["results"] if x["split"] == split and x["method"] == "eval2")
