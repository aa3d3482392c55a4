"""``ferkit predict`` over files, folders and videos: JSON lines, annotated copies, a summary
against a labels CSV. Failures are one line on stderr each; the batch goes on."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path, atomic_write
from ..console import say
from ..images import IMAGE_SUFFIXES, ImageError, load_image
from ..labels import LABELS
from ..userfiles import NOT_REGULAR, looks_binary, path_problem, read_head, require_file
from .recognizer import Face, Recognizer
from .tracking import FaceTracker, write_timeline

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


@dataclass(frozen=True)
class Input:
    """One file to analyse, and where its annotated copy goes below ``--out`` (``rel``)."""

    path: str
    rel: str


def iter_inputs(paths: list[str], warn: Callable[[str], None] | None = None) -> list[Input]:
    """Files named as given, and the images and videos below named folders (recursively,
    sorted). Below a folder, anything that is not a regular file (a FIFO, socket or device,
    which would block or never end) is skipped with a message through ``warn``; a path named
    explicitly is kept, and fails as an input when it is read (docs/CONTRACT.md)."""
    wanted = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    warn = warn or warn_line
    out = []
    for p in map(str, paths):
        if os.path.isdir(p):
            for root, dirs, names in os.walk(p):
                dirs.sort()
                for n in sorted(names):
                    f = os.path.join(root, n)
                    if n.startswith(".") or Path(n).suffix.lower() not in wanted:
                        continue
                    if _regular(f, warn):
                        out.append(Input(f, os.path.relpath(f, p)))
        else:  # a missing or odd file fails when read, clearly
            norm = os.path.normpath(p)
            inside = not os.path.isabs(norm) and norm.split(os.sep)[0] != os.pardir
            out.append(Input(p, norm if inside else os.path.basename(norm)))
    return out


def _regular(path: str, warn: Callable[[str], None]) -> bool:
    problem = path_problem(path)
    if problem is None or not problem.startswith(NOT_REGULAR):
        return True  # a vanished or unreadable file fails when it is read, clearly
    warn(f"{path}: skipped: {problem}")
    return False


@dataclass
class BatchSummary:
    """What a batch did: counts, failures, and accuracy against labels when given."""

    files: int = 0
    failed: int = 0
    with_face: int = 0
    faces: int = 0
    labelled: int = 0
    correct: int = 0
    #: true label -> predicted label of the largest face (``"none"`` when no face) -> count
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    def add_labelled(self, truth: str, predicted: str | None) -> None:
        """Count one labelled file whose largest face got ``predicted`` (None: no face)."""
        self.labelled += 1
        self.correct += predicted == truth
        row = self.confusion.setdefault(truth, {})
        row[predicted or "none"] = row.get(predicted or "none", 0) + 1

    def per_class(self) -> dict[str, dict[str, float]]:
        """Recall per true label, in the labels' order."""
        out = {}
        for name in LABELS:
            row = self.confusion.get(name)
            if row:
                n, k = sum(row.values()), row.get(name, 0)
                out[name] = {"labelled": n, "correct": k, "accuracy": k / n}
        return out

    def to_dict(self) -> dict:
        d = {
            "files": self.files,
            "failed": self.failed,
            "with_face": self.with_face,
            "faces": self.faces,
        }
        if self.labelled:
            d.update(
                labelled=self.labelled,
                correct=self.correct,
                face_found_rate=self.with_face / max(1, self.files),
                accuracy=self.correct / self.labelled,
                per_class=self.per_class(),
                confusion=self.confusion,
            )
        return d


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """``file,label`` rows -> {file: label}; also keyed by base name, for files given by folder."""
    from ..labels import label_index

    out: dict[str, str] = {}
    if looks_binary(read_head(require_file(path))):  # before csv reads a 2 GB "line" of NULs
        raise ValueError(f"{path}: not a labels CSV (binary content)")
    # utf-8-sig: a spreadsheet's export starts with a byte-order mark, as the data reader allows
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for lineno, row in enumerate(csv.reader(fh), start=1):
            if not row or (lineno == 1 and row[:2] == ["file", "label"]):
                continue
            if len(row) < 2:
                raise ValueError(f"{path}:{lineno}: expected file,label")
            try:
                label_index(row[1])
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
            out[row[0]] = row[1].strip().lower()
            out.setdefault(os.path.basename(row[0]), row[1].strip().lower())
    return out


def label_for(labels: dict[str, str] | None, path: str) -> str | None:
    """``path``'s true label in a :func:`read_labels` table: by path, else by file name."""
    if labels is None:
        return None
    return labels.get(path) or labels.get(os.path.basename(path))


def predict_paths(
    rec: Recognizer,
    paths: list[str],
    *,
    detect: bool = True,
    out: str | None = None,
    as_json: bool = False,
    labels: dict[str, str] | None = None,
    every: int = 1,
    progress: bool = True,
    emit: Callable[[str], None] = print,
    smooth: float = 0.0,
    timeline: str | None = None,
) -> BatchSummary:
    """Run ``rec`` over every image and video below ``paths``. In a video each face is
    tracked (``Face.track``), its probabilities smoothed over time by ``smooth``
    (:class:`~.tracking.FaceTracker`); with ``timeline`` (a folder) each video's
    ``NAME.timeline.csv`` and ``.png`` go there, mirrored as the annotated copies are."""
    files = iter_inputs(paths)
    inputs = {os.path.realpath(i.path) for i in files}
    written: set[str] = set()  # annotated copies made by this call: two inputs never share one
    summary = BatchSummary()
    bar = None
    if progress and len(files) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", file=sys.stderr, leave=False, dynamic_ncols=True)
    for item in files:
        f = item.path
        summary.files += 1
        try:
            dest = _mirrored_path(item, out, ANNOTATED, inputs, written) if out else None
            if Path(f).suffix.lower() in VIDEO_SUFFIXES:
                tracker = FaceTracker(smoothing=smooth)
                faces_by_frame = _predict_video(rec, f, detect, dest, every, tracker)
                if timeline:
                    _write_timeline(item, faces_by_frame, timeline, inputs, written)
            else:
                rgb = load_image(f, max_pixels=rec.max_pixels)
                faces_by_frame = [(None, rec.predict(rgb, detect=detect))]
                if dest:
                    _save_annotated(rgb, faces_by_frame[0][1], dest)
        except (ImageError, OSError) as e:
            summary.failed += 1
            warn_line(str(e) if str(e).startswith(f) else f"{f}: {e}")
            continue
        finally:
            if bar:
                bar.update()
        all_faces = [face for _, faces in faces_by_frame for face in faces]
        if not all_faces:
            warn_line(f"{f}: no face found")
        summary.faces += len(all_faces)
        summary.with_face += bool(all_faces)
        for frame, faces in faces_by_frame:
            for face in faces:
                if as_json:
                    emit(json.dumps(face_record(f, frame, face)))
                else:
                    b = face.box
                    where = f"{f}" + (f" frame {frame}" if frame is not None else "")
                    emit(
                        f"{where}: {face.label} ({100 * face.confidence:.0f}%) at "
                        f"x={b.x} y={b.y} w={b.w} h={b.h}"
                    )
        if (truth := label_for(labels, f)) is not None:
            summary.add_labelled(truth, all_faces[0].label if all_faces else None)
    if bar:
        bar.close()
    return summary


def face_record(file: str, frame: int | None, face: Face) -> dict:
    """One ``predict --json`` record: the face's file, video frame (None for a photo) and
    :meth:`Face.to_dict`."""
    return {"file": file, "frame": frame, **face.to_dict()}


def face_records(
    rec: Recognizer,
    images: Sequence,
    files: Sequence[str],
    frames: Sequence[int | None] | None = None,
    detect: bool = True,
    color: str = "rgb",
) -> list[dict]:
    """The batch function any engine wraps: decoded images in, one record per face out (in
    image order, largest face first), every face of the batch in one network pass. Nothing but
    ``rec`` is used, so a worker that holds a :class:`Recognizer` can call it on any batch."""
    frames = [None] * len(images) if frames is None else frames
    faces = rec.predict_many(images, color=color, detect=detect)
    return [
        face_record(file, frame, face)
        for file, frame, found in zip(files, frames, faces, strict=True)
        for face in found
    ]


def warn_line(msg: str) -> None:
    """One ``ferkit: ...`` line on stderr, clear of the progress bar: how a batch reports an
    input and goes on."""
    say(f"ferkit: {msg}")


#: The names of what ``predict`` writes for an input below a folder (a video's annotated copy,
#: its timeline), from the input's own name.
ANNOTATED = {"video": "{stem}.annotated.mp4", "photo": "{name}"}
TIMELINE = ("{stem}.timeline.csv", "{stem}.timeline.png")


def _mirrored_path(
    item: Input,
    out: str,
    name: dict[str, str] | str,
    inputs: set[str],
    written: set[str],
    what: str = "annotated copy",
) -> Path:
    """Where ``item``'s ``what`` named ``name`` goes: its relative path mirrored below ``out``
    (``name`` per kind of input, or one for all). Refused (ImageError) where that is an input
    or another input's output."""
    rel = Path(item.rel)
    if isinstance(name, dict):
        name = name["video" if rel.suffix.lower() in VIDEO_SUFFIXES else "photo"]
    dest = Path(out) / rel.with_name(name.format(stem=rel.stem, name=rel.name))
    real = os.path.realpath(dest)
    if real in inputs:
        raise ImageError(f"{item.path}: refused to write its {what} over the input {dest}")
    if real in written:
        raise ImageError(
            f"{item.path}: its {what} {dest} would replace another input's: give the inputs "
            "distinct relative paths"
        )
    written.add(real)
    return dest


def _write_timeline(
    item: Input,
    frames: list[tuple[int, list[Face]]],
    folder: str,
    inputs: set[str],
    written: set[str],
) -> None:
    csv_path, png_path = (
        _mirrored_path(item, folder, n, inputs, written, "timeline") for n in TIMELINE
    )
    write_timeline(frames, video_fps(item.path), csv_path, png_path, title=item.rel)


def _save_annotated(rgb, faces: list[Face], dest: Path) -> None:
    from PIL import Image

    from .annotate import annotate

    # encoded in memory: PIL's encoders write to a file's descriptor and ignore a short write
    # on a full disk; Python's write does not
    buf = io.BytesIO()
    Image.fromarray(annotate(rgb, faces)).save(buf, format=_format_for(dest))
    with atomic_write(dest) as fh:
        fh.write(buf.getbuffer())


def _format_for(p: Path) -> str:
    return {
        ".jpg": "JPEG",
        ".jpeg": "JPEG",
        ".png": "PNG",
        ".bmp": "BMP",
        ".webp": "WEBP",
        ".tif": "TIFF",
        ".tiff": "TIFF",
        ".gif": "GIF",
    }.get(p.suffix.lower(), "PNG")


def _predict_video(
    rec: Recognizer,
    path: str,
    detect: bool,
    dest: Path | None,
    every: int,
    tracker: FaceTracker,
) -> list[tuple[int, list[Face]]]:
    """Tracked faces per analysed frame (every ``every``-th); an annotated copy of the video
    at ``dest``."""
    fps = video_fps(path)  # first: without OpenCV, the clear error
    if dest is None:
        return [
            (k, tracker.update(rec.predict(bgr, color="bgr", detect=detect)))
            for k, bgr in iter_frames(path)
            if k % every == 0
        ]
    with atomic_path(dest) as work:  # OpenCV writes by name: into a temporary, then one rename
        return _predict_video_into(rec, path, detect, work, every, fps, tracker)


def _predict_video_into(
    rec: Recognizer,
    path: str,
    detect: bool,
    dest: Path,
    every: int,
    fps: float,
    tracker: FaceTracker,
) -> list[tuple[int, list[Face]]]:
    import cv2

    from .annotate import annotate

    writer, results = None, []
    try:
        for k, bgr in iter_frames(path):
            if k % every == 0:
                faces = tracker.update(rec.predict(bgr, color="bgr", detect=detect))
                results.append((k, faces))
            rgb = annotate(bgr[..., ::-1].copy(), results[-1][1] if results else [])
            if writer is None:
                h, w = rgb.shape[:2]
                writer = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    raise ImageError(f"{path}: OpenCV cannot write an mp4 video to {dest.parent}")
            writer.write(rgb[..., ::-1].copy())
    finally:
        if writer is not None:
            writer.release()
    return results


def _open_video(path: str):
    require_file(path, error=ImageError)  # OpenCV blocks on a FIFO
    try:
        import cv2
    except ImportError:
        raise ImageError(
            f"{path}: videos need OpenCV: pip install opencv-python-headless"
        ) from None
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ImageError(f"{path}: unreadable video")
    return cap


def video_fps(path: str) -> float:
    """The video's frame rate (25 where the file does not say)."""
    cap = _open_video(path)
    import cv2

    try:
        return cap.get(cv2.CAP_PROP_FPS) or 25.0
    finally:
        cap.release()


def video_frame_count(path: str) -> int:
    """The frame count the container states (an estimate for some formats: a range past the
    end just reads fewer frames)."""
    cap = _open_video(path)
    import cv2

    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        cap.release()


def iter_frames(path: str, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, object]]:
    """(index, BGR frame) for frames ``start`` to ``stop`` (the end if None), so that one long
    video can be read in pieces by several workers. ImageError when the video yields no frame
    at all, or cannot seek to ``start``."""
    import cv2

    cap = _open_video(path)
    try:
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) != start:
                raise ImageError(f"{path}: cannot seek to frame {start}")
        k, any_frame = start, False
        while stop is None or k < stop:
            ok, bgr = cap.read()
            if not ok:
                break
            any_frame = True
            yield k, bgr
            k += 1
        if not any_frame and start == 0:
            raise ImageError(f"{path}: no frames could be read")
    finally:
        cap.release()


def run_camera(rec: Recognizer, index: int, smooth: float = 0.0) -> None:
    """A live window with the camera's faces labelled and tracked; q or Esc quits."""
    try:
        import cv2
    except ImportError:
        raise RuntimeError("--camera needs OpenCV with a GUI: pip install opencv-python") from None
    from .annotate import annotate

    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise RuntimeError(f"camera {index} could not be opened")
    tracker = FaceTracker(smoothing=smooth)
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            faces = tracker.update(rec.predict(bgr, color="bgr"))
            shown = annotate(bgr[..., ::-1].copy(), faces)[..., ::-1]
            try:
                cv2.imshow("ferkit", shown)
            except cv2.error:
                raise RuntimeError(
                    "--camera needs a display and a GUI build of OpenCV "
                    "(opencv-python, not opencv-python-headless)"
                ) from None
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                break
    finally:
        cap.release()
        cv2.destroyAllWindows()
