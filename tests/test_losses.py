"""Every loss against an independent float64 reference (tests/helpers/reference_losses.py,
written from the formulas without calling the implementation), published test
vectors, identities, gradients, PyTorch's semantics and numerical robustness."""

import numpy as np
import pytest
import torch

from helpers import reference_losses as ref
from lossbench.errors import UserError
from lossbench.losses.registry import LOSSES, build_loss
from lossbench.losses.class_weights import class_weights
from lossbench.losses.large_margin import psi

SHAPES = [(1, 2), (7, 5), (32, 10), (16, 100)]
COUNTS = {2: [40, 3], 5: [50, 30, 12, 7, 2], 10: [500, 300, 180, 100, 60, 40, 23, 14, 8, 5]}


def counts_for(k):
    return COUNTS.get(k) or [int(500 * 0.96**c) + 1 for c in range(k)]


def draw(n, k, d=8, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed + 100 * n + k)
    return (
        torch.randn(n, k, generator=g, dtype=torch.float64) * scale,
        torch.randint(0, k, (n,), generator=g),
        torch.randn(n, d, generator=g, dtype=torch.float64),
        torch.randn(k, d, generator=g, dtype=torch.float64),
    )


def mine(name, outputs, target, weight_matrix=None, **knobs):
    """Mean loss of the implementation in float64 (training mode)."""
    k = target.max().item() + 1 if weight_matrix is None else weight_matrix.shape[0]
    k = max(k, outputs.shape[1] if weight_matrix is None else k)
    loss = build_loss(name, num_classes=k, embedding_dim=outputs.shape[1], class_counts=knobs.pop("class_counts", None), **knobs).double()
    if weight_matrix is not None:
        with torch.no_grad():
            loss.weight.copy_(weight_matrix)
    return loss(outputs, target)


LOGIT_CASES = [
    ("ce", {}, lambda z, y, c: ref.ref_ce(z, y)),
    ("label_smoothing", {"smoothing": 0.1}, lambda z, y, c: ref.ref_label_smoothing(z, y, 0.1)),
    ("label_smoothing", {"smoothing": 0.3, "exclusive": True}, lambda z, y, c: ref.ref_label_smoothing(z, y, 0.3, True)),
    ("sparse_softmax", {"k": 2}, lambda z, y, c: ref.ref_sparse_softmax(z, y, 2)),
    ("focal", {"gamma": 2.0}, lambda z, y, c: ref.ref_focal(z, y, 2.0)),
    ("focal", {"gamma": 0.5, "alpha": 0.25}, lambda z, y, c: ref.ref_focal(z, y, 0.5, 0.25)),
    ("focal", {"gamma": 1.0, "alpha": "effective"},
     lambda z, y, c: ref.ref_focal(z, y, 1.0, ref.ref_class_weights(c, "effective"))),
    ("sm_softmax", {"m": 0.7}, lambda z, y, c: ref.ref_sm_softmax(z, y, 0.7)),
    ("anchor", {}, lambda z, y, c: ref.ref_anchor(z, y, 0.5, 0.05)),
    ("anchor", {"gamma": 2.0, "delta": 0.2}, lambda z, y, c: ref.ref_anchor(z, y, 2.0, 0.2)),
    ("mse", {}, lambda z, y, c: ref.ref_mse(z, y)),
    ("balanced_softmax", {}, lambda z, y, c: ref.ref_balanced_softmax(z, y, c)),
    ("logit_adjusted", {"tau": 0.5}, lambda z, y, c: ref.ref_logit_adjusted(z, y, c, 0.5)),
    ("poly1", {"epsilon": 1.0}, lambda z, y, c: ref.ref_poly1(z, y, 1.0)),
    ("poly1", {"epsilon": -0.5}, lambda z, y, c: ref.ref_poly1(z, y, -0.5)),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name, knobs, reference", LOGIT_CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_logit_losses_match_reference(name, knobs, reference, shape):
    n, k = shape
    z, y, _, _ = draw(n, k)
    counts = counts_for(k)
    got = mine(name, z, y, class_counts=counts, **knobs)
    expected = reference(z.numpy(), y.numpy(), counts).mean()
    # constants derived from class counts (weights, priors, margins) are kept in float64
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scheme", ["effective", "inverse"])
def test_balanced_ce_matches_reference(shape, scheme):
    n, k = shape
    z, y, _, _ = draw(n, k)
    counts = counts_for(k)
    a = ref.ref_class_weights(counts, scheme, 0.999)
    per_sample = ref.ref_balanced_ce(z.numpy(), y.numpy(), counts, scheme, 0.999)
    got = mine("balanced_ce", z, y, class_counts=counts, scheme=scheme, beta=0.999)
    # PyTorch's weighted mean: sum(a_y l) / sum(a_y)
    np.testing.assert_allclose(got.item(), per_sample.sum() / a[y.numpy()].sum(), rtol=1e-12)
    np.testing.assert_allclose(class_weights(counts, scheme, 0.999).numpy(), a, rtol=1e-12)


def test_nll_of_log_softmax_is_ce():
    z, y, _, _ = draw(16, 10)
    log_probs = torch.log_softmax(z, dim=1)
    np.testing.assert_allclose(mine("nll", log_probs, y).item(), ref.ref_nll(log_probs.numpy(), y.numpy()).mean(), rtol=1e-12)
    np.testing.assert_allclose(mine("nll", log_probs, y).item(), mine("ce", z, y).item(), rtol=1e-12)


EMBEDDING_CASES = [
    ("cosface", {"s": 64.0, "m": 0.35}, lambda x, w, y, c: ref.ref_cosface(x, w, y, 64.0, 0.35)),
    ("am_softmax", {}, lambda x, w, y, c: ref.ref_cosface(x, w, y, 30.0, 0.35)),
    ("arcface", {"s": 16.0, "m": 0.5}, lambda x, w, y, c: ref.ref_arcface(x, w, y, 16.0, 0.5)),
    ("ldam", {"s": 30.0, "max_m": 0.5}, lambda x, w, y, c: ref.ref_ldam(x, w, y, c, 30.0, 0.5)),
    *[
        (name, {"m": m, "lambda_base": lam, "lambda_gamma": 0.0, "lambda_min": 0.0},
         lambda x, w, y, c, m=m, lam=lam, f=f: f(x, w, y, m, lam))
        for name, f in (("l_softmax", ref.ref_l_softmax), ("sphereface", ref.ref_sphereface))
        for m in (1, 2, 3, 4)
        for lam in (0.0, 5.0)
    ],
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name, knobs, reference", EMBEDDING_CASES, ids=lambda v: v if isinstance(v, str) else str(v) if isinstance(v, dict) else None)
def test_margin_losses_match_reference(name, knobs, reference, shape):
    n, k = shape
    _, y, x, w = draw(n, k)
    counts = counts_for(k)
    got = mine(name, x, y, weight_matrix=w, class_counts=counts, **knobs)
    expected = reference(x.numpy(), w.numpy(), y.numpy(), counts).mean()
    np.testing.assert_allclose(got.item(), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n, k", [(4, 3), (16, 10)])
def test_supcon_matches_reference(n, k):
    torch.manual_seed(0)
    loss = build_loss("supcon", num_classes=k, embedding_dim=8, temperature=0.1, lam=0.7).double()
    _, labels, x, _ = draw(2 * n, k)
    labels = labels[:n].repeat(2)  # two views of n images
    projections = loss.projection(x).detach().numpy()
    contrastive = ref.ref_supcon(projections, labels.numpy(), 0.1).mean()
    logits = (x @ loss.classifier.weight.t() + loss.classifier.bias).detach().numpy()
    expected = ref.ref_ce(logits, labels.numpy()).mean() + 0.7 * contrastive
    np.testing.assert_allclose(loss(x, labels).item(), expected, rtol=1e-10)
    np.testing.assert_allclose(loss.contrastive(x, labels).item(), contrastive, rtol=1e-10)


# ---- published test vectors (natural log) --------------------------------------------------


def test_spec_vectors():
    z = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.1, 0.1, 0.1, 0.1]], dtype=torch.float64)
    y = torch.tensor([2, 3])
    assert abs(mine("ce", z, y).item() - 1.364415) < 1e-6
    assert abs(mine("label_smoothing", z, y, smoothing=0.1).item() - 1.366915) < 1e-6
    assert abs(mine("nll", torch.log_softmax(z, 1), y).item() - 1.364415) < 1e-6
    z = torch.tensor([[0.1, 8, 0.1], [0.1, 0.1, 8]], dtype=torch.float64)
    y = torch.tensor([1, 2])
    assert abs(mine("label_smoothing", z, y, smoothing=0.2, exclusive=True).item() - 1.580741) < 1e-6
    assert abs(mine("label_smoothing", z, y, smoothing=0.2).item() - 1.054075) < 1e-6
    z = torch.tensor([[0.1, 0.1, 0.1, 0.36, 0.34]], dtype=torch.float64).log()
    y = torch.tensor([3])
    assert abs(mine("ce", z, y).item() - 1.021651) < 1e-6
    assert abs(mine("label_smoothing", z, y, smoothing=0.1).item() - 1.099650) < 1e-6
    for p_y, expected, tol in ((0.9, 1.0536e-3, 1e-7), (0.6, 8.1732e-2, 1e-6)):
        z = torch.tensor([[p_y, 1 - p_y]], dtype=torch.float64).log()
        assert abs(mine("focal", z, torch.tensor([0]), gamma=2.0).item() - expected) < tol


# ---- identities --------------------------------------------------------------------------------

IDENTITIES = [
    ("focal", {"gamma": 0.0}),
    ("label_smoothing", {"smoothing": 0.0}),
    ("sparse_softmax", {"k": 10}),
    ("poly1", {"epsilon": 0.0}),
    ("sm_softmax", {"m": 0.0}),
    ("logit_adjusted", {"tau": 0.0}),
]


@pytest.mark.parametrize("name, knobs", IDENTITIES)
def test_degenerate_settings_equal_ce(name, knobs):
    z, y, _, _ = draw(32, 10)
    torch.testing.assert_close(mine(name, z, y, class_counts=counts_for(10), **knobs), mine("ce", z, y), rtol=1e-12, atol=1e-12)


def test_balanced_softmax_with_equal_counts_is_ce():
    z, y, _, _ = draw(32, 10)
    torch.testing.assert_close(mine("balanced_softmax", z, y, class_counts=[7] * 10), mine("ce", z, y), rtol=1e-12, atol=1e-12)


def test_cosface_without_margin_is_ce_on_scaled_cosine():
    _, y, x, w = draw(32, 10)
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(w, dim=1).t()
    torch.testing.assert_close(mine("cosface", x, y, weight_matrix=w, s=20.0, m=0.0), mine("ce", 20.0 * cos, y))


def test_l_softmax_with_m_1_is_ce_on_linear_scores():
    _, y, x, w = draw(32, 10)
    got = mine("l_softmax", x, y, weight_matrix=w, m=1, lambda_base=0.0, lambda_gamma=0.0)
    torch.testing.assert_close(got, mine("ce", x @ w.t(), y))


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_psi_matches_reference_and_is_continuous(m):
    theta = torch.linspace(0, torch.pi, 721, dtype=torch.float64)
    np.testing.assert_allclose(psi(torch.cos(theta), m).numpy(), ref.ref_psi(theta.numpy(), m), atol=1e-9)
    values = psi(torch.cos(theta), m)
    assert (values[1:] <= values[:-1] + 1e-9).all()  # monotone decreasing, no jumps up


# ---- gradients -------------------------------------------------------------------------------

GRAD_CASES = {
    "ce": {}, "nll": {}, "balanced_ce": {}, "label_smoothing": {"exclusive": True}, "sparse_softmax": {"k": 3},
    "focal": {"gamma": 1.5, "alpha": [0.5, 1.0, 2.0, 1.0, 0.3]}, "cosface": {"s": 4.0}, "am_softmax": {"s": 4.0},
    "arcface": {"s": 4.0}, "l_softmax": {"m": 3, "lambda_base": 2.0, "lambda_gamma": 0.0},
    "sphereface": {"m": 4, "lambda_base": 2.0, "lambda_gamma": 0.0, "lambda_min": 0.0}, "sm_softmax": {},
    # q* is detached by design, so finite differences see it move unless it stays
    # at 0: delta = 1 pins it there and checks the gradient of everything else
    "anchor": {"delta": 1.0, "gamma": 1.5}, "supcon": {}, "mse": {}, "ldam": {"s": 4.0}, "balanced_softmax": {}, "logit_adjusted": {},
    "poly1": {}, "vs": {}, "cdt": {}, "label_aware_smoothing": {"smooth_tail": 0.05},
    # the compensation's softmax is detached by design (q = 0 checks everything else)
    "seesaw": {"q": 0.0}, "ib": {"alpha": 2.0},
}


def test_every_loss_has_a_gradient_case():
    assert set(GRAD_CASES) == set(LOSSES)


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradcheck(name):
    torch.manual_seed(0)
    loss = build_loss(name, num_classes=5, embedding_dim=6, class_counts=COUNTS[5], **GRAD_CASES[name]).double()
    y = torch.tensor([0, 1, 2, 3, 4, 1])
    if LOSSES[name].inputs == "embeddings":
        x = torch.randn(6, 6, dtype=torch.float64, requires_grad=True)
    else:
        x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
        if LOSSES[name].inputs == "log_probs":
            x = torch.log_softmax(x.detach(), 1).requires_grad_()
    if name == "seesaw":
        loss.seen.copy_(torch.tensor([9.0, 5, 3, 2, 1], dtype=torch.float64))
        loss.eval()  # in training every call counts the batch: the function would change between evaluations
    params = [p for p in loss.parameters()]
    assert torch.autograd.gradcheck(lambda x, *p: loss(x, y), (x, *params), eps=1e-6, atol=1e-5)


# ---- PyTorch's semantics: weight, ignore_index, reduction ---------------------------------------------

SEMANTICS = [
    ("ce", {}), ("label_smoothing", {"smoothing": 0.0}), ("focal", {"gamma": 0.0}), ("sparse_softmax", {"k": 6}),
    ("poly1", {"epsilon": 0.0}), ("sm_softmax", {"m": 0.0}),
    ("balanced_softmax", {"class_counts": [3] * 6}), ("logit_adjusted", {"tau": 0.0, "class_counts": [5, 1, 2, 3, 4, 5]}),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name, knobs", SEMANTICS)
def test_weight_ignore_index_reduction_follow_torch(name, knobs, reduction):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(9, 6, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 5, -100, 1, 2])
    w = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    expected = torch.nn.CrossEntropyLoss(weight=w, reduction=reduction, ignore_index=-100)(z, y)
    loss = build_loss(name, num_classes=6, weight=w, reduction=reduction, ignore_index=-100, **knobs).double()
    torch.testing.assert_close(loss(z, y), expected)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_and_margin_semantics_follow_torch(reduction):
    g = torch.Generator().manual_seed(4)
    z = torch.randn(9, 6, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 5, 7, 1, 2])
    w = torch.rand(6, generator=g, dtype=torch.float64) + 0.5
    expected = torch.nn.CrossEntropyLoss(weight=w, reduction=reduction, ignore_index=7)(z, y)
    nll = build_loss("nll", weight=w, reduction=reduction, ignore_index=7).double()
    torch.testing.assert_close(nll(torch.log_softmax(z, 1), y), expected)
    x, wm = torch.randn(9, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(wm, dim=1).t()
    cosface = build_loss("cosface", num_classes=6, embedding_dim=4, s=10.0, m=0.0, weight=w, reduction=reduction, ignore_index=7).double()
    with torch.no_grad():
        cosface.weight.copy_(wm)
    torch.testing.assert_close(cosface(x, y), torch.nn.CrossEntropyLoss(weight=w, reduction=reduction, ignore_index=7)(10 * cos, y))


@pytest.mark.parametrize("name", ["anchor", "mse", "focal"])
def test_weighted_mean_convention_for_other_losses(name):
    z, y, _, _ = draw(12, 5)
    w = torch.linspace(0.5, 2.0, 5, dtype=torch.float64)
    per_sample = build_loss(name, num_classes=5, reduction="none").double()(z, y)
    weighted = build_loss(name, num_classes=5, weight=w).double()(z, y)
    torch.testing.assert_close(weighted, (w[y] * per_sample).sum() / w[y].sum())


# ---- robustness: huge logits, half precision -------------------------------------------------------


def _inputs_for(name, scale, dtype=torch.float32):
    g = torch.Generator().manual_seed(5)
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    if LOSSES[name].inputs == "embeddings":
        return (torch.randn(8, 6, generator=g) * scale).to(dtype).requires_grad_(), y
    z = torch.randn(8, 5, generator=g).sign() * scale
    if LOSSES[name].inputs == "log_probs":
        z = torch.log_softmax(z, 1)
    return z.to(dtype).requires_grad_(), y


def _finite_loss_and_grads(loss, x, y):
    value = loss(x, y)
    value.backward()
    grads = [x.grad] + [p.grad for p in loss.parameters() if p.grad is not None]
    return torch.isfinite(value).all() and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("scale", [1e4, -1e4, 1.0])
def test_finite_for_huge_logits(name, scale):
    torch.manual_seed(0)
    loss = build_loss(name, num_classes=5, embedding_dim=6, class_counts=COUNTS[5], **({"k": 3} if name == "sparse_softmax" else {}))
    x, y = _inputs_for(name, scale)
    assert _finite_loss_and_grads(loss, x, y)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_finite_under_autocast(name, dtype):
    torch.manual_seed(0)
    loss = build_loss(name, num_classes=5, embedding_dim=6, class_counts=COUNTS[5], **({"k": 3} if name == "sparse_softmax" else {}))
    head = torch.nn.Linear(7, 6 if LOSSES[name].inputs == "embeddings" else 5)
    features = torch.randn(8, 7) * 50
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    with torch.autocast("cpu", dtype=dtype):
        outputs = head(features)
        if LOSSES[name].inputs == "log_probs":
            outputs = torch.log_softmax(outputs.float(), 1)
        value = loss(outputs, y)
    assert value.dtype == torch.float32
    value.backward()
    assert torch.isfinite(value) and all(torch.isfinite(p.grad).all() for p in head.parameters())


# ---- bad knobs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, knobs, message",
    [
        ("focal", {"gamma": -1.0}, r"loss.gamma=-1.0 is invalid: it must be in \[0, inf\)"),
        ("label_smoothing", {"smoothing": 1.0}, r"loss.smoothing=1.0 is invalid: it must be in \[0, 1\)"),
        ("sparse_softmax", {"k": 11}, r"loss.k=11 is invalid: it must be in \[1, 10\] \(the number of classes is 10\)"),
        ("cosface", {"s": 0.0}, r"loss.s=0.0 is invalid"),
        ("arcface", {"m": 2.0}, r"loss.m=2.0 is invalid"),
        ("l_softmax", {"m": 2.5}, r"loss.m=2.5 is invalid"),
        ("supcon", {"temperature": 0.0}, r"loss.temperature=0.0 is invalid"),
        ("focal", {"alpha": "square"}, r"loss.alpha='square' is invalid"),
        ("balanced_ce", {"scheme": "sqrt"}, r"loss.scheme='sqrt' is invalid: valid values are inverse, effective"),
        ("poly1", {"epsilon": -2.0}, r"loss.epsilon=-2.0 is invalid"),
        ("focal", {"gammma": 2.0}, r"loss.gammma is not a knob of focal: its knobs are gamma, alpha"),
        ("nope", {}, r"loss='nope' is unknown: valid losses are ce, nll, balanced_ce"),
        ("vs", {"gamma": -0.1}, r"loss.gamma=-0.1 is invalid: it must be in \[0, inf\)"),
        ("cdt", {"tau": 1.0}, r"loss.tau is not a knob of cdt: its knobs are gamma"),
        ("seesaw", {"eps": 0.0}, r"loss.eps=0.0 is invalid: it must be in \(0, 1\]"),
        ("label_aware_smoothing", {"shape": "square"}, r"loss.shape='square' is invalid: valid values are concave, linear"),
        ("label_aware_smoothing", {"shape": "exp"}, r"loss.power is needed with loss.shape=exp"),
        ("label_aware_smoothing", {"smooth_head": 1.0}, r"loss.smooth_head=1.0 is invalid: it must be in \[0, 1\)"),
        ("ib", {"warmup_epochs": 1.5}, r"loss.warmup_epochs=1.5 is invalid: it must be an integer"),
        ("ib", {"alpha": 0.0}, r"loss.alpha=0.0 is invalid"),
        ("vs", {"gamma": float("inf")}, r"loss.gamma=inf is invalid: it must be a number in \[0, inf\)"),
        ("ib", {"epsilon": float("inf")}, r"loss.epsilon=inf is invalid"),
        ("label_aware_smoothing", {"power": 2.0}, r"loss.power=2.0 applies to loss.shape=exp only"),
    ],
)
def test_bad_knobs_are_named(name, knobs, message):
    with pytest.raises(UserError, match=message):
        build_loss(name, num_classes=10, embedding_dim=4, class_counts=[5] * 10, **knobs)


def test_class_count_losses_need_counts():
    for name in ("balanced_ce", "ldam", "balanced_softmax", "logit_adjusted", "vs", "cdt", "label_aware_smoothing", "ib"):
        with pytest.raises(UserError, match="class counts"):
            build_loss(name, num_classes=3, embedding_dim=4)


def test_margin_losses_expose_weight_and_plain_logits():
    for name in ("cosface", "am_softmax", "arcface", "l_softmax", "sphereface", "ldam", "supcon"):
        loss = build_loss(name, num_classes=7, embedding_dim=5, class_counts=[3] * 7)
        assert tuple(loss.weight.shape) == (7, 5) and loss.inputs == "embeddings"
        x = torch.randn(4, 5)
        assert tuple(loss.logits(x).shape) == (4, 7)


def test_margin_applies_in_training_only():
    _, y, x, w = draw(16, 5, d=8)
    loss = build_loss("arcface", num_classes=5, embedding_dim=8, s=10.0).double()
    with torch.no_grad():
        loss.weight.copy_(w)
    train_value = loss(x, y)
    loss.eval()
    torch.testing.assert_close(loss(x, y), torch.nn.functional.cross_entropy(loss.logits(x), y))
    assert train_value > loss(x, y)


@pytest.mark.parametrize("name", ["l_softmax", "sphereface"])
def test_annealing_does_not_recompile_a_compiled_step(name):
    loss = build_loss(name, num_classes=3, embedding_dim=4)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    torch._dynamo.reset()
    compiled = torch.compile(loss, backend="eager", dynamic=False)
    with torch._dynamo.config.patch(error_on_recompile=True):
        values = [compiled(x, y) for _ in range(5)]
    assert loss.step == 5
    eager = build_loss(name, num_classes=3, embedding_dim=4)
    eager.load_state_dict(loss.state_dict() | {"_extra_state": {"step": 0}})
    torch.testing.assert_close(torch.stack(values), torch.stack([eager(x, y) for _ in range(5)]))


def test_lambda_anneals_per_training_step_and_is_saved():
    loss = build_loss("sphereface", num_classes=3, embedding_dim=4)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    assert loss.lam == 1000.0
    for _ in range(10):
        loss(x, y)
    assert loss.step == 10 and loss.lam == pytest.approx(1000.0 / 2.2)
    loss.eval()
    loss(x, y)
    assert loss.step == 10
    fresh = build_loss("sphereface", num_classes=3, embedding_dim=4)
    fresh.load_state_dict(loss.state_dict())
    assert fresh.step == 10
    for _ in range(10000):
        fresh.step += 1
    assert fresh.lam == 5.0  # lambda_min


def test_anchor_treats_the_anchor_as_a_constant():
    # with q* detached, d l / d z_y is that of -log sigmoid(z_y) alone: -(1 - p_y)
    z = torch.tensor([[2.0, 1.5, -1.0]], dtype=torch.float64, requires_grad=True)
    build_loss("anchor", gamma=2.0, delta=0.05).double()(z, torch.tensor([0])).backward()
    assert z.grad[0, 0].item() == pytest.approx(-(1 - torch.sigmoid(torch.tensor(2.0, dtype=torch.float64)).item()), rel=1e-12)
