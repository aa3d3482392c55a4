import math

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.data.augment import AugmentConfig, augment
from ferkit.data.preprocess import Normalizer
from ferkit.fermodel.model import FerModel, ModelMeta
from ferkit.fermodel.views import METHODS, center_crop, num_views, view_params, view_thetas_for
from ferkit.geometry import apply_all_views


def blob(cy: float, cx: float, sigma: float = 1.2) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    return torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).view(1, 1, 48, 48)


def centroid(img: torch.Tensor) -> tuple[float, float]:
    h, w = img.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    m = img.sum()
    return float((img * yy).sum() / m), float((img * xx).sum() / m)


def expected_position(p, side, angle, ox, oy, mirror):
    """Where input pixel p=(y, x) lands: mirror, rescale about the centre, rotate, crop."""
    y, x = p[0] + 0.5, p[1] + 0.5  # pixel centres in continuous coordinates
    if mirror:
        x = 48 - x
    s = side / 48
    dx, dy = (x - 24) * s, (y - 24) * s
    a = math.radians(angle)
    # the sampling map applies R(-angle) to output offsets, so content turns by R(angle)
    rx = math.cos(a) * dx - math.sin(a) * dy
    ry = math.sin(a) * dx + math.cos(a) * dy
    return ry + side / 2 - oy - 0.5, rx + side / 2 - ox - 0.5


def test_view_counts():
    assert [num_views(m) for m in METHODS] == [1, 10, 648]


def test_center_and_eval1_are_exact_crops():
    x = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48)
    c = apply_all_views(x, view_thetas_for("center"))[0, 0, 0]
    assert torch.allclose(c, x[0, 0, 3:45, 3:45], atol=1e-2)
    views = apply_all_views(x, view_thetas_for("eval1"))[0, :, 0]
    crops = [
        x[0, 0, y : y + 42, xx : xx + 42] for y, xx in [(0, 0), (0, 6), (6, 0), (6, 6), (3, 3)]
    ]
    expected = crops + [c.flip(-1) for c in crops]
    for v in views:  # every view is one of the 5 crops or their mirrors, each exactly once
        matches = [k for k, e in enumerate(expected) if torch.allclose(v, e, atol=1e-2)]
        assert len(matches) == 1
    assert torch.equal(center_crop(x)[0, 0], x[0, 0, 3:45, 3:45])


@pytest.mark.parametrize("method", ["eval1", "eval2"])
def test_a_marked_spot_lands_where_it_should(method):
    p = (17.0, 28.0)
    x = blob(*p)
    views = apply_all_views(x, view_thetas_for(method))[0, :, 0]
    params = view_params(method)
    for k in range(0, len(params), 7 if method == "eval2" else 1):
        got = centroid(views[k])
        want = expected_position(p, *params[k])
        assert got == pytest.approx(want, abs=0.25), (k, params[k])


def test_eval2_has_648_distinct_views():
    x = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    v = apply_all_views(x, view_thetas_for("eval2"))[0].flatten(1)
    assert v.shape == (648, 42 * 42)
    assert len(torch.unique(v.round(decimals=4), dim=0)) == 648


def test_views_of_a_batch_match_views_one_by_one():
    x = torch.rand(3, 1, 48, 48)
    th = view_thetas_for("eval1")
    together = apply_all_views(x, th)
    for i in range(3):
        assert torch.allclose(together[i], apply_all_views(x[i : i + 1], th)[0])


def test_augment_shapes_ranges_and_reproducibility():
    x = blob(24, 24).repeat(64, 1, 1, 1)
    a = augment(x, torch.Generator().manual_seed(1))
    b = augment(x, torch.Generator().manual_seed(1))
    c = augment(x, torch.Generator().manual_seed(2))
    assert a.shape == (64, 1, 42, 42) and torch.equal(a, b) and not torch.equal(a, c)
    assert len(torch.unique(a.flatten(1), dim=0)) == 64  # fresh parameters per image
    # the centred blob stays inside: rescale <= 54/48 and crop offsets keep the centre within 6 px
    for img in a:
        cy, cx = centroid(img[0])
        assert abs(cy - 20.5) <= 6.5 and abs(cx - 20.5) <= 6.5


def test_augment_strength_scales_rotation_and_rescaling_about_the_identity():
    paper = AugmentConfig()
    assert paper.scaled(1.0) == paper
    half = paper.scaled(0.5)
    assert (half.max_angle, half.min_side, half.max_side, half.p_mirror) == (22.5, 45, 51, 0.5)
    x = blob(14, 24).repeat(500, 1, 1, 1)  # a spot above centre: rotations swing it sideways
    swing = {}
    for s in (0.25, 1.0):
        a = augment(x, torch.Generator().manual_seed(0), paper.scaled(s))
        swing[s] = torch.tensor([abs(centroid(img[0])[1] - 20.5) for img in a]).mean()
    assert swing[0.25] < 0.6 * swing[1.0]


def test_augment_mirrors_about_half_the_time():
    x = blob(24, 10).repeat(2000, 1, 1, 1)  # a spot left of centre: mirrored it is right of it
    a = augment(x, torch.Generator().manual_seed(0))
    xs = torch.tensor([centroid(img[0])[1] for img in a[:400]])
    assert 0.38 < (xs > 20.5).float().mean() < 0.62


class _MeanNet(nn.Module):
    """A stand-in network whose 7 scores depend on the crop, to check averaging exactly."""

    def forward(self, x):
        m = x.float().mean((1, 2, 3))
        return torch.stack([m * k for k in range(7)], 1)


@pytest.mark.parametrize("loss", ["svm", "ce"])
def test_score_averages_scores_or_probabilities(loss):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    norm = Normalizer.fit(imgs)
    model = FerModel(_MeanNet(), norm, ModelMeta(arch="bkstart", loss=loss))
    got = model.score(imgs, "eval1", batch=7)  # batch not a multiple of 10 on purpose
    crops = apply_all_views(norm(imgs), view_thetas_for("eval1"))
    per_view = _MeanNet()(crops.flatten(0, 1)).view(5, 10, 7)
    want = per_view.mean(1) if loss == "svm" else per_view.softmax(-1).mean(1)
    assert torch.allclose(got, want, atol=1e-5)


def test_center_score_is_the_network_on_the_centre_crop():
    imgs = np.random.default_rng(1).integers(0, 256, (4, 48, 48)).astype(np.uint8)
    norm = Normalizer.fit(imgs)
    model = FerModel(_MeanNet(), norm, ModelMeta(arch="bkstart", loss="svm"))
    resampled = _MeanNet()(apply_all_views(norm(imgs), view_thetas_for("center")).flatten(0, 1))
    assert torch.allclose(model.score(imgs, "center"), resampled, atol=1e-4)
    assert torch.allclose(
        model.score(imgs, "center"), _MeanNet()(center_crop(norm(imgs))), atol=1e-6
    )


def test_view_cells_group_eval2_by_rescaling_and_rotation():
    from ferkit.fermodel.views import EVAL2_ANGLES, EVAL2_SIDES, view_cells

    index, cells = view_cells("eval2")
    assert len(cells) == 36 and set(cells) == {(s, a) for s in EVAL2_SIDES for a in EVAL2_ANGLES}
    assert torch.bincount(index).tolist() == [18] * 36  # 9 crops x 2 mirrors each
    for i, (side, angle, *_) in enumerate(view_params("eval2")):
        assert cells[index[i]] == (side, angle)
    assert view_cells("eval1")[1] == ((48, 0.0),) and view_cells("center")[0].tolist() == [0]


def test_score_per_cell_is_the_mean_of_each_cells_views():
    from ferkit.fermodel.views import view_cells

    imgs = np.random.default_rng(2).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    norm = Normalizer.fit(imgs)
    model = FerModel(_MeanNet(), norm, ModelMeta(arch="bkstart", loss="svm"))
    index, cells = view_cells("eval2")
    got = model.score(imgs, "eval2", batch=100, cells=index)
    assert got.shape == (3, 36, 7)
    per_view = _MeanNet()(apply_all_views(norm(imgs), view_thetas_for("eval2")).flatten(0, 1))
    per_view = per_view.view(3, 648, 7)
    for c in (0, 17, 35):
        assert torch.allclose(got[:, c], per_view[:, index == c].mean(1), atol=1e-5)
    assert torch.allclose(got.mean(1), model.score(imgs, "eval2", batch=100), atol=1e-5)
