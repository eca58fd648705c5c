"""Independent float64 torch references for long-tail / margin classification losses.

Written from the papers' formulas and checked against the authors' published
code (listed per function), without looking at ``lossbench``.  Every function
takes float64 tensors (targets: int64 class indices; class counts: a list of
ints) and, unless stated otherwise, returns the PER-SAMPLE loss, shape (N,).
The softmax / log-softmax are written out explicitly (max-shifted
log-sum-exp); ``torch.nn.functional.cross_entropy`` is not used, so these
references stay independent of PyTorch's own loss kernels.

Numbers produced by the authors' code for fixed inputs are stored in
``tests/data/authors_values.json``; these references agree with them to
< 6e-14 absolute (IB, whose values are O(100)) and < 4e-15 elsewhere (see that
file's ``max_abs_diff`` fields).

Run ``python tests/helpers/reference_long_tail.py`` for a short self-check of the
identities between the losses and of ``smoothed_ce_weighted`` against
``torch.nn.functional.cross_entropy``.
"""

import math

import torch

__all__ = [
    "log_softmax",
    "class_priors",
    "vs_loss",
    "la_loss",
    "cdt_loss",
    "ldam_loss",
    "seesaw_loss",
    "seesaw_cum_counts_after_batch",
    "label_aware_smoothing_values",
    "label_aware_smoothing_loss",
    "ib_class_weights",
    "ib_loss",
    "arcface_target_logit",
    "arcface_loss",
    "smoothed_ce_weighted",
    "l_softmax_lambda",
]


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

def _f64(x):
    if torch.is_tensor(x):
        return x.to(torch.float64)
    return torch.as_tensor(x, dtype=torch.float64)


def _counts(class_counts):
    c = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if c.dim() != 1 or c.numel() == 0:
        raise ValueError("class_counts must be a non-empty 1-D list")
    return c


def log_softmax(z):
    """Row-wise log softmax of an (N, K) tensor: z - max - log(sum exp(z - max))."""
    m = z.max(dim=1, keepdim=True).values.detach()
    zs = z - m
    return zs - torch.log(torch.exp(zs).sum(dim=1, keepdim=True))


def _nll(logp, target):
    """-log p[i, y_i] for each row."""
    return -logp.gather(1, target.view(-1, 1).long()).squeeze(1)


def class_priors(class_counts):
    """pi_k = n_k / sum_j n_j (float64, shape (K,))."""
    c = _counts(class_counts)
    return c / c.sum()


# ----------------------------------------------------------------------------
# 1. VS loss (and its special cases LA and CDT)
# ----------------------------------------------------------------------------

def vs_loss(logits, target, class_counts, gamma, tau):
    """Vector-Scaling loss, per sample.

    Kini, Paraskevas, Oymak, Thrampoulidis (NeurIPS 2021), "Label-Imbalanced
    and Group-Sensitive Classification under Overparameterization", VS-loss,
    Eq. (3)/(4) (l_VS = -log(e^{Delta_y z_y + iota_y} / sum_c e^{Delta_c z_c + iota_c})).
    Checked against github.com/orparask/VS-Loss class_imbalance/losses.py
    (class VSLoss, commit 7ade9c9959951212415bb9aa4f5563caa5182e5e).

    The authors' code builds, from the class counts n_k,
        temp_k  = (1/n_k)^gamma ;  Delta_k = temp_k / min_j temp_j = (n_max / n_k)^gamma  (>= 1)
        iota_k  = tau * log(pi_k),  pi_k = n_k / sum_j n_j
    and feeds  z_k / Delta_k + iota_k  to softmax cross-entropy.  (In the
    paper's notation the multiplicative factor is 1/Delta_k = (n_k/n_max)^gamma:
    tail logits are shrunk, the most frequent class keeps factor 1.)
    Defaults in the authors' train.py (argparse): gamma=0.3, tau=1.0.
    gamma=0 gives logit adjustment (LA); tau=0 gives CDT.
    """
    z = _f64(logits)
    c = _counts(class_counts)
    delta = (c.max() / c) ** gamma
    iota = tau * torch.log(c / c.sum())
    return _nll(log_softmax(z / delta + iota), target)


def la_loss(logits, target, class_counts, tau):
    """Logit-adjusted CE (Menon et al., ICLR 2021, Eq. 10): -log softmax(z + tau*log pi)[y].

    Exactly ``vs_loss(..., gamma=0, tau=tau)`` (the authors' VS-Loss train.py
    builds its 'LA' option as VSLoss(gamma=0)).
    """
    z = _f64(logits)
    pi = class_priors(class_counts)
    return _nll(log_softmax(z + tau * torch.log(pi)), target)


def cdt_loss(logits, target, class_counts, gamma):
    """Class-Dependent Temperatures loss, per sample.

    Ye, Chen, Zhan, Chao (2020), "Identifying and Compensating for Feature
    Deviation in Imbalanced Deep Learning" (arXiv:2001.01385), CDT loss:
        l = -log( exp(z_y / a_y) / sum_k exp(z_k / a_k) ),  a_k = (n_max / n_k)^gamma.
    The paper grid-searches gamma (CIFAR-10: [0, 0.4]; CIFAR-100/Tiny-ImageNet:
    [0, 0.2]; iNaturalist: [0, 0.1]).  Checked against the 'CDT' option of
    github.com/orparask/VS-Loss class_imbalance/train.py, which is
    VSLoss(tau=0, gamma=args.gamma) (default gamma=0.3): identical to
    ``vs_loss(..., tau=0)``.
    """
    z = _f64(logits)
    c = _counts(class_counts)
    a = (c.max() / c) ** gamma
    return _nll(log_softmax(z / a), target)


def ldam_loss(logits, target, class_counts, max_m=0.5, s=30.0):
    """LDAM (Cao et al., NeurIPS 2019), as in the LDAM-DRW / VS-Loss / IB-Loss repos.

    m_k = C / n_k^{1/4} scaled so max_k m_k = max_m; loss = CE(s * (z - m_y e_y), y).
    Only the target logit is shifted, so this is NOT a special case of vs_loss
    (whose additive term iota_k shifts every logit of class k); see the report.
    """
    z = _f64(logits)
    c = _counts(class_counts)
    m = c ** -0.25
    m = m * (max_m / m.max())
    onehot = torch.nn.functional.one_hot(target.long(), z.shape[1]).to(z.dtype)
    return _nll(log_softmax(s * (z - onehot * m[target.long()].unsqueeze(1))), target)


# ----------------------------------------------------------------------------
# 3. Seesaw loss (softmax / classification form)
# ----------------------------------------------------------------------------

def seesaw_cum_counts_after_batch(cum_counts_before, target, num_classes):
    """The mmpretrain convention: the buffer is incremented with THIS batch's
    labels before the loss of this batch is computed."""
    c = _f64(cum_counts_before).clone()
    c += torch.bincount(target.long(), minlength=num_classes).to(torch.float64)
    return c


def seesaw_loss(logits, target, cum_counts, p=0.8, q=2.0, eps=1e-2):
    """Seesaw loss, per sample.

    Wang, Zhang, Zang, Wu, Loy, Chen, Lin (CVPR 2021), "Seesaw Loss for
    Long-Tailed Instance Segmentation", Eq. (2)-(5) (S_ij = M_ij * C_ij).
    Checked against github.com/open-mmlab/mmpretrain
    mmpretrain/models/losses/seesaw_loss.py (commit
    ee7f2e88501f61aa95c742dd5f429f039935ee90; function seesaw_ce_loss and
    class SeesawLoss, defaults p=0.8, q=2.0, eps=1e-2, reduction='mean') and
    open-mmlab/mmdetection mmdet/models/losses/seesaw_loss.py (same
    seesaw_ce_loss; there it is applied to the foreground class scores only,
    with a separate objectness CE).

    ``cum_counts`` (K,) are the accumulated per-class counts INCLUDING the
    current batch: SeesawLoss.forward adds the batch's label counts to its
    cum_samples buffer before calling the loss (see
    ``seesaw_cum_counts_after_batch``).

        N_k   = max(cum_counts_k, 1)                       (zero counts -> 1)
        M_yj  = (N_j / N_y)^p  if N_j < N_y  else 1          (mitigation)
        s     = softmax(z).detach()                          (no gradient)
        C_ij  = (s_ij / max(s_iy, eps))^q  if that ratio > 1 else 1  (compensation)
        z~_ij = z_ij + log(M_yj * C_ij)  for j != y ;  z~_iy = z_iy
        loss_i = -log softmax(z~_i)[y_i]
    """
    z = _f64(logits)
    n = _f64(cum_counts).clamp(min=1.0)
    t = target.long()
    num, k = z.shape
    # mitigation factor, row y: M_yj
    ratio = n.unsqueeze(0) / n.unsqueeze(1)  # [i, j] = N_j / N_i
    mit = torch.where(ratio < 1.0, ratio ** p, torch.ones_like(ratio))[t]
    # compensation factor from the detached softmax
    with torch.no_grad():
        prob = torch.exp(log_softmax(z))
        self_p = prob.gather(1, t.view(-1, 1)).clamp(min=eps)
        sr = prob / self_p
        comp = torch.where(sr > 1.0, sr ** q, torch.ones_like(sr))
    onehot = torch.nn.functional.one_hot(t, k).to(z.dtype)
    z_adj = z + torch.log(mit * comp) * (1.0 - onehot)
    return _nll(log_softmax(z_adj), t)


# ----------------------------------------------------------------------------
# 4. MiSLAS label-aware smoothing
# ----------------------------------------------------------------------------

def label_aware_smoothing_values(class_counts, smooth_head, smooth_tail,
                                 shape="concave", power=None):
    """Per-class smoothing eps_k of MiSLAS (Zhong et al., CVPR 2021, Eq. 6).

    With n_1 = max count, n_K = min count, r_k = (n_k - n_K) / (n_1 - n_K) in [0, 1]:
        concave: eps_k = tail + (head - tail) * sin(pi/2 * r_k)
        linear : eps_k = tail + (head - tail) * r_k
        convex : eps_k = head + (head - tail) * sin(3*pi/2 + pi/2 * r_k)
        exp    : eps_k = tail + (head - tail) * r_k ** power
    The most frequent class gets smooth_head, the rarest smooth_tail (the
    authors' configs use head > tail, i.e. MORE smoothing for head classes).
    Balanced counts (n_1 == n_K) give 0/0 (NaN) in the authors' code; here a
    ValueError.  The authors' module casts eps_k to float32; here float64.
    """
    c = _counts(class_counts)
    n1, nk = c.max(), c.min()
    if float(n1) == float(nk):
        raise ValueError("label-aware smoothing needs max(count) != min(count)")
    r = (c - nk) / (n1 - nk)
    h, t = float(smooth_head), float(smooth_tail)
    if shape == "concave":
        return t + (h - t) * torch.sin(r * (math.pi / 2))
    if shape == "linear":
        return t + (h - t) * r
    if shape == "convex":
        return h + (h - t) * torch.sin(1.5 * math.pi + r * (math.pi / 2))
    if shape == "exp":
        if power is None:
            raise ValueError("shape='exp' needs power")
        return t + (h - t) * r ** power
    raise ValueError(f"unknown shape {shape!r}")


def label_aware_smoothing_loss(logits, target, class_counts, smooth_head,
                               smooth_tail, shape="concave", power=None):
    """MiSLAS label-aware smoothing loss, per sample.

    Zhong, Cui, Liu, Jia (CVPR 2021), "Improving Calibration for Long-Tailed
    Recognition", Sec. 3.2, Eq. (5)-(6).  Checked against
    github.com/dvlab-research/MiSLAS methods.py, class LabelAwareSmoothing
    (commit 0fc381e333d8a11170851b7af2058c59840969e0; train_stage2.py uses the
    default shape='concave'; CIFAR-10-LT imb 100/50/10: head 0.3/0.2/0.1,
    tail 0.0; CIFAR-100-LT imb 100/50/10: head 0.4/0.3/0.2, tail 0.1/0.0/0.0).

        loss_i = (1 - eps_y) * (-log p_iy) + eps_y * (-(1/K) sum_k log p_ik)
    The authors' module returns the plain mean of this over the batch.
    """
    z = _f64(logits)
    eps = label_aware_smoothing_values(class_counts, smooth_head, smooth_tail,
                                       shape, power)[target.long()]
    logp = log_softmax(z)
    return (1.0 - eps) * _nll(logp, target) + eps * (-logp.mean(dim=1))


# ----------------------------------------------------------------------------
# 5. Influence-balanced loss
# ----------------------------------------------------------------------------

def ib_class_weights(class_counts):
    """'IBReweight' weights of pseulki/IB-Loss cifar_train.py:
    w_k = (1/n_k) / sum_j (1/n_j) * K   (so sum_k w_k = K)."""
    c = _counts(class_counts)
    w = 1.0 / c
    return w / w.sum() * c.numel()


def ib_loss(logits, features, target, class_counts, alpha=1000.0,
            epsilon=1e-3, weighted=True):
    """Influence-Balanced loss (after warm-up), per sample.

    Park, Lim, Jeon, Choi (ICCV 2021), "Influence-Balanced Loss for Imbalanced
    Visual Classification", Eq. (8)/(9).  Checked against
    github.com/pseulki/IB-Loss losses.py class IBLoss and cifar_train.py
    (commit e15d390dae88d489b4c19d587cb3522e54a3dc9f).

        h_i   = sum_d |f_id|                     (L1 norm of penultimate features;
                                                  the authors' model returns it)
        g_i   = sum_k |softmax(z_i)_k - onehot(y_i)_k|   (= 2 (1 - p_iy))
        ib_i  = alpha / (g_i * h_i + epsilon)     (NOT detached: gradients flow
                                                  through g_i and h_i)
        loss_i = ib_i * w_{y_i} * (-log p_iy)
    w = ``ib_class_weights`` if ``weighted`` else 1.  The authors reduce with a
    PLAIN mean over the N samples (F.cross_entropy(reduction='none',
    weight=w) then .mean()), not a weight-normalised mean.
    Defaults: IBLoss class default alpha=10000, but cifar_train.py and
    tinyimage_train.py construct IBLoss(alpha=1000); epsilon is fixed at 0.001.
    Warm-up: plain UNWEIGHTED CE (nn.CrossEntropyLoss(weight=None)) for
    epochs < start_ib_epoch (default 100 of 200 for CIFAR; README uses 50 of
    100 for Tiny-ImageNet).
    """
    z = _f64(logits)
    f = _f64(features)
    t = target.long()
    logp = log_softmax(z)
    prob = torch.exp(logp)
    onehot = torch.nn.functional.one_hot(t, z.shape[1]).to(z.dtype)
    g = (prob - onehot).abs().sum(dim=1)
    h = f.abs().sum(dim=1)
    ib = alpha / (g * h + epsilon)
    ce = _nll(logp, t)
    if weighted:
        ce = ce * ib_class_weights(class_counts)[t]
    return ce * ib


# ----------------------------------------------------------------------------
# 6. ArcFace target logit (insightface arcface_torch)
# ----------------------------------------------------------------------------

def arcface_target_logit(cos_theta, s=64.0, m=0.5, easy_margin=False):
    """s * psi(theta) for the target class, as insightface's arcface_torch computed it.

    Deng, Guo, Xue, Zafeiriou (CVPR 2019), "ArcFace: Additive Angular Margin
    Loss for Deep Face Recognition", Eq. (3) plus the implementation fallback.
    Checked against github.com/deepinsight/insightface
    recognition/arcface_torch/losses.py at commit
    5ef98047542b18d911cef1e10c6c02273c4adff3 (CombinedMarginLoss with m1=1,
    m3=0, and class ArcFace; identical in 2e2e8c97):
        cos(theta + m) = cos*cos(m) - sqrt(1 - cos^2)*sin(m)
        not easy: psi = cos(theta+m)  if cos > cos(pi - m)   (theta < pi - m)
                        cos - m*sin(m) otherwise              (theta >= pi - m)
                  (their sinmm = sin(pi - m) * m = m*sin(m))
        easy    : psi = cos(theta+m)  if cos > 0, else cos
    Returns s * psi.  Note: the current arcface_torch (commits 657ae30e and
    later, HEAD 7fadd420) dropped the fallback: it sets cos(arccos(cos)+m) for
    all theta under torch.no_grad() and multiplies by s, so its gradient w.r.t.
    the cosines is s everywhere (straight-through), unlike this function.
    """
    c = _f64(cos_theta)
    sin = torch.sqrt((1.0 - c * c).clamp(min=0.0))
    cos_tm = c * math.cos(m) - sin * math.sin(m)
    if easy_margin:
        psi = torch.where(c > 0, cos_tm, c)
    else:
        psi = torch.where(c > math.cos(math.pi - m), cos_tm,
                          c - math.sin(math.pi - m) * m)
    return s * psi


def arcface_loss(cos_theta, target, s=64.0, m=0.5, easy_margin=False):
    """Per-sample softmax CE on s*cos with the target entry replaced by
    ``arcface_target_logit`` (the loss arcface_torch trains with)."""
    c = _f64(cos_theta)
    t = target.long()
    onehot = torch.nn.functional.one_hot(t, c.shape[1]).to(torch.bool)
    tgt = arcface_target_logit(c.gather(1, t.view(-1, 1)), s, m, easy_margin)
    logits = torch.where(onehot, tgt.expand_as(c), s * c)
    return _nll(log_softmax(logits), t)


# ----------------------------------------------------------------------------
# 7. PyTorch's weighted + label-smoothed cross-entropy
# ----------------------------------------------------------------------------

def smoothed_ce_weighted(logits, target, weight=None, smoothing=0.0,
                         reduction="mean"):
    """F.cross_entropy(x, y, weight=w, label_smoothing=e) written out.

    From pytorch/pytorch aten/src/ATen/native/LossNLL.cpp,
    cross_entropy_loss_label_smoothing (no ignore_index here):
        l_i = (1 - e) * w_{y_i} * (-log p_iy) + (e / K) * sum_k w_k * (-log p_ik)
    (the smoothing part weights each class k by ITS OWN w_k, not by w_{y_i}).
        'none': l (N,);  'sum': sum_i l_i;
        'mean': sum_i l_i / sum_i w_{y_i}   (both terms share the normaliser
                sum of target weights; N when weight is None).
    """
    z = _f64(logits)
    t = target.long()
    k = z.shape[1]
    w = torch.ones(k, dtype=torch.float64) if weight is None else _f64(weight)
    logp = log_softmax(z)
    nll = _nll(logp, t) * w[t]
    smooth = -(logp * w.unsqueeze(0)).sum(dim=1)
    per = (1.0 - smoothing) * nll + (smoothing / k) * smooth
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if reduction == "mean":
        return per.sum() / w[t].sum()
    raise ValueError(f"unknown reduction {reduction!r}")


# ----------------------------------------------------------------------------
# 8. L-Softmax / SphereFace lambda schedule
# ----------------------------------------------------------------------------

def l_softmax_lambda(step, base, gamma, power, lambda_min=0.0):
    """lambda = max(lambda_min, base * (1 + gamma * step)^(-power)).

    Liu, Wen, Yu, Yang (ICML 2016), "Large-Margin Softmax Loss for
    Convolutional Neural Networks" (README 'exponential lambda descent'), and
    Liu et al. (CVPR 2017) SphereFace.  The target logit becomes
    (lambda * |x||w|cos(theta) + |x||w|psi(theta)) / (1 + lambda).
    In the Caffe layers (github.com/wy1iu/LargeMargin_Softmax_Loss
    src/caffe/layers/largemargin_inner_product_layer.cpp Forward_cpu, and
    wy1iu/sphereface margin_inner_product_layer.cpp) the counter is
    incremented BEFORE use, so the k-th forward pass (k = 1, 2, ...) uses
    step = iteration_param + k.
    L-Softmax CIFAR-10 (myexamples/cifar10/model/cifar_train_test.prototxt):
    type DOUBLE (m=2), base 1000, gamma 2e-5, power 45, lambda_min absent ->
    proto default 0 (CIFAR-10+: gamma 1e-5).  SphereFace
    (train/code/sphereface_model.prototxt): type QUADRUPLE (m=4), base 1000,
    gamma 0.12, power 1, lambda_min 5.
    """
    return max(float(lambda_min),
               float(base) * (1.0 + float(gamma) * float(step)) ** (-float(power)))


# ----------------------------------------------------------------------------
# self-check
# ----------------------------------------------------------------------------

if __name__ == "__main__":
    torch.manual_seed(0)
    z = torch.randn(7, 5, dtype=torch.float64) * 3
    y = torch.tensor([0, 1, 2, 3, 4, 0, 3])
    counts = [500, 200, 80, 30, 10]
    tol = 1e-12

    def close(a, b):
        return float((a - b).abs().max()) < tol

    assert close(vs_loss(z, y, counts, 0.0, 1.3), la_loss(z, y, counts, 1.3))
    assert close(vs_loss(z, y, counts, 0.25, 0.0), cdt_loss(z, y, counts, 0.25))
    ce = _nll(log_softmax(z), y)
    assert close(vs_loss(z, y, counts, 0.0, 0.0), ce)
    assert close(seesaw_loss(z, y, [5, 5, 5, 5, 5], p=0.8, q=0.0), ce)
    for sh in ("concave", "linear", "convex"):
        assert close(label_aware_smoothing_loss(z, y, counts, 0.0, 0.0, sh), ce)
    assert close(label_aware_smoothing_loss(z, y, counts, 0.3, 0.1, "exp", 1.0),
                 label_aware_smoothing_loss(z, y, counts, 0.3, 0.1, "linear"))
    w = torch.rand(5, dtype=torch.float64) + 0.2
    F = torch.nn.functional
    for e in (0.0, 0.1, 0.35):
        for wt in (None, w):
            for red in ("none", "mean", "sum"):
                a = smoothed_ce_weighted(z, y, wt, e, red)
                b = F.cross_entropy(z, y, weight=wt, label_smoothing=e, reduction=red)
                assert close(a, b), (e, red)
    c = torch.tensor([0.9, 0.0, -0.5, -0.9, -0.99], dtype=torch.float64)
    ref = 64 * torch.where(c > math.cos(math.pi - 0.5), torch.cos(torch.acos(c) + 0.5),
                           c - 0.5 * math.sin(0.5))
    assert close(arcface_target_logit(c, 64.0, 0.5), ref)
    assert l_softmax_lambda(0, 1000, 0.12, 1, 5) == 1000.0
    assert l_softmax_lambda(10 ** 6, 1000, 0.12, 1, 5) == 5.0
    print("reference_long_tail self-check OK")
