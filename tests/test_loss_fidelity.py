"""The losses as their authors wrote them: the branches, defaults and
conventions of their published code, each checked against the authors' formula
or PyTorch, and each stated by ``lossbench losses NAME``."""

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import reference_losses as ref
from lossbench.losses.describe import describe_loss
from lossbench.losses.knob_tables import knob_defaults
from lossbench.losses.registry import LOSSES, build_loss

COUNTS = [500, 300, 180, 100, 60, 40, 23, 14, 8, 5]


def _batch(n=12, k=10, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g, dtype=dtype) * 3, torch.randint(0, k, (n,), generator=g)


# ---- arcface: the branch past theta = pi - m -------------------------------------------------------


def _arcface_on_angle(theta: torch.Tensor, **knobs) -> torch.Tensor:
    """Per-sample loss of 2-class arcface with the target at angle theta and the
    other class's cosine held at 0 (so that only the target's angle moves)."""
    loss = build_loss("arcface", num_classes=3, embedding_dim=3, reduction="none", **knobs).double()
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]))
    x = torch.stack([torch.cos(theta), torch.sin(theta), torch.zeros_like(theta)], dim=1)
    return loss(x, torch.zeros(len(theta), dtype=torch.long))


@pytest.mark.parametrize("m", [0.5, 0.3, 0.8])
def test_arcface_loss_rises_with_the_angle_to_its_class(m):
    theta = torch.linspace(0.0, math.pi, 2001, dtype=torch.float64)
    values = _arcface_on_angle(theta, s=64.0, m=m)
    assert (values[1:] >= values[:-1] - 1e-9).all()
    # the easy margin (the authors' option) drops back to cos t at t = pi/2, as documented
    easy = _arcface_on_angle(theta, s=64.0, m=m, easy_margin=True)
    assert (easy[1:] < easy[:-1] - 1e-3).sum() == 1
    assert "pi/2" in describe_loss("arcface")


def test_arcface_matches_the_authors_branches():
    s, m = 64.0, 0.5
    theta = torch.tensor([0.3, 1.2, 2.0, 2.6, 2.8, 3.1], dtype=torch.float64)
    cos = torch.cos(theta)
    # insightface arcface_torch: cos(t + m) while t <= pi - m, else cos t - m sin m;
    # easy margin: cos(t + m) while cos t > 0, else cos t
    hard = torch.where(theta <= math.pi - m, torch.cos(theta + m), cos - m * math.sin(m))
    easy = torch.where(cos > 0, torch.cos(theta + m), cos)
    for target_cos, easy_margin in ((hard, False), (easy, True)):
        # two other classes at cosine 0: CE over [s f(t), 0, 0]
        expected = -F.log_softmax(torch.stack([s * target_cos, torch.zeros_like(cos), torch.zeros_like(cos)], 1), 1)[:, 0]
        torch.testing.assert_close(_arcface_on_angle(theta, s=s, m=m, easy_margin=easy_margin), expected)
    # the numbers: the unfixed loss fell from 63.95 at 2.6 to 57.39 at 3.1
    values = _arcface_on_angle(torch.tensor([2.6, 2.8, 3.1], dtype=torch.float64), s=s, m=m)
    assert values[0] < values[1] < values[2]


# ---- class weights follow the logits' dtype -------------------------------------------------------


@pytest.mark.parametrize("name, knobs", [("balanced_ce", {}), ("ce", {"weight": [1.0] * 10}),
                                         ("label_smoothing", {"weight": [2.0] * 10}), ("nll", {"weight": [1.0] * 10})])
def test_float64_inputs_with_class_weights(name, knobs):
    loss = build_loss(name, num_classes=10, class_counts=COUNTS, **knobs)  # built in float32, as the trainer does
    z, y = _batch()
    if name == "nll":
        z = torch.log_softmax(z, 1)
    value = loss(z, y)
    assert value.dtype == torch.float64
    weights = loss.class_weight.double()
    expected = F.cross_entropy(z if name != "nll" else z, y, weight=weights,
                               label_smoothing=0.1 if name == "label_smoothing" else 0.0)
    torch.testing.assert_close(value, expected)


def test_float64_after_deferred_reweighting_switches_weights_on():
    loss = build_loss("ce", num_classes=10)
    loss.set_class_weight(torch.linspace(0.5, 2.0, 10))
    z, y = _batch()
    torch.testing.assert_close(loss(z, y), F.cross_entropy(z, y, weight=torch.linspace(0.5, 2.0, 10).double()))


# ---- label smoothing with class weights: PyTorch's convention ---------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.1, 0.35])
def test_weighted_label_smoothing_is_pytorchs(reduction, smoothing):
    z, _ = _batch(9, 6, seed=3)
    y = torch.tensor([0, 1, 2, 3, 4, 5, -100, 1, 2])
    w = torch.tensor([0.25, 0.5, 1.0, 1.5, 2.0, 3.0], dtype=torch.float64)  # exact in float32 too
    loss = build_loss("label_smoothing", smoothing=smoothing, weight=w, reduction=reduction).double()
    expected = F.cross_entropy(z, y, weight=w, label_smoothing=smoothing, reduction=reduction)
    torch.testing.assert_close(loss(z, y), expected, rtol=1e-12, atol=1e-12)


def test_weighted_exclusive_smoothing_weights_each_class_term():
    z, y = _batch(8, 5, seed=4)
    w = torch.tensor([0.5, 1.0, 1.5, 2.0, 3.0], dtype=torch.float64)
    e = 0.2
    log_p = torch.log_softmax(z, 1)
    off = torch.ones_like(log_p).scatter(1, y[:, None], 0.0)
    per_sample = -(1 - e) * w[y] * log_p.gather(1, y[:, None]).squeeze(1) - e / 4 * (off * w * log_p).sum(1)
    loss = build_loss("label_smoothing", smoothing=e, exclusive=True, weight=w).double()
    torch.testing.assert_close(loss(z, y), per_sample.sum() / w[y].sum(), rtol=1e-12, atol=1e-12)


# ---- l_softmax: the authors' CIFAR-10 schedule ------------------------------------------------------


def test_l_softmax_defaults_are_the_authors_cifar10_schedule():
    defaults = knob_defaults("l_softmax")
    assert (defaults["m"], defaults["lambda_base"], defaults["lambda_gamma"], defaults["lambda_power"],
            defaults["lambda_min"]) == (2, 1000.0, 2e-5, 45.0, 0.0)
    loss = build_loss("l_softmax", num_classes=10, embedding_dim=4)
    loss.step = 1000
    assert loss.lam == pytest.approx(1000 * (1 + 2e-5 * 1000) ** -45)
    assert round(loss.lam) == 410
    sphereface = knob_defaults("sphereface")
    assert (sphereface["lambda_gamma"], sphereface["lambda_power"], sphereface["lambda_min"]) == (0.12, 1.0, 5.0)


# ---- conventions a user can see ----------------------------------------------------------------------


def test_balanced_ce_divides_by_the_sum_of_target_weights():
    z, y = _batch(16, 10, seed=5)
    loss = build_loss("balanced_ce", class_counts=COUNTS).double()
    w = loss.class_weight
    per_sample = -torch.log_softmax(z, 1).gather(1, y[:, None]).squeeze(1) * w[y]
    torch.testing.assert_close(loss(z, y), per_sample.sum() / w[y].sum())
    # Cui et al.'s code divides by N instead: a different number on a long-tailed batch
    assert not torch.isclose(loss(z, y), per_sample.sum() / len(y))
    assert "sum of the target" in describe_loss("balanced_ce")


def test_a_scalar_focal_alpha_scales_every_class():
    z, y = _batch(16, 10, seed=6)
    plain = build_loss("focal", gamma=2.0, reduction="none").double()(z, y)
    scaled = build_loss("focal", gamma=2.0, alpha=0.25, reduction="none").double()(z, y)
    torch.testing.assert_close(scaled, 0.25 * plain)
    assert "every class" in describe_loss("focal")


def test_supcon_is_supcontrasts_with_base_temperature_equal_to_temperature():
    torch.manual_seed(0)
    features = F.normalize(torch.randn(12, 5, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 3])
    t = 0.1
    # SupContrast's SupConLoss: -(t / base_t) * mean over positives of log-probability
    sim = features @ features.t() / t
    eye = torch.eye(12, dtype=torch.bool)
    log_prob = sim - torch.logsumexp(sim.masked_fill(eye, -math.inf), 1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~eye
    mean_log_prob_pos = (log_prob * positives).sum(1) / positives.sum(1).clamp_min(1)
    counted = positives.sum(1) > 0
    for base_t, factor in ((t, 1.0), (0.07, t / 0.07)):
        theirs = (-(t / base_t) * mean_log_prob_pos)[counted].mean()
        ours = ref.ref_supcon(features.numpy(), labels.numpy(), t)[counted.numpy()].mean()
        assert float(theirs) == pytest.approx(factor * ours, rel=1e-10)
    assert "base_temperature" in describe_loss("supcon")


def test_anchor_warms_up_with_cross_entropy():
    assert knob_defaults("anchor")["warmup_epochs"] == 5
    z, y = _batch(16, 10, seed=7)
    loss = build_loss("anchor").double()
    anchor_value = loss(z, y)
    for epoch in range(1, 6):
        loss.start_epoch(epoch)
        torch.testing.assert_close(loss(z, y), F.cross_entropy(z, y))
    loss.start_epoch(6)
    torch.testing.assert_close(loss(z, y), anchor_value)
    torch.testing.assert_close(anchor_value, torch.tensor(ref.ref_anchor(z.numpy(), y.numpy(), 0.5, 0.05)).mean())


def test_ldam_class_weights_start_at_unit_norm():
    loss = build_loss("ldam", num_classes=10, embedding_dim=64, class_counts=COUNTS)
    torch.testing.assert_close(loss.weight.norm(dim=1), torch.ones(10))
    assert loss.weight.abs().max() < 1.0 and loss.weight.std() > 0.05  # spread directions, not one axis


def test_ldam_test_loss_has_no_margin():
    loss = build_loss("ldam", num_classes=10, embedding_dim=6, class_counts=COUNTS).double()
    x = torch.randn(8, 6, dtype=torch.float64)
    y = torch.randint(0, 10, (8,))
    cos = F.normalize(x, dim=1) @ F.normalize(loss.weight, dim=1).t()
    loss.eval()
    torch.testing.assert_close(loss(x, y), F.cross_entropy(30.0 * cos, y))
    loss.train()
    assert loss(x, y) > F.cross_entropy(30.0 * cos, y)
    assert "test_loss" in describe_loss("ldam")


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_default_says_where_it_comes_from(name):
    text = describe_loss(name)
    for key, knob in LOSSES[name].knob_table().items():
        assert knob.source and knob.help, f"{name}.{key} has no source or help"
        assert f"{key} = " in text and knob.source in text and knob.help in text and knob.valid_values() in text
