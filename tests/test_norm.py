"""Train-time BatchNorm folded away: the saved network is the paper's, scoring the same."""

import pytest
import torch
from synth import tiny_config

import ferkit
from ferkit.fermodel.files import load_model
from ferkit.models import create_model, list_models
from ferkit.models.norm import fold_batchnorm, with_batchnorm
from ferkit.training.averaging import ema_decay, update_ema
from ferkit.training.loop import train
from ferkit.training.run_folder import load_checkpoint


def _trained_looking(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """BatchNorm statistics and affine maps far from their initial identity."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(0.1 + 3 * torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))
    return net.eval()


@pytest.mark.parametrize("arch", list_models())
def test_folding_gives_the_papers_network_with_equal_scores(arch):
    torch.manual_seed(0)
    bn = _trained_looking(with_batchnorm(create_model(arch)))
    n_norm = sum(isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d) for m in bn.modules())
    n_weighted = sum(isinstance(m, torch.nn.Conv2d | torch.nn.Linear) for m in bn.modules())
    assert n_norm == n_weighted - 1  # every convolution and hidden FC layer, not the output

    folded = fold_batchnorm(bn, create_model(arch)).eval()
    plain = create_model(arch)
    a, b = folded.state_dict(), plain.state_dict()
    assert list(a) == list(b) and all(a[k].shape == b[k].shape for k in a)
    assert sum(p.numel() for p in folded.parameters()) == sum(p.numel() for p in plain.parameters())
    x = torch.randn(16, 1, 42, 42)
    with torch.no_grad():
        want, got = bn(x), folded(x)
    assert (want - got).abs().max() <= 1e-4 * max(1.0, want.abs().max().item())
    assert torch.equal(want.argmax(1), got.argmax(1))


def test_folding_refuses_another_architecture():
    with pytest.raises(ValueError, match="weighted layers"):
        fold_batchnorm(with_batchnorm(create_model("bkvgg8")), create_model("bkvgg12"))


def test_ema_is_a_moving_average():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = a.weight.detach().clone()
    update_ema(a, b, 0.75)
    assert torch.allclose(a.weight, 0.75 * before + 0.25 * b.weight)
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10**6) == 0.999


FAST = dict(
    epochs=2,
    norm_layers="bn",
    optimizer="adamw",
    lr=0.002,
    weight_decay=0.05,
    ema=0.9,
    head_init="zero",
    schedule="cosine",
)
#: every lever of the study at once (issue: a lever study for BKVGG12)
LEVERS = dict(
    FAST,
    optimizer="sgd",
    nesterov=True,
    weight_decay=5e-4,
    rotation=10.0,
    rescale=0.2,
    shift=3.0,
    erase=0.5,
    augment_ramp_from=0.25,
    mirror="alternate",
    whiten_init=True,
    dirac_init=True,
    bn_scale=False,
    bn_bias_lr=4.0,
    bn_momentum=0.3,
    ema_start=0.4,
    ema_bn="recomputed",
)


@pytest.mark.parametrize("changes", [FAST, LEVERS], ids=["fast", "levers"])
def test_fast_procedure_saves_the_papers_network_and_resumes_bit_exact(
    small_csv, tmp_path, changes
):
    run = tmp_path / "fast"
    result = train(tiny_config(small_csv, run, **changes))
    assert result.best_val_acc > 0.3  # beyond chance (1/7) after 18 steps

    model = load_model(run)  # the unmodified loader: the file is the paper's network
    plain = create_model("bkstart")
    assert sum(p.numel() for p in model.net.parameters()) == sum(
        p.numel() for p in plain.parameters()
    )
    assert all(model.meta.config[k] == v for k, v in changes.items())
    rates = sorted(
        {g["lr"] for g in load_checkpoint(run / "checkpoint.pt")["optimizer"]["param_groups"]}
    )
    assert rates[-1] == pytest.approx(rates[0] * changes.get("bn_bias_lr", 1.0))

    # the saved network scores as the unfolded average in the checkpoint (the best epoch is
    # the last here when validation improved; compare against the checkpoint's own epoch)
    ck = load_checkpoint(run / "checkpoint.pt")
    if ck["best_epoch"] == ck["epoch"]:
        bn = with_batchnorm(create_model("bkstart"))
        bn.load_state_dict(ck["ema"])
        bn.eval()
        faces = torch.randn(32, 1, 42, 42)
        with torch.no_grad():
            want = bn(faces)
            got = model.net(faces)
        assert (want - got).abs().max() <= 1e-4 * max(1.0, want.abs().max().item())

    # a kill at the first step of epoch 2, then --resume: the same unfolded state as the
    # straight run (schedules, ramps and the average's start count the run's total epochs)
    import ferkit.training.epoch as tr

    real_step, calls = tr.train_step, []
    per_epoch = 630 // 64  # 700 synthetic Training faces, 10 % held out, batch 64

    def killed_in_epoch_two(*args, **kw):
        calls.append(1)
        if len(calls) == per_epoch + 1:
            raise KeyboardInterrupt
        return real_step(*args, **kw)

    half = tmp_path / "half"
    cfg = tiny_config(small_csv, half, checkpoint_minutes=0, **changes)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tr, "train_step", killed_in_epoch_two)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    assert load_checkpoint(half / "checkpoint.pt")["epoch"] == 1
    train(cfg, resume=True)
    a, b = load_checkpoint(run / "checkpoint.pt"), load_checkpoint(half / "checkpoint.pt")
    for key in ("model", "ema"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)


def test_paper_procedure_checkpoint_has_no_average(tiny_run):
    ck = load_checkpoint(tiny_run / "checkpoint.pt")
    assert "ema" not in ck
    assert not any(".running_mean" in k for k in ck["model"])
    assert ferkit.load_model(tiny_run).meta.config.get("norm_layers", "none") == "none"
