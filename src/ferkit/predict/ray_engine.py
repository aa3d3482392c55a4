"""``ferkit predict --engine ray``: the local path's records from a pool of Ray Data actors.

Each actor loads the model once and runs :func:`ferkit.predict.files.face_records` (the local path's
batch function) on its batches, so both engines give the same records. Work is split into
*tasks*: one per photo, one per range of :data:`VIDEO_CHUNK` frames of a video, so one long
video spreads over every worker. Without ``address`` Ray starts a local cluster sized to the
machine; with it the same code runs on an existing cluster (``ray.init(address=...)``).

Ray is optional (``pip install 'ferkit[ray]'``) and imported only here, inside functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..argtypes import DEFAULT_ALIGN
from ..images import MAX_PIXELS, ImageError, load_image
from ..labels import LABELS
from .detect import DEFAULT_DETECTOR
from .files import (
    VIDEO_SUFFIXES,
    BatchSummary,
    face_records,
    iter_frames,
    iter_inputs,
    label_for,
    video_frame_count,
    warn_line,
)

#: Frames of a video per task: small enough that a 10-minute video spreads over many workers,
#: large enough that seeking (to the key frame before the range, then decoding on) stays cheap.
VIDEO_CHUNK = 256
#: Frames (or photos) of one task that go through the network together.
FRAME_BATCH = 32
#: Tasks per Ray Data batch handed to one actor call.
TASKS_PER_CALL = 4
#: Suffixes ``--out`` may have with ``--engine ray``.
OUTPUT_FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}
#: The columns of a record, in the order ``predict --json`` prints them.
RECORD_KEYS = (
    "file",
    "frame",
    "box",
    "eyes",
    "label",
    "scores",
    "probabilities",
    "confidence",
    "track",
)

INSTALL_HINT = "--engine ray needs Ray Data: pip install 'ferkit[ray]'"
#: The ``error`` of a photo or frame in which no face was found (warned, not a failure).
NO_FACE = "no face found"


@dataclass(frozen=True)
class Task:
    """One unit of work: a photo (``start`` None), or frames ``start`` to ``stop`` of a video
    (``stop`` None: to the end)."""

    file: str
    start: int | None = None
    stop: int | None = None


@dataclass(frozen=True)
class RecognizerSpec:
    """What each actor needs to build its own :class:`~ferkit.predict.recognizer.Recognizer`: plain
    values, so that it travels to workers on other machines. ``model`` must be a path every
    worker can read, or several (an ensemble), or None: the shipped model, inside the
    installed package."""

    model: str | tuple[str, ...] | None = None
    views: str = "eval1"
    margin: float = 0.0
    max_pixels: int = MAX_PIXELS
    int8: bool = False
    backend: str = "torch"
    precision: str = "auto"
    detect: bool = True
    every: int = 1
    threads: int = 1
    detector: str = DEFAULT_DETECTOR
    align: bool = DEFAULT_ALIGN

    def build(self):
        import torch

        from .recognizer import Recognizer

        torch.set_num_threads(self.threads)
        return Recognizer(
            self.model,
            device="cpu",
            detector=self.detector,
            align=self.align,
            views=self.views,
            margin=self.margin,
            max_pixels=self.max_pixels,
            int8=self.int8,
            backend=self.backend,
            precision=self.precision,
        )


@dataclass
class _Seen:
    """What the driver saw, per input: which had a face (and the largest one's label), which
    failed."""

    faces: int = 0
    first_label: dict[str, str] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)


def import_ray():
    """Ray and Ray Data, or a UsageError-ready ImportError that says how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return ray


def record_schema():
    """The Arrow schema of the actors' output: every record's columns plus ``error`` (a failed
    input, or one with no face, is one row with only ``file``, ``frame`` and ``error``)."""
    import pyarrow as pa

    labels = pa.struct([(k, pa.float64()) for k in LABELS])
    box = pa.struct([(k, pa.int64()) for k in ("x", "y", "w", "h")])
    return pa.schema(
        [
            ("file", pa.string()),
            ("frame", pa.int64()),
            ("box", box),
            ("eyes", pa.list_(pa.list_(pa.float64(), 2), 2)),
            ("label", pa.string()),
            ("scores", labels),
            ("probabilities", labels),
            ("confidence", pa.float64()),
            ("track", pa.int64()),  # null: the engine reads a video in pieces, untracked
            ("error", pa.string()),
        ]
    )


def tasks_for(files: list[str], chunk: int = VIDEO_CHUNK) -> list[Task]:
    """A task per photo and per ``chunk`` frames of each video (the last range open-ended, so
    a container that understates its length loses nothing)."""
    out = []
    for f in files:
        if Path(f).suffix.lower() not in VIDEO_SUFFIXES:
            out.append(Task(f))
            continue
        try:
            n = video_frame_count(f)
        except ImageError:
            n = 0  # the worker reports it, as for any unreadable input
        starts = list(range(0, max(n, 1), chunk))
        out += [
            Task(f, s, starts[i + 1] if i + 1 < len(starts) else None) for i, s in enumerate(starts)
        ]
    return out


class FacePredictor:
    """A Ray Data actor: builds its Recognizer once, then turns batches into record tables.

    A batch is either tasks (columns ``file``, ``start``, ``stop``: decoded here, as the local
    path decodes them) or decoded photos (column ``image``, RGB uint8, with ``path`` as
    :func:`ray.data.read_images` gives it).
    """

    def __init__(self, spec: RecognizerSpec):
        self.spec = spec
        self.rec = spec.build()

    def __call__(self, batch: dict):
        import pyarrow as pa

        if "image" in batch:
            files = [str(p) for p in batch.get("path", [""] * len(batch["image"]))]
            rows = self._records(list(batch["image"]), files, [None] * len(files), "rgb")
        else:
            rows = []
            for file, start, stop in zip(batch["file"], batch["start"], batch["stop"], strict=True):
                rows += self._task(Task(str(file), _int(start), _int(stop)))
        return pa.Table.from_pylist(rows, schema=record_schema())

    def _task(self, task: Task) -> list[dict]:
        try:
            if task.start is None:
                image = load_image(task.file, max_pixels=self.spec.max_pixels)
                return self._records([image], [task.file], [None], "rgb")
            rows, frames, ks = [], [], []
            for k, bgr in iter_frames(task.file, task.start, task.stop):
                if k % self.spec.every:
                    continue
                frames.append(bgr)
                ks.append(k)
                if len(frames) == FRAME_BATCH:
                    rows += self._records(frames, [task.file] * len(ks), ks, "bgr")
                    frames, ks = [], []
            if frames:
                rows += self._records(frames, [task.file] * len(ks), ks, "bgr")
            return rows
        except (ImageError, OSError) as e:
            msg = str(e) if str(e).startswith(task.file) else f"{task.file}: {e}"
            return [{"file": task.file, "frame": task.start, "error": msg}]

    def _records(self, images: list, files: list[str], frames: list, color: str) -> list[dict]:
        rows = face_records(self.rec, images, files, frames, detect=self.spec.detect, color=color)
        found = {(r["file"], r["frame"]) for r in rows}
        missing = [
            {"file": f, "frame": k, "error": NO_FACE}
            for f, k in zip(files, frames, strict=True)
            if (f, k) not in found
        ]
        return rows + missing


def _int(v) -> int | None:
    return None if v is None or v != v else int(v)  # NaN: a missing value from Arrow


def predict_dataset(ds, spec: RecognizerSpec | None = None, workers: int | None = None):
    """Records for every face in ``ds`` (a :class:`ray.data.Dataset` of decoded photos with an
    ``image`` column, e.g. ``ray.data.read_images(..., include_paths=True)``, or of tasks), as
    a Dataset with :func:`record_schema`'s columns. ``workers`` actors (default: one per CPU of
    the cluster), each with one CPU and its own copy of the model."""
    ray = import_ray()
    spec = spec or RecognizerSpec()
    size = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    return ds.map_batches(
        FacePredictor,
        fn_constructor_args=(spec,),
        batch_size=TASKS_PER_CALL,
        compute=ray.data.ActorPoolStrategy(size=size),
        num_cpus=spec.threads,
        batch_format="numpy",
    )


def start_ray(address: str | None = None, cpus: int | None = None) -> None:
    """Join the cluster at ``address``, or start a local one (``cpus``: default, the machine's);
    quiet about Ray's own start-up, and order-preserving so records come out in input order."""
    import logging

    ray = import_ray()
    if not ray.is_initialized():
        ray.init(
            address=address,
            num_cpus=None if address else (cpus or os.cpu_count()),
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True


def predict_paths_ray(
    paths: list[str],
    spec: RecognizerSpec,
    *,
    out: str | None = None,
    video_chunk: int = VIDEO_CHUNK,
    workers: int | None = None,
    address: str | None = None,
    labels: dict[str, str] | None = None,
    emit: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
) -> BatchSummary:
    """``ferkit predict --engine ray``: every image and video below ``paths`` through a pool
    of actors; records to ``out`` (.jsonl or .parquet, written whole or not at all) or as JSON
    lines through ``emit``; failed inputs and inputs with no face one line each through
    ``warn``, as the local path reports them, and the same summary."""
    warn = warn or warn_line
    fmt = output_format(out)
    ray = import_ray()
    files = [i.path for i in iter_inputs(paths, warn)]
    seen = _Seen()
    if files:
        start_ray(address, cpus=workers)
        tasks = tasks_for(files, video_chunk)
        ds = ray.data.from_items(  # a block per actor call: Ray's per-block cost is paid once
            [{"file": t.file, "start": t.start, "stop": t.stop} for t in tasks],
            override_num_blocks=-(-len(tasks) // TASKS_PER_CALL),
        )
        records = predict_dataset(ds, spec, workers)
        batches = records.iter_batches(batch_format="pyarrow", batch_size=None)
        rows = _account(_rows(batches), seen, warn)
        if fmt == "jsonl":
            _write_jsonl(rows, out, emit)
        else:
            _write_parquet(rows, out)
    summary = BatchSummary(
        files=len(files), failed=len(seen.failed), with_face=len(seen.first_label), faces=seen.faces
    )
    for f in files:
        if f not in seen.first_label and f not in seen.failed:
            warn(f"{f}: {NO_FACE}")
        truth = label_for(labels, f)
        if truth is not None and f not in seen.failed:
            summary.add_labelled(truth, seen.first_label.get(f))
    return summary


def output_format(out: str | None) -> str:
    """ "jsonl" or "parquet" from ``out``'s suffix (JSON lines on stdout without ``out``)."""
    if out is None:
        return "jsonl"
    fmt = OUTPUT_FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"--out {out}: with --engine ray, --out is the records file: name it .jsonl or .parquet"
        )
    return fmt


def _rows(batches) -> Iterator[dict]:
    for table in batches:
        yield from table.to_pylist()


def _account(rows: Iterator[dict], seen: _Seen, warn: Callable[[str], None]) -> Iterator[dict]:
    """Face records only; failures warned (once per input) and counted on the way."""
    for row in rows:
        error = row.pop("error", None)
        if error is None:
            seen.faces += 1
            seen.first_label.setdefault(row["file"], row["label"])
            yield {k: row[k] for k in RECORD_KEYS}
        elif error != NO_FACE and row["file"] not in seen.failed:
            seen.failed.add(row["file"])
            warn(error)


def _write_jsonl(rows: Iterator[dict], out: str | None, emit: Callable[[str], None]) -> None:
    if out is None:
        for row in rows:
            emit(json.dumps(row))
        return
    from ..atomic import atomic_write

    with atomic_write(out, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")


def _write_parquet(rows: Iterator[dict], out: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..atomic import atomic_write

    schema = pa.schema([f for f in record_schema() if f.name != "error"])
    with atomic_write(out) as fh, pq.ParquetWriter(fh, schema) as writer:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == 4096:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        writer.write_table(pa.Table.from_pylist(chunk, schema=schema))


def stop_ray() -> None:
    """Shut down the cluster this process started or joined (tests, benchmarks)."""
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()
