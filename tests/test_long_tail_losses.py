"""vs, cdt, seesaw, label_aware_smoothing and ib against independent float64
references written from their papers (tests/reference_long_tail.py) and against
values computed by running their authors' code (tests/data/authors_values.json:
repository, file and commit of each), value and gradient."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import reference_long_tail as ref
from helpers import reference_losses
from lossbench.losses.registry import build_loss
from lossbench.losses.influence_balanced import influence_balanced

AUTHORS = json.loads((Path(__file__).parent / "data" / "authors_values.json").read_text())
INPUTS = AUTHORS["inputs"]
LOGITS = torch.tensor(INPUTS["logits"], dtype=torch.float64)
FEATURES = torch.tensor(INPUTS["features"], dtype=torch.float64)
TARGETS = torch.tensor(INPUTS["targets"])
COUNTS = INPUTS["class_counts"]
LONG_TAIL = [500, 300, 180, 100, 60, 40, 23, 14, 8, 5]


def _draw(n=16, k=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g, dtype=torch.float64) * 3, torch.randint(0, k, (n,), generator=g)


def _value_and_grad(loss, logits, target):
    z = logits.clone().requires_grad_()
    value = loss(z, target)
    value.backward()
    return value.detach(), z.grad


def _assert_matches_authors(key, value, grad_logits, grad_features=None):
    authors = AUTHORS["losses"][key]["authors"]
    assert float(value) == pytest.approx(authors["loss"], rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(grad_logits.numpy(), np.array(authors["grad_logits"]), rtol=1e-10, atol=1e-12)
    if grad_features is not None:
        np.testing.assert_allclose(grad_features.numpy(), np.array(authors["grad_features"]), rtol=1e-10, atol=1e-12)


# ---- vs and cdt ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, name, knobs", [
    ("vs", "vs", {"gamma": 0.3, "tau": 1.0}),
    ("vs_g0.2_t1.2", "vs", {"gamma": 0.2, "tau": 1.2}),
    ("cdt_via_vs", "cdt", {"gamma": 0.3}),
    ("la_via_vs", "vs", {"gamma": 0.0, "tau": 1.0}),
])
def test_vs_and_cdt_match_the_authors_code(key, name, knobs):
    loss = build_loss(name, class_counts=COUNTS, **knobs).double()
    _assert_matches_authors(key, *_value_and_grad(loss, LOGITS, TARGETS))


@pytest.mark.parametrize("gamma, tau", [(0.3, 1.0), (0.0, 0.5), (1.0, 0.0), (0.15, 2.0)])
def test_vs_matches_reference(gamma, tau):
    z, y = _draw()
    expected = ref.vs_loss(z, y, LONG_TAIL, gamma, tau).mean()
    torch.testing.assert_close(build_loss("vs", class_counts=LONG_TAIL, gamma=gamma, tau=tau).double()(z, y), expected)
    torch.testing.assert_close(build_loss("cdt", class_counts=LONG_TAIL, gamma=gamma).double()(z, y),
                               ref.cdt_loss(z, y, LONG_TAIL, gamma).mean())


def test_vs_contains_logit_adjustment_cdt_and_ce():
    z, y = _draw(seed=1)
    for tau in (0.5, 1.0, 2.0):
        torch.testing.assert_close(build_loss("vs", class_counts=LONG_TAIL, gamma=0.0, tau=tau).double()(z, y),
                                   build_loss("logit_adjusted", class_counts=LONG_TAIL, tau=tau).double()(z, y))
    torch.testing.assert_close(build_loss("vs", class_counts=LONG_TAIL, gamma=0.4, tau=0.0).double()(z, y),
                               build_loss("cdt", class_counts=LONG_TAIL, gamma=0.4).double()(z, y))
    torch.testing.assert_close(build_loss("vs", class_counts=LONG_TAIL, gamma=0.0, tau=0.0).double()(z, y),
                               torch.nn.functional.cross_entropy(z, y))


def test_vs_does_not_contain_ldam():
    """A shift of every logit is not a shift of the target's alone: VS with LDAM's
    margins as iota differs from LDAM, whatever the scale."""
    z, y = _draw(seed=2)
    ldam = ref.ldam_loss(z, y, LONG_TAIL, max_m=0.5, s=1.0).mean()
    margins = 0.5 * (torch.tensor(LONG_TAIL, dtype=torch.float64) ** -0.25) / min(LONG_TAIL) ** -0.25
    shifted = torch.nn.functional.cross_entropy(z - margins, y)
    assert not torch.isclose(ldam, shifted, rtol=1e-3)


# ---- seesaw ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, knobs", [("seesaw", {}), ("seesaw_p0.5_q1.5_eps0.05", {"p": 0.5, "q": 1.5, "eps": 0.05})])
def test_seesaw_matches_the_authors_code(key, knobs):
    record = AUTHORS["losses"][key]
    loss = build_loss("seesaw", num_classes=5, **knobs).double()
    loss.seen.copy_(torch.tensor(record["cum_samples_before_call"]))
    _assert_matches_authors(key, *_value_and_grad(loss, LOGITS, TARGETS))
    # this batch was counted before its loss, as the authors' cum_samples
    assert loss.seen.tolist() == record["cum_counts"]


def test_seesaw_matches_reference_and_counts_only_in_training():
    z, y = _draw(32, 10, seed=3)
    loss = build_loss("seesaw", num_classes=10).double()
    before = torch.tensor([40.0, 30, 20, 10, 5, 2, 1, 0, 0, 0], dtype=torch.float64)
    loss.seen.copy_(before)
    value = loss(z, y)
    after = ref.seesaw_cum_counts_after_batch(before, y, 10)
    torch.testing.assert_close(loss.seen, after)
    torch.testing.assert_close(value, ref.seesaw_loss(z, y, after, p=0.8, q=2.0, eps=1e-2).mean())
    loss.eval()
    torch.testing.assert_close(loss(z, y), ref.seesaw_loss(z, y, after).mean())
    torch.testing.assert_close(loss.seen, after)


def test_seesaw_counts_are_saved_with_the_loss():
    loss = build_loss("seesaw", num_classes=10)
    z, y = _draw(32, 10, seed=4)
    loss(z.float(), y)
    restored = build_loss("seesaw", num_classes=10)
    restored.load_state_dict(loss.state_dict())
    assert restored.seen.tolist() == torch.bincount(y, minlength=10).double().tolist()


def test_seesaw_without_its_factors_is_ce():
    z, y = _draw(seed=5)
    torch.testing.assert_close(build_loss("seesaw", num_classes=10, p=0.0, q=0.0).double()(z, y),
                               torch.nn.functional.cross_entropy(z, y))


# ---- label-aware smoothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("key, knobs", [
    ("mislas_concave", {"smooth_head": 0.3, "smooth_tail": 0.0, "shape": "concave"}),
    ("mislas_linear", {"smooth_head": 0.3, "smooth_tail": 0.0, "shape": "linear"}),
    ("mislas_convex", {"smooth_head": 0.4, "smooth_tail": 0.1, "shape": "convex"}),
    ("mislas_exp_power2", {"smooth_head": 0.4, "smooth_tail": 0.1, "shape": "exp", "power": 2.0}),
])
def test_label_aware_smoothing_matches_the_authors_code(key, knobs):
    record = AUTHORS["losses"][key]
    assert record["constructor"].startswith("LabelAwareSmoothing") and f"smooth_head={knobs['smooth_head']}" in record["constructor"]
    loss = build_loss("label_aware_smoothing", class_counts=COUNTS, **knobs).double()
    _assert_matches_authors(key, *_value_and_grad(loss, LOGITS, TARGETS))


@pytest.mark.parametrize("shape, power", [("concave", None), ("linear", None), ("convex", None), ("exp", 3.0)])
def test_label_aware_smoothing_matches_reference(shape, power):
    z, y = _draw(seed=6)
    loss = build_loss("label_aware_smoothing", class_counts=LONG_TAIL, smooth_head=0.4, smooth_tail=0.1, shape=shape,
                      power=power).double()
    expected = ref.label_aware_smoothing_loss(z, y, LONG_TAIL, 0.4, 0.1, shape, power).mean()
    torch.testing.assert_close(loss(z, y), expected)
    smoothing = ref.label_aware_smoothing_values(LONG_TAIL, 0.4, 0.1, shape, power)
    assert smoothing[0] == pytest.approx(0.4) and smoothing[-1] == pytest.approx(0.1)  # the head smoothed most


def test_label_aware_smoothing_with_one_value_is_label_smoothing():
    z, y = _draw(seed=7)
    loss = build_loss("label_aware_smoothing", class_counts=LONG_TAIL, smooth_head=0.2, smooth_tail=0.2).double()
    torch.testing.assert_close(loss(z, y), torch.nn.functional.cross_entropy(z, y, label_smoothing=0.2))
    w = torch.tensor([0.5, 1.0, 2.0, 1.5, 1.0, 0.25, 1.0, 3.0, 1.0, 0.5], dtype=torch.float64)
    weighted = build_loss("label_aware_smoothing", class_counts=LONG_TAIL, smooth_head=0.2, smooth_tail=0.2, weight=w)
    torch.testing.assert_close(weighted.double()(z, y), torch.nn.functional.cross_entropy(z, y, weight=w, label_smoothing=0.2))


# ---- influence-balanced -----------------------------------------------------------------------------


@pytest.mark.parametrize("key, reweight", [("ib_weighted", True), ("ib_unweighted", False)])
def test_ib_matches_the_authors_code(key, reweight):
    loss = build_loss("ib", num_classes=5, embedding_dim=4, class_counts=COUNTS, reweight=reweight).double()
    z, h = LOGITS.clone().requires_grad_(), FEATURES.clone().requires_grad_()
    value = influence_balanced(z, h, TARGETS, loss.class_factor, loss.alpha, loss.epsilon).mean()
    value.backward()
    _assert_matches_authors(key, value.detach(), z.grad, h.grad)
    expected = ref.ib_loss(LOGITS, FEATURES, TARGETS, COUNTS, alpha=1000.0, epsilon=1e-3, weighted=reweight).mean()
    assert float(value.detach()) == pytest.approx(float(expected), rel=1e-12)


def test_ib_module_reads_its_own_head_and_warms_up_with_ce():
    torch.manual_seed(0)
    loss = build_loss("ib", num_classes=10, embedding_dim=6, class_counts=LONG_TAIL, warmup_epochs=3).double()
    h = torch.randn(16, 6, dtype=torch.float64)
    y = torch.randint(0, 10, (16,))
    logits = loss.logits(h)
    expected = ref.ib_loss(logits.detach(), h, y, LONG_TAIL, alpha=1000.0, epsilon=1e-3, weighted=True).mean()
    torch.testing.assert_close(loss(h, y), expected)
    for epoch in (1, 2, 3):
        loss.start_epoch(epoch)
        torch.testing.assert_close(loss(h, y), torch.nn.functional.cross_entropy(logits, y))
    loss.start_epoch(4)
    torch.testing.assert_close(loss(h, y), expected)


# ---- the lambda schedule of l_softmax and sphereface, step by step ------------------------------------


@pytest.mark.parametrize("name, key", [("l_softmax", "l_softmax_cifar10"), ("sphereface", "sphereface")])
def test_large_margin_lambda_follows_the_authors_layer(name, key):
    """The authors' layer counts its iteration before use: the k-th training step uses lambda(k)."""
    torch.manual_seed(0)
    x, w = torch.randn(6, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    m = 2 if name == "l_softmax" else 4
    reference = reference_losses.ref_l_softmax if name == "l_softmax" else reference_losses.ref_sphereface
    for step, lam in AUTHORS["losses"]["l_softmax_lambda"][key]["lambda"].items():
        loss = build_loss(name, num_classes=3, embedding_dim=4).double()
        with torch.no_grad():
            loss.weight.copy_(w)
        loss.step = int(step) - 1
        value = loss(x, y)
        expected = reference(x.numpy(), w.numpy(), y.numpy(), m=m, lam=lam).mean()
        assert float(value.detach()) == pytest.approx(expected, rel=1e-12), step


# ---- arcface against insightface's arcface_torch (the version with the branch past pi - m) -----------


@pytest.mark.parametrize("key, easy_margin", [("CombinedMarginLoss_5ef9", False), ("CombinedMarginLoss_5ef9_easy_margin", True)])
def test_arcface_matches_insightface(key, easy_margin):
    record = AUTHORS["losses"]["arcface"]
    loss = build_loss("arcface", num_classes=5, embedding_dim=4, easy_margin=easy_margin).double()
    cos = torch.tensor(record["cos_theta_values"], dtype=torch.float64)
    np.testing.assert_allclose((64.0 * loss.target_cosine(cos)).numpy(), record["target_logits"][key]["authors"],
                               rtol=1e-13, atol=1e-12)
    # the loss on the authors' cosine matrix, through the path forward() takes after the cosines
    cos = torch.tensor(record["loss_inputs"]["cos_theta"], dtype=torch.float64, requires_grad=True)
    y = torch.tensor(record["loss_inputs"]["targets"])
    value = loss.cross_entropy(64.0 * loss.replace_target_scores(cos, y, lambda c, _: loss.target_cosine(c)), y)
    value.backward()
    authors = record["losses"][key]["authors"]
    assert float(value.detach()) == pytest.approx(authors["loss"], rel=1e-13)
    np.testing.assert_allclose(cos.grad.numpy(), np.array(authors["grad_cos_theta"]), rtol=1e-10, atol=1e-12)
