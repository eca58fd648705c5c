"""ce and label smoothing against the SPEC's test vectors (natural log)."""

import math

import pytest
import torch

from lossbench.errors import UserError
from lossbench.losses import build_loss


def test_spec_vectors_4_classes():
    z = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.1, 0.1, 0.1, 0.1]])
    y = torch.tensor([2, 3])
    assert math.isclose(build_loss("ce")(z, y).item(), 1.364415, abs_tol=1e-6)
    assert math.isclose(build_loss("label_smoothing", smoothing=0.1)(z, y).item(), 1.366915, abs_tol=1e-6)


def test_spec_vectors_exclusive_and_uniform():
    z = torch.tensor([[0.1, 8, 0.1], [0.1, 0.1, 8]])
    y = torch.tensor([1, 2])
    assert math.isclose(build_loss("label_smoothing", smoothing=0.2, exclusive=True)(z, y).item(), 1.580741, abs_tol=1e-6)
    assert math.isclose(build_loss("label_smoothing", smoothing=0.2)(z, y).item(), 1.054075, abs_tol=1e-6)


def test_spec_vector_from_probabilities():
    z = torch.tensor([[0.1, 0.1, 0.1, 0.36, 0.34]], dtype=torch.float64).log()
    y = torch.tensor([3])
    assert math.isclose(build_loss("ce")(z, y).item(), 1.021651, abs_tol=1e-6)
    assert math.isclose(build_loss("label_smoothing", smoothing=0.1)(z, y).item(), 1.099650, abs_tol=1e-6)


def test_weighted_mean_and_ignore_index_follow_torch():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 5, generator=g)
    y = torch.tensor([0, 1, 2, 3, 4, -100, 1, 2])
    w = torch.rand(5, generator=g) + 0.5
    for reduction in ("mean", "sum", "none"):
        expected = torch.nn.CrossEntropyLoss(weight=w, reduction=reduction)(z, y)
        got = build_loss("label_smoothing", smoothing=0.0, weight=w, reduction=reduction)(z, y)
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_smoothing_out_of_range(value):
    with pytest.raises(UserError, match=rf"loss.smoothing={value} is invalid: it must be in \[0, 1\)"):
        build_loss("label_smoothing", smoothing=value)


def test_unknown_loss_lists_the_names():
    with pytest.raises(UserError, match="loss='focalx' is unknown: valid losses are ce, label_smoothing"):
        build_loss("focalx")
