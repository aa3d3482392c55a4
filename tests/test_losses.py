import pytest
import torch

from ferkit.losses import cross_entropy_loss, get_loss, l2_svm_loss


def test_l2_svm_by_hand():
    s = torch.tensor([[2.0, 1.5, -1.0], [0.0, 0.2, 0.1]])
    y = torch.tensor([0, 2])
    # row 0: j=1: max(0, 1.5-2+1)^2 = 0.25; j=2: max(0, -1-2+1)^2 = 0
    # row 1: j=0: max(0, 0-0.1+1)^2 = 0.81; j=1: max(0, 0.2-0.1+1)^2 = 1.21
    expected = (0.25 + 0.0 + 0.81 + 1.21) / 2
    assert l2_svm_loss(s, y).item() == pytest.approx(expected)
    # not MultiMarginLoss(p=2), which divides by the number of classes as well
    mm = torch.nn.MultiMarginLoss(p=2)(s, y).item()
    assert mm == pytest.approx(expected / 3)


def test_cross_entropy_by_hand():
    s = torch.tensor([[1.0, 2.0, 3.0]])
    y = torch.tensor([1])
    expected = -(2.0 - torch.log(torch.exp(torch.tensor([1.0, 2.0, 3.0])).sum())).item()
    assert cross_entropy_loss(s, y).item() == pytest.approx(expected, rel=1e-6)


def test_svm_gradient_only_from_violations():
    s = torch.tensor([[3.0, 0.0, 2.5]], requires_grad=True)
    l2_svm_loss(s, torch.tensor([0])).backward()
    # only j=2 violates the margin: d/ds of (s2 - s0 + 1)^2 = 2 * 0.5
    assert s.grad.tolist() == [[-1.0, 0.0, 1.0]]


def test_get_loss():
    assert get_loss("svm") is l2_svm_loss and get_loss("ce") is cross_entropy_loss
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("hinge")
