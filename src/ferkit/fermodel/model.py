"""A trained model: network + normalisation + labels + loss, ready to score faces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..data.preprocess import Normalizer
from ..geometry import apply_all_views
from ..labels import LABELS
from ..losses import probabilities, view_scores
from ..models import count_params, model_info
from .views import center_crop, view_thetas_for


@dataclass
class ModelMeta:
    """What a model file says about itself besides its tensors."""

    arch: str
    loss: str
    labels: tuple[str, ...] = LABELS
    input_size: int = 42
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    card: dict = field(default_factory=dict)
    temperature: float | None = None  # divides the outputs before the softmax (None: 1)


class FerModel(nn.Module):
    """The network with its fitted normalisation; ``forward`` takes normalised 42x42 crops."""

    def __init__(self, net: nn.Module, normalizer: Normalizer, meta: ModelMeta):
        super().__init__()
        self.net = net
        self.meta = meta
        self.int8 = False  # set by ferkit.fermodel.int8.quantize: an int8 network, CPU only
        self.backend = "torch"  # "onnx" when ``net`` is an ONNX Runtime session (onnx_model)
        self.register_buffer("norm_mean", normalizer.mean.clone().float())
        self.register_buffer("norm_std", normalizer.std.clone().float())

    @property
    def normalizer(self) -> Normalizer:
        return Normalizer(self.norm_mean, self.norm_std)

    @property
    def params(self) -> int:
        """The network's parameter count (Table III), also for an int8 network (whose packed
        weights are not parameters) and an ONNX Runtime one (which has none in torch)."""
        if self.int8 or self.backend != "torch":
            return model_info(self.meta.arch).params
        return count_params(self.net)

    def compute_precision(self, dtype: torch.dtype | None) -> str:
        """What :meth:`score` with autocast ``dtype`` really computes in: int8 networks and
        ONNX Runtime take fp32 whatever is asked (so figures say what they were measured in)."""
        if self.int8:
            return "int8"
        if dtype is None or self.backend != "torch":
            return "fp32"
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.meta.labels

    @property
    def loss(self) -> str:
        return self.meta.loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Grey 48x48 faces (N, 48, 48), uint8 or float -> normalised (N, 1, 48, 48)."""
        return self.normalizer(torch.as_tensor(images).to(self.norm_mean.device))

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
        """Average per-view outputs over ``method``'s views: (N, 48, 48) faces -> (N, 7).

        With ``cells`` (each view's group, as :func:`~ferkit.fermodel.views.view_cells` gives), the
        average is taken per group instead: (N, groups, 7).

        SVM models average raw scores, CE models softmax probabilities (the paper's rule).
        Crops go through the network ``batch`` at a time (128 keeps a 2-core CPU's caches warm:
        ~1.5x the throughput of 2048), so memory stays bounded whatever the data size;
        ``on_chunk(n)`` is called as every ``n`` images are done (for progress bars).
        """
        from ..device import autocast, memory_format

        if self.training:  # eval() walks every module: 0.1 ms a call
            self.eval()
        dev = self.norm_mean.device
        fmt = memory_format(dev)
        if self.int8:
            dtype = None  # int8 kernels take fp32 in and give fp32 out
        if getattr(self, "_layout", None) != fmt:  # once (0.2 ms a call otherwise)
            self.net.to(memory_format=fmt)  # weights in the input's layout: ~2x faster on CPU
            self._layout = fmt
        thetas = view_thetas_for(method).to(dev)
        n_views = thetas.shape[0]
        per_chunk = max(1, batch // n_views)  # images per resampling chunk
        out = []
        for i in range(0, len(images), per_chunk):
            x = self.preprocess(images[i : i + per_chunk])
            if method == "center":  # an exact crop: slicing is cheaper than resampling
                crops = center_crop(x)
            else:
                crops = apply_all_views(x, thetas).flatten(0, 1)
            scores = []
            for k in range(0, len(crops), batch):
                with autocast(dev, dtype):
                    s = self.net(crops[k : k + batch].contiguous(memory_format=fmt))
                scores.append(view_scores(s, self.loss))
            out.append(_average(torch.cat(scores).view(x.shape[0], n_views, -1), cells))
            if on_chunk is not None:
                on_chunk(x.shape[0])
        if out:
            return torch.cat(out)
        return _average(torch.zeros(0, n_views, len(self.labels), device=dev), cells)

    def probabilities(self, averaged: torch.Tensor) -> torch.Tensor:
        """Class probabilities from :meth:`score`'s output, at the model's fitted temperature
        (see ``temperature``; a model without one gives the plain softmax of losses)."""
        from .temperature import calibrated

        if self.meta.temperature is None:
            return probabilities(averaged, self.loss)
        return calibrated(averaged, self.loss, self.meta.temperature)


def _average(per_view: torch.Tensor, cells: torch.Tensor | None) -> torch.Tensor:
    """(N, V, K) per-view outputs -> (N, K) means over all views, or with ``cells`` (each view's
    group) (N, G, K) means over the views of each of G groups."""
    if cells is None:
        return per_view.mean(1)
    cells = cells.to(per_view.device)
    groups = int(cells.max()) + 1
    total = per_view.new_zeros(per_view.shape[0], groups, per_view.shape[2])
    total.index_add_(1, cells, per_view)
    return total / torch.bincount(cells, minlength=groups).to(per_view)[None, :, None]
