"""Several trained models as one: each scores the same views of a face, and their outputs are
averaged, as one model averages its views.

The rule extends the paper's (III-D): models with the same loss average what each of them
averages over views (raw scores for L2-SVM models, probabilities for cross-entropy ones);
models with different losses average their calibrated probabilities (each at its own fitted
temperature), since raw scores and probabilities do not share a scale. An ensemble of one
model scores exactly as that model.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .model import FerModel, ModelMeta

#: Faces scored by every member before the progress callback hears of them.
CHUNK = 256


class Ensemble:
    """:class:`FerModel`'s scoring interface (``score``, ``probabilities``, ``labels``,
    ``loss``, ``meta``, ``params``) over several models."""

    int8 = False

    def __init__(self, members: Sequence[FerModel]):
        if not members:
            raise ValueError("an ensemble needs at least one model")
        labels = members[0].labels
        for m in members[1:]:
            if m.labels != labels:
                raise ValueError(
                    f"the models' labels differ ({', '.join(labels)} against "
                    f"{', '.join(m.labels)}): an ensemble averages the same classes"
                )
        self.members = list(members)
        losses = {m.loss for m in members}
        #: same loss: the members' outputs are averaged as they are; else their probabilities
        self.same_loss = len(losses) == 1
        loss = members[0].loss if self.same_loss else "ce"
        temps = [m.meta.temperature for m in members]
        # the members' mean temperature for same-loss outputs (not refitted: ``ferkit evaluate``
        # reports the ensemble's calibration error); averaged probabilities need none
        temperature = statistics.fmean(temps) if self.same_loss and None not in temps else None
        self.meta = ModelMeta(
            arch="+".join(m.meta.arch for m in members),
            loss=loss,
            labels=labels,
            config={"members": [_member_config(m) for m in members]},
            temperature=temperature,
        )
        backends = {m.backend for m in members}
        self.backend = backends.pop() if len(backends) == 1 else "mixed"

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    @property
    def loss(self) -> str:
        return self.meta.loss

    @property
    def params(self) -> int:
        return sum(m.params for m in self.members)

    @property
    def norm_mean(self) -> torch.Tensor:
        """The first member's (it says which device the ensemble runs on)."""
        return self.members[0].norm_mean

    def to(self, device) -> Ensemble:
        for m in self.members:
            m.to(device)
        return self

    def compute_precision(self, dtype: torch.dtype | None) -> str:
        precisions = dict.fromkeys(m.compute_precision(dtype) for m in self.members)
        return "+".join(precisions)

    @torch.no_grad()
    def score(
        self,
        images: torch.Tensor | np.ndarray,
        method: str = "center",
        batch: int = 128,
        dtype: torch.dtype | None = None,
        on_chunk: Callable[[int], None] | None = None,
        cells: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The members' :meth:`FerModel.score` outputs averaged (their calibrated
        probabilities where the losses differ); the same shapes."""
        out = []
        for i in range(0, len(images), CHUNK):
            part = images[i : i + CHUNK]
            scores = [
                self._output(m, m.score(part, method, batch, dtype, None, cells))
                for m in self.members
            ]
            out.append(torch.stack([s.to(scores[0].device) for s in scores]).mean(0))
            if on_chunk is not None:
                on_chunk(len(part))
        if out:
            return torch.cat(out)
        return self.members[0].score(images, method, batch, dtype, None, cells)

    def _output(self, member: FerModel, averaged: torch.Tensor) -> torch.Tensor:
        return averaged if self.same_loss else member.probabilities(averaged)

    def probabilities(self, averaged: torch.Tensor) -> torch.Tensor:
        """Class probabilities from :meth:`score`'s output (averaged probabilities are
        already; same-loss outputs at the members' mean temperature)."""
        from .temperature import calibrated

        return calibrated(averaged, self.loss, self.meta.temperature)


def _member_config(m: FerModel) -> dict:
    return {"arch": m.meta.arch, "loss": m.loss, "temperature": m.meta.temperature}


def load_models(models: Sequence, device, int8: bool = False, backend: str = "torch"):
    """Models (paths, None for the shipped one, or loaded :class:`FerModel`) on ``device``:
    the model itself for one, an :class:`Ensemble` for several."""
    from .onnx import load_with_backend

    members = []
    for m in models:
        if isinstance(m, FerModel):
            if int8 and not m.int8:
                raise ValueError("int8=True needs a model path, or a model loaded with int8=True")
            members.append(m.to(device))
        else:
            members.append(load_with_backend(m, device, int8=int8, backend=backend))
    return members[0] if len(members) == 1 else Ensemble(members)
