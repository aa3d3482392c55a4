import math

import pytest
import torch
from torch import nn

from ferkit.models import create_model, list_models, model_info

EXPECTED_PARAMS = {
    "bkstart": 7_170_983,
    "bkvgg8": 3_405_063,
    "bkvgg10": 4_142_727,
    "bkvgg12": 4_188_903,
    "bkvgg14": 4_926_567,
}


def test_registry_lists_the_five_networks():
    assert list_models() == list(EXPECTED_PARAMS)


@pytest.mark.parametrize("name", list_models())
def test_parameter_count_is_table_iii(name):
    net = create_model(name)
    assert sum(p.numel() for p in net.parameters()) == EXPECTED_PARAMS[name]
    assert model_info(name).params == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name):
    torch.manual_seed(0)
    net = create_model(name)
    x = torch.randn(4, 1, 42, 42)
    out = net(x)
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_eq2_initialisation_and_dropout(name):
    torch.manual_seed(0)
    net = create_model(name)
    layers = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    for m in layers:
        assert torch.count_nonzero(m.bias) == 0
        fan_in = m.weight[0].numel()
        if m.weight.numel() > 5000:  # enough samples for a tight estimate of the std
            assert m.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.1)
    fcs = [m for m in net.classifier if isinstance(m, nn.Linear)]
    drops = [m for m in net.classifier if isinstance(m, nn.Dropout)]
    assert len(drops) == len(fcs) - 1 and all(d.p == 0.5 for d in drops)
    assert isinstance(net.classifier[-1], nn.Linear)  # no dropout on the output layer


def test_feature_map_sizes():
    net = create_model("bkvgg12")
    assert net.features(torch.zeros(1, 1, 42, 42)).shape == (1, 256, 6, 6)
    assert create_model("bkstart").features(torch.zeros(1, 1, 42, 42)).shape == (1, 64, 6, 6)


def test_unknown_and_case_insensitive():
    assert sum(p.numel() for p in create_model("BKVGG8").parameters()) == EXPECTED_PARAMS["bkvgg8"]
    with pytest.raises(ValueError, match="unknown network 'vgg16'"):
        create_model("vgg16")
