"""The lever study's training options (issue: a fast recipe for BKVGG12): each does what its
help says, is refused where it would do nothing, and is recorded on the model card."""

import pytest
import torch

from ferkit.data.augment import (
    AugmentConfig,
    alternating_mirror,
    augment,
    ramped_strength,
    random_erase,
)
from ferkit.models import create_model
from ferkit.models.init import dirac_init, whiten_first_conv
from ferkit.models.norm import batchnorms, with_batchnorm
from ferkit.training.averaging import decay_at, recompute_batchnorm, update_ema
from ferkit.training.components import make_optimizer
from ferkit.training.config import TrainConfig


def _flat(n: int = 64) -> torch.Tensor:
    return torch.ones(n, 1, 48, 48)


def test_ranges_are_set_separately_and_scaled_together():
    cfg = AugmentConfig.from_ranges(rotation=10, rescale=0.2, shift=4, erase=0.3)
    assert (cfg.max_angle, cfg.min_side, cfg.max_side) == pytest.approx((10, 38.4, 57.6))
    assert (cfg.max_shift, cfg.erase) == (4, 0.3)
    half = cfg.scaled(0.5)
    assert (half.max_angle, half.max_shift, half.erase) == (5, 2, 0.3)
    assert (half.min_side, half.max_side) == (pytest.approx(43.2), pytest.approx(52.8))
    assert AugmentConfig.from_ranges() == AugmentConfig()  # the paper's


def test_shift_moves_views_past_the_face():
    """Without rotation or rescale a 42-px crop stays inside a 48-px face; a shift leaves it."""
    still = AugmentConfig.from_ranges(rotation=0, rescale=0)
    moved = AugmentConfig.from_ranges(rotation=0, rescale=0, shift=12)
    g = torch.Generator().manual_seed(0)
    assert augment(_flat(), g, still).min() > 0.99
    outside = (augment(_flat(), g, moved) < 0.01).flatten(1).any(1)
    assert outside.float().mean() > 0.5


def test_erasing_blanks_one_rectangle_of_the_documented_size_in_the_given_share():
    g = torch.Generator().manual_seed(0)
    views = random_erase(torch.ones(400, 1, 42, 42), 0.5, g)
    blank = (views == 0).flatten(1).float().mean(1)
    hit = blank > 0
    assert 0.4 < hit.float().mean() < 0.6
    assert blank[hit].min() >= 0.015 and blank[hit].max() <= 0.36
    assert torch.equal(random_erase(torch.ones(8, 1, 42, 42), 0.0, g), torch.ones(8, 1, 42, 42))


def test_the_strength_ramps_from_its_start_to_the_final_strength():
    assert ramped_strength(1.0, 0.25, 1, 13) == 0.25
    assert ramped_strength(1.0, 0.25, 7, 13) == pytest.approx(0.625)
    assert ramped_strength(1.0, 0.25, 13, 13) == 1.0
    assert ramped_strength(0.5, None, 1, 13) == 0.5


def test_alternating_mirroring_shows_each_face_both_ways_in_two_epochs():
    bits = torch.randint(0, 2, (100,), generator=torch.Generator().manual_seed(0))
    a, b = alternating_mirror(bits, 3), alternating_mirror(bits, 4)
    assert torch.equal(a, ~b) and 0.3 < a.float().mean() < 0.7
    left = torch.zeros(2, 1, 48, 48)
    left[..., :24] = 1.0
    plain = AugmentConfig.from_ranges(rotation=0, rescale=0)
    views = augment(left, torch.Generator().manual_seed(0), plain, torch.tensor([False, True]))
    assert views[0, ..., :10].mean() > 0.9 and views[1, ..., :10].mean() < 0.1


def test_whitening_init_decorrelates_the_first_layers_patches():
    torch.manual_seed(0)
    faces = torch.nn.functional.avg_pool2d(torch.randn(64, 1, 46, 46), 3, 1)  # correlated
    net = create_model("bkvgg12")
    assert whiten_first_conv(net, faces, eps=0.0) == 18  # 9 eigenvectors, +- each
    conv = net.features[0]
    out = torch.nn.functional.conv2d(faces, conv.weight[:9])  # no padding: whole patches
    flat = out.permute(0, 2, 3, 1).reshape(-1, 9).double()
    cov = flat.T @ flat / len(flat)
    assert torch.allclose(cov, torch.eye(9, dtype=torch.float64), atol=1e-3)
    assert torch.equal(conv.weight[9:18], -conv.weight[:9])


def test_dirac_init_passes_the_input_through_same_width_convolutions():
    net = create_model("bkvgg12")
    assert dirac_init(net) == 8  # every conv after the first: none narrows
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    same = convs[1]  # 32 -> 32
    x = torch.randn(2, 32, 10, 10)
    assert torch.allclose(same(x), x, atol=1e-6)
    wider = convs[2]  # 32 -> 64: the first 32 filters pass the input through
    assert torch.allclose(wider(x)[:, :32], x, atol=1e-6)


def test_a_fixed_batchnorm_scale_is_not_trained_and_shifts_get_their_own_rate():
    net = with_batchnorm(create_model("bkvgg8"), learn_scale=False, momentum=0.3)
    assert all(m.momentum == 0.3 and not m.weight.requires_grad for m in batchnorms(net))
    cfg = TrainConfig(data="x", out="y", norm_layers="bn", bn_scale=False, bn_bias_lr=8.0)
    opt = make_optimizer(cfg, net)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(m.weight) in in_opt for m in batchnorms(net))
    shifts = next(g for g in opt.param_groups if g["lr_scale"] == 8.0)
    assert {id(p) for p in shifts["params"]} == {id(m.bias) for m in batchnorms(net)}
    assert shifts["weight_decay"] == 0.0  # training sets each group's rate: test_norm.py
    # without --bn-bias-lr: one BatchNorm group, so runs begun before it stay resumable
    plain = make_optimizer(TrainConfig(data="x", out="y", norm_layers="bn"), net)
    assert len(plain.param_groups) == 2


def test_a_late_average_follows_the_weights_until_it_starts():
    a, b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    assert decay_at(0.99, 5, 10) == 0.0 and decay_at(0.99, 10, 10) == pytest.approx(0.1)
    update_ema(a, b, decay_at(0.99, 5, 10))
    assert torch.equal(a.weight, b.weight)


def test_recomputed_batchnorm_statistics_are_the_images_own():
    torch.manual_seed(0)
    net = with_batchnorm(create_model("bkvgg8")).eval()
    images = 3 + 2 * torch.randn(40, 1, 42, 42)
    recompute_batchnorm(net, images, batch_size=20)
    first_conv, first_norm = net.features[0], net.features[1]
    with torch.no_grad():
        acts = first_conv(images)
    assert torch.allclose(first_norm.running_mean, acts.mean((0, 2, 3)), atol=1e-4)
    assert first_norm.momentum == 0.1 and not net.training


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        (dict(augment=False, erase=0.5), "--erase"),
        (dict(augment=False, mirror="alternate"), "--mirror"),
        (dict(augment=False, augment_ramp_from=0.2), "--augment-ramp-from"),
        (dict(bn_bias_lr=4.0), "--bn-bias-lr"),
        (dict(bn_scale=False), "--no-bn-scale"),
        (dict(ema_start=0.5), "--ema-start"),
        (dict(ema_bn="recomputed"), "--ema-bn"),
    ],
)
def test_a_lever_that_would_do_nothing_is_refused(changes, flag):
    with pytest.raises(ValueError, match=f"^{flag} has no effect without"):
        TrainConfig(data="x", out="y", **changes).validate()


def test_the_card_records_every_lever(tiny_run):
    import ferkit
    from ferkit.export.workflows import build_card, training_procedure

    model = ferkit.load_model(tiny_run)
    model.meta.config.update(mirror="alternate", whiten_init=True, erase=0.25, bn_bias_lr=4.0)
    card = build_card(model, "fp32", None, None)
    assert card["training"]["mirror"] == "alternate" and card["training"]["erase"] == 0.25
    assert card["training"]["whiten_init"] is True and "data" not in card["training"]
    text = training_procedure(model.meta.config)
    for words in ("--mirror alternate", "--whiten-init", "--erase 0.25", "--bn-bias-lr 4.0"):
        assert words in text


def test_augment_preview_draws_the_augmentation_train_would_use():
    from ferkit.cli.main import build_parser
    from ferkit.training.config import augment_config

    args = build_parser().parse_args(
        ["augment-preview", "--data", "d", "--out", "o.png", "--rotation", "10", "--erase", "0.5"]
    )
    assert augment_config(vars(args)) == AugmentConfig.from_ranges(rotation=10, erase=0.5)
    args = build_parser().parse_args(["augment-preview", "--data", "d", "--out", "o.png"])
    assert augment_config(vars(args)) == AugmentConfig()


def test_a_preview_names_the_augmentation_it_draws():
    assert AugmentConfig().describe() == "mirror, rotate +-45 deg, side 42-54 px, crop"
    shaped = AugmentConfig.from_ranges(rotation=10, rescale=0.2, shift=4, erase=0.5).scaled(0.5)
    assert shaped.describe().endswith(
        "rotate +-5 deg, side 43-53 px, crop, shift +-2 px, erase 0.5"
    )
