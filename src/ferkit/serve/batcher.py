"""Faces of concurrent requests through the network together.

Each request decodes and detects in a worker thread of its own, then hands its 48x48 crops to
the :class:`FaceBatcher`, whose one inference thread waits up to ``window_s`` for more, runs one
network call for up to ``max_faces`` faces (per view setting), and hands each request its own
faces back. One face costs about as much network time alone as in a batch of eight, so under
load this turns many small calls into few large ones, while the workers keep the other cores
busy decoding and detecting.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from ..predict.detect import Box
from ..predict.recognizer import Face, Recognizer


@dataclass
class _Job:
    crops: np.ndarray
    boxes: list[Box]
    views: str | None
    done: Future


class FaceBatcher:
    """Collects faces from many threads into batched :meth:`Recognizer.classify` calls.

    ``window_s`` 0 is no batching: each request's faces go through the network alone, as
    soon as the inference thread is free (what the server did before it batched).
    """

    def __init__(self, recognizer: Recognizer, window_s: float = 0.005, max_faces: int = 64):
        self.recognizer, self.window_s, self.max_faces = recognizer, window_s, max_faces
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self.calls = 0  # network calls made (a batch may serve several requests)
        self._thread = threading.Thread(target=self._run, name="ferkit-batcher", daemon=True)
        self._thread.start()

    def classify(self, crops: np.ndarray, boxes: list[Box], views: str | None) -> list[Face]:
        """``crops``' faces, once the batch they joined has been through the network."""
        if len(crops) == 0:
            return []
        job = _Job(crops, list(boxes), views, Future())
        self._jobs.put(job)
        return job.done.result()

    def close(self) -> None:
        """Stop the inference thread once the jobs already queued are done."""
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (first := self._jobs.get()) is not None:
            jobs, stop = [first], False
            deadline = time.monotonic() + self.window_s
            while self.window_s > 0 and sum(len(j.crops) for j in jobs) < self.max_faces:
                try:
                    job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            for views in {j.views for j in jobs}:
                self._classify([j for j in jobs if j.views == views], views)
            if stop:
                return

    def _classify(self, jobs: list[_Job], views: str | None) -> None:
        try:
            faces = self.recognizer.classify(
                np.concatenate([j.crops for j in jobs]), [b for j in jobs for b in j.boxes], views
            )
            self.calls += 1
        except Exception as e:  # every waiting request gets the error, none hangs
            for j in jobs:
                j.done.set_exception(e)
            return
        start = 0
        for j in jobs:
            j.done.set_result(faces[start : start + len(j.crops)])
            start += len(j.crops)
