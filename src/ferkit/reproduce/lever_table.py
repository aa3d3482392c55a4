"""The lever study's table in ``REPRODUCTION.md``: each proxy arm's best validation accuracy
per seed, its gain over the base arm, judged against the base arm's own seed spread."""

from __future__ import annotations

import statistics

from .catalogue import (
    ALL_METHODS,
    LENGTH_ARMS,
    LENGTH_REFERENCE,
    LONG_RUN,
    LONG_RUN_BESIDE,
    PROXY_ARMS,
    PROXY_EPOCHS,
    PROXY_EXPERIMENTS,
    experiment,
    proxy_arm,
    proxy_reference,
)
from .verdicts import accuracy

#: The picture of the long run's curve beside its references (in the figures folder).
LONG_RUN_FIGURE = "lever-long-run.png"

#: The early epoch the table also shows: how soon an arm gets there, not only where it ends.
EARLY_EPOCH = 5
#: The validation accuracy (%) whose first epoch the long runs show: the lever study's speed
#: target is to pass it by epoch 8 (the paper's procedure: about 70).
EARLY_TARGET = 60.0
#: Base seeds needed before a spread judges anything (two runs that agree say little).
MIN_BASE_SEEDS = 3


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _at_epoch(summary: dict, epoch: int) -> float | None:
    return next((acc for e, acc, *_ in summary.get("curve", []) if e == epoch), None)


def _first_epoch(summary: dict, target: float = EARLY_TARGET) -> int | None:
    """The first epoch whose validation accuracy (%) reaches ``target``; None if none does."""
    return next((e for e, acc, *_ in summary.get("curve", []) if acc >= target), None)


def _passes(summary: dict, target: float = EARLY_TARGET) -> str:
    """ "passes 60 % at epoch 10", or "never passes 60 %"."""
    epoch = _first_epoch(summary, target)
    return (
        f"never passes {target:g} %" if epoch is None else f"passes {target:g} % at epoch {epoch}"
    )


def cpu_of(summary: dict) -> str:
    """The CPU a run trained on, short: "AMD EPYC" of "2-core AMD EPYC (x86_64, bf16), ..."."""
    machine = summary.get("machine", "")
    name = machine.split(" (", 1)[0]
    name = name.split("-core ", 1)[-1]
    return name.replace("(R)", "").replace(" Processor", "").strip() or "?"


def _best_row(summary: dict) -> list:
    """The row of a run's curve with its best validation accuracy: (epoch, %, hours, ...)."""
    return max(summary["curve"], key=lambda row: row[1])


def _best(summary: dict) -> str:
    """ "64.0 % at epoch 30 (0.81 h)": a run's best validation accuracy, when and after how long."""
    epoch, acc, hours, *_ = _best_row(summary)
    return f"{acc:.1f} % at epoch {epoch} ({hours:.2f} h)"


def _test(summary: dict, method: str) -> str | None:
    acc = accuracy(summary, "PublicTest", method)
    return None if acc is None else f"{acc:.1f} %"


def _tests(summary: dict, methods: tuple[str, ...], sep: str = ", ") -> str:
    """ ", center 64.9 %, eval1 66.8 %": the PublicTest figures a summary has, each after ``sep``."""
    return "".join(f"{sep}{m} {v}" for m in methods if (v := _test(summary, m)) is not None)


def long_run_section(by_name: dict[str, dict], figures: str) -> list[str]:
    """The stack at length beside the paper procedure and the fast recipe, or nothing before
    the long run has a summary."""
    long = by_name.get(LONG_RUN)
    if not long or not long.get("curve"):
        return []
    lines = [
        "",
        f"### The long run: the stack over {long['epochs_done']} epochs",
        "",
        f"`{LONG_RUN}`: best validation {_best(long)} on {long.get('machine', '?')}; "
        f"{_passes(long)}{_tests(long, ALL_METHODS, '; ')}.",
    ]
    for name in LONG_RUN_BESIDE:
        if (ref := by_name.get(name)) and ref.get("curve"):
            lines.append(
                f"Beside it, `{name}`: {_best(ref)}, {_passes(ref)}{_tests(ref, ('eval2',))} "
                f"({ref.get('machine', '?')})."
            )
    lines += ["", f"![The long run beside its references]({figures}/{LONG_RUN_FIGURE})"]
    return lines


def length_section(by_name: dict[str, dict]) -> list[str]:
    """Single changes at length (regularisers, the optimiser) beside the run they change, or nothing before one has run."""
    ref = by_name.get(LENGTH_REFERENCE)
    done = [by_name[name] for name in LENGTH_ARMS if by_name.get(name, {}).get("curve")]
    if not ref or not done:
        return []
    ref_best = _best_row(ref)[1]
    lines = [
        "",
        "### One change at length",
        "",
        f"Each changes one thing of `{LENGTH_REFERENCE}` (best validation {_best(ref)}, "
        f"{_passes(ref)}{_tests(ref, ALL_METHODS)}, {cpu_of(ref)}); one seed each, so a "
        "difference within about 2 points (twice the stack's seed spread at proxy length, 0.9) "
        "is not told from noise.",
        "",
        f"| recipe | change | best validation | {EARLY_TARGET:g} % at epoch | centre | eval1 | eval2 "
        "| CPU | against the reference |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in done:
        best = _best_row(s)[1]
        tests = " | ".join(_test(s, m) or "-" for m in ALL_METHODS)
        lines.append(
            f"| {s['experiment']} | {experiment(s['experiment']).change} | {_best(s)} | "
            f"{_first_epoch(s) or '-'} | {tests} | {cpu_of(s)} | {best - ref_best:+.1f} |"
        )
    return lines


def lever_section(by_name: dict[str, dict], figures: str = "figures") -> list[str]:
    """The table, or nothing before the first proxy run has a summary."""
    runs: dict[str, list[dict]] = {}
    for exp in PROXY_EXPERIMENTS:
        if exp.name in by_name:
            runs.setdefault(proxy_arm(exp), []).append(by_name[exp.name])
    if not runs:
        return []
    stats = {arm: _mean_sd([100 * s["val_acc"] for s in done]) for arm, done in runs.items()}

    def judge(arm: str, mean: float) -> str:
        """The gain over the arm's reference, beyond or within the reference's seed spread."""
        ref = f"bkvgg12-proxy-{proxy_reference(arm)}"
        if f"bkvgg12-proxy-{arm}" == ref or ref not in stats:
            return "-"
        (ref_mean, ref_sd), name = stats[ref], proxy_reference(arm)
        gain = mean - ref_mean
        if len(runs[ref]) < MIN_BASE_SEEDS:
            return f"{gain:+.1f} over the {name}: not judged (it needs {MIN_BASE_SEEDS} seeds)"
        word = "beyond" if abs(gain) > 2 * ref_sd else "within"
        return f"{gain:+.1f} over the {name}: {word} its seed spread"

    rows = []
    for arm, change, _ in PROXY_ARMS:
        done = runs.get(f"bkvgg12-proxy-{arm}")
        if not done:
            continue
        vals = [100 * s["val_acc"] for s in done]
        mean, sd = stats[f"bkvgg12-proxy-{arm}"]
        early = [a for s in done if (a := _at_epoch(s, EARLY_EPOCH)) is not None]
        hours = statistics.mean(s["train_seconds"] for s in done) / 3600
        verdict = judge(arm, mean)
        seeds = ", ".join(f"{v:.1f}" for v in vals)
        spread = f" +- {sd:.1f}" if sd is not None else ""
        early_text = f"{statistics.mean(early):.1f}" if early else "-"
        cpus = ", ".join(dict.fromkeys(cpu_of(s) for s in done))
        rows.append(
            f"| {arm} | {change} | {len(vals)} | {seeds} | {mean:.1f}{spread} | {early_text} | "
            f"{hours:.2f} ({cpus}) | {verdict} |"
        )
    machines = sorted({s.get("machine", "") for done in runs.values() for s in done})
    return [
        "",
        "## The lever study: proxy runs of BKVGG12 + SVM",
        "",
        f"Each arm is trained for {PROXY_EPOCHS} epochs with the whole cosine schedule compressed",
        "into them (`ferkit reproduce --experiments bkvgg12-proxy-ARM-seedK --threads 1`, two",
        "side by side), and judged on the best validation accuracy (%, centre crops of the",
        "held-out 10 % of Training); no test split is looked at. Each arm is judged against",
        "the base, or, for the stack with one lever taken out or changed (`stack-...`), against",
        "the stack: its gain",
        "is beyond noise when it exceeds twice that reference's seed standard deviation"
        f" (judged once the reference has {MIN_BASE_SEEDS} seeds).",
        "Hours are training hours a run (mean over its seeds), with the CPU they ran on: "
        + "; ".join(machines)
        + ". Compare hours only between rows on the same CPU.",
        "",
        f"| arm | change against its reference | seeds | best validation by seed | mean | "
        f"epoch {EARLY_EPOCH} | hours | gain over its reference |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        *long_run_section(by_name, figures),
        *length_section(by_name),
    ]
