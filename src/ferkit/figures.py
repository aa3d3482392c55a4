"""Every picture ferkit draws, in one place: the augmentation grid (Fig. 1), a run's training
curves (Fig. 2), confusion matrices (Table IX), reliability diagrams, and the validation curves
of many runs side by side. Each takes plain values (arrays, summaries, results) and writes one
PNG atomically; matplotlib is imported only when a picture is drawn, with the Agg backend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .atomic import atomic_write
from .labels import LABEL_COLOURS, LABELS


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, out: str | os.PathLike, dpi: int = 100) -> None:
    """Write ``fig`` as a PNG atomically (no half-written picture), then free it."""
    with atomic_write(out) as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    _pyplot().close(fig)


def augment_preview(
    images: np.ndarray,
    labels: Sequence[int],
    views: Sequence[torch.Tensor],
    out: str | os.PathLike,
    what: str = "mirror, rotate, rescale, crop",
) -> None:
    """Faces (uint8 (N, 48, 48), first column) beside their augmented ``views`` (each (N, 1,
    42, 42), standardised: ``data.augment.preview_views``); ``what`` names the augmentation."""
    plt = _pyplot()
    n_aug = len(views)
    n = len(images)
    fig, axes = plt.subplots(n, n_aug + 1, figsize=(1.3 * (n_aug + 1), 1.4 * n), squeeze=False)
    for r in range(n):
        axes[r, 0].imshow(images[r], cmap="gray", vmin=0, vmax=255)
        axes[r, 0].set_title(LABELS[labels[r]], fontsize=8)
        for c, v in enumerate(views, start=1):
            axes[r, c].imshow(v[r, 0].numpy(), cmap="gray", vmin=-8, vmax=8)
        for ax in axes[r]:
            ax.set_axis_off()
    axes[0, 1].set_title(f"augmented ({what})", fontsize=8, loc="left")
    fig.tight_layout()
    _save(fig, out)


def training_curves(
    epochs: Sequence[int],
    train_acc: Sequence[float],
    val_acc: Sequence[float | None],
    out: str | os.PathLike,
    title: str,
) -> None:
    """Fig. 2: training and validation accuracy (fractions) per epoch of one run (validation
    None: a run without validation faces, drawn without that line)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [100 * a for a in train_acc], color="tab:orange", label="training")
    validated = [(e, a) for e, a in zip(epochs, val_acc, strict=True) if a is not None]
    if validated:
        e, a = zip(*validated, strict=True)
        ax.plot(e, [100 * x for x in a], color="tab:blue", label="validation")
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save(fig, out)


def confusion_matrices(results: Sequence[Any], out: str | os.PathLike) -> None:
    """One labelled heat map (% of each true class) per evaluated (split, method), side by
    side; each result has ``confusion``, ``split``, ``method`` and ``accuracy``."""
    plt = _pyplot()
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.8), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        cm = np.asarray(r.confusion, dtype=float)
        rows = cm.sum(1, keepdims=True)
        pct = np.divide(100 * cm, rows, out=np.zeros_like(cm), where=rows > 0)
        ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
        for i in range(len(LABELS)):
            for j in range(len(LABELS)):
                colour = "white" if pct[i, j] > 50 else "black"
                ax.text(
                    j, i, f"{pct[i, j]:.0f}", ha="center", va="center", fontsize=8, color=colour
                )
        ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(LABELS)), LABELS, fontsize=8)
        title = f"{r.split}, {r.method}: {100 * r.accuracy:.1f} %"
        ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    _save(fig, out)


def validation_curves(
    summaries: list[dict],
    out: str | os.PathLike,
    title: str = "Validation accuracy of every run (recipes dashed)",
) -> None:
    """Each run's validation accuracy against epochs and against training hours, one line per
    run (``ferkit reproduce`` summaries; recipes dashed), as a PNG: budgets side by side."""
    plt = _pyplot()
    runs = [s for s in summaries if s.get("curve")]
    fig, (by_epoch, by_hour) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    colours = plt.get_cmap("tab20").colors
    for i, s in enumerate(runs):
        curve = np.asarray([row[:3] for row in s["curve"]], dtype=float)  # epoch, val %, hours
        style = {
            "color": colours[i % len(colours)],
            "linestyle": "--" if s.get("table") == "recipe" else "-",
            "linewidth": 1.2,
        }
        by_epoch.plot(curve[:, 0], curve[:, 1], label=s["experiment"], **style)
        by_hour.plot(curve[:, 2], curve[:, 1], **style)
    by_epoch.set(xlabel="epoch", ylabel="validation accuracy (%)")
    by_hour.set(xlabel="training hours (wall clock, as measured)")
    for ax in (by_epoch, by_hour):
        ax.grid(alpha=0.3)
    if runs:
        fig.legend(loc="center right", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    _save(fig, out)


def track_timelines(
    tracks: dict[int, tuple[Sequence[float], Sequence[Sequence[float]]]],
    out: str | os.PathLike,
    title: str,
) -> None:
    """A video's faces over time: one panel per track (id -> (times in s, probabilities
    (T, 7)); a row of NaNs where the face was not seen, a gap in its lines), the seven
    probabilities as lines in the annotated copies' colours."""
    plt = _pyplot()
    ids = sorted(tracks) or [None]
    fig, axes = plt.subplots(
        len(ids), 1, figsize=(9, 1.3 + 1.9 * len(ids)), squeeze=False, sharex=True
    )
    for ax, tid in zip(axes[:, 0], ids, strict=True):
        ax.set(ylim=(0, 1))
        ax.grid(alpha=0.3)
        if tid is None:
            ax.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax.transAxes)
            continue
        times, probs = tracks[tid]
        probs = np.asarray(probs, dtype=float).reshape(len(times), len(LABELS))
        for k, label in enumerate(LABELS):
            colour = np.asarray(LABEL_COLOURS[label]) / 255
            ax.plot(times, probs[:, k], ".-", color=colour, label=label, lw=1.2, ms=2)
        ax.set_ylabel(f"face #{tid}")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10)
    handles, names = axes[0, 0].get_legend_handles_labels()
    top = 1 - 0.75 / fig.get_figheight()  # room for the title and one row of labels
    if handles:
        fig.legend(
            handles, names, loc="lower center", bbox_to_anchor=(0.5, top), ncol=len(LABELS),
            fontsize=8, frameon=False,
        )  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, top))
    _save(fig, out)


def reliability_diagrams(results: Sequence[Any], path: str | os.PathLike) -> None:
    """For each evaluated (split, method): accuracy against confidence per bin, the plain
    softmax beside the probabilities at the model's temperature (a calibrated model lies on
    the diagonal)."""
    plt = _pyplot()
    shown = [r for r in results if r.calibration]
    fig, axes = plt.subplots(1, len(shown), figsize=(4.6 * len(shown), 4.4), squeeze=False)
    for ax, r in zip(axes[0], shown, strict=True):
        cal = r.calibration
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls=":", label="calibrated")
        for key, name, colour in (
            ("reliability_softmax", f"softmax, ECE {100 * cal['ece_softmax']:.1f} %", "tab:red"),
            ("reliability", f"T = {cal['temperature']}, ECE {100 * cal['ece']:.1f} %", "tab:blue"),
        ):
            rel = cal[key]
            pts = [
                (c, a)
                for c, a, n in zip(
                    rel["bin_confidence"], rel["bin_accuracy"], rel["bin_count"], strict=True
                )
                if n
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", color=colour, label=name)
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top class's probability)",
            ylabel="accuracy",
            title=f"{r.split}, {r.method}",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    _save(fig, path)


def paper_claims(rows: Sequence[Any], out: str | os.PathLike) -> None:
    """Every row of the paper's Tables IV-VII: the paper's public figure beside ferkit's with
    the paper's procedure and with the fast one (mean, and the seed spread as an error bar
    where several seeds ran). ``rows`` have ``experiment``, ``method``, ``paper``,
    ``paper_procedure``, ``fast_mean`` and ``fast_sd`` (percent, None when not measured)."""
    plt = _pyplot()
    n = len(rows)
    fig, ax = plt.subplots(figsize=(10, 0.42 * n + 1.6))
    y = np.arange(n)[::-1].astype(float)
    series = (
        ("paper", "paper", None, "black", 0.27),
        ("ferkit, paper's procedure", "paper_procedure", None, "tab:blue", 0.0),
        ("ferkit, fast procedure", "fast_mean", "fast_sd", "tab:orange", -0.27),
    )
    for name, key, err, colour, dy in series:
        vals = [getattr(r, key) for r in rows]
        shown = [i for i, v in enumerate(vals) if v is not None]
        if not shown:
            continue
        spread = [getattr(rows[i], err) or 0.0 for i in shown] if err else []
        ax.barh(
            y[shown] + dy,
            [vals[i] for i in shown],
            height=0.26,
            color=colour,
            xerr=spread if any(spread) else None,
            capsize=3,
            label=name + (" (+- seed spread)" if any(spread) else ""),
        )
    ax.set_yticks(y, [f"{r.experiment} ({r.method})" for r in rows], fontsize=8)
    measured = [v for r in rows for v in (r.paper, r.paper_procedure, r.fast_mean) if v]
    ax.set_xlim(max(0.0, min(measured) - 5) if measured else 0, 75)
    ax.set(xlabel="PublicTest accuracy (%)", title="The paper's figures and ferkit's, row by row")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    _save(fig, out)
