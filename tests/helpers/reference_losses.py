"""Independent float64 NumPy reference for the lossbench classification losses.

Written directly from the losses' formulas, without looking at the library's
implementation. Pure NumPy, float64, natural log. Every function returns the
PER-SAMPLE loss as a 1-D float64 array of shape (N,) (ref_class_weights returns
the (K,) weight vector, ref_psi is elementwise over theta, ref_supcon returns one
value per anchor, shape (M,)). No reduction and no ignore_index handling.

Run ``python tests/reference_losses.py`` to execute the self-check at the bottom.
"""

import math

import numpy as np


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

def _f64(x):
    return np.asarray(x, dtype=np.float64)


def _int(x):
    return np.asarray(x, dtype=np.int64)


def _logsumexp_row(row):
    """log(sum_k exp(row_k)), stable: subtract the max first."""
    row = _f64(row)
    m = np.max(row)
    if not np.isfinite(m):  # all -inf (or a +inf present): let numpy decide
        return float(np.log(np.sum(np.exp(row))))
    return float(m + np.log(np.sum(np.exp(row - m))))


def _log_softmax(logits):
    """Row-wise log softmax of an (N, K) array, stable."""
    z = _f64(logits)
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        out[i] = z[i] - _logsumexp_row(z[i])
    return out


def _softmax(logits):
    return np.exp(_log_softmax(logits))


def _ce_from_scores(scores, target):
    """Per-sample cross entropy -log softmax(scores)[i, y_i]."""
    scores = _f64(scores)
    target = _int(target)
    n = scores.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        out[i] = _logsumexp_row(scores[i]) - scores[i, target[i]]
    return out


def _unit_rows(a):
    """Divide each row by its L2 norm (no epsilon: zero rows are not valid input)."""
    a = _f64(a)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _cosines(embeddings, weight):
    """cos_k for every sample: <x/|x|, W_k/|W_k|>, shape (N, K)."""
    return _unit_rows(embeddings) @ _unit_rows(weight).T


def _check_counts(class_counts):
    n = _f64(class_counts)
    if np.any(n <= 0):
        raise ValueError("class_counts must all be positive")
    return n


# ----------------------------------------------------------------------------
# 1-2. cross entropy, NLL
# ----------------------------------------------------------------------------

def ref_ce(logits, target):
    """l_i = -log p_{y_i}, p = softmax(z_i) = logsumexp(z_i) - z_{i, y_i}."""
    return _ce_from_scores(logits, target)


def ref_nll(log_probs, target):
    """l_i = -log_probs[i, y_i] (input already log-probabilities)."""
    lp = _f64(log_probs)
    target = _int(target)
    return np.array([-lp[i, target[i]] for i in range(lp.shape[0])], dtype=np.float64)


# ----------------------------------------------------------------------------
# 3-4. class weights, balanced CE
# ----------------------------------------------------------------------------

def ref_class_weights(class_counts, scheme, beta=0.9999):
    """a_c ~ 1/n_c ("inverse") or (1-beta)/(1-beta**n_c) ("effective"), scaled so sum_c a_c = K."""
    n = _check_counts(class_counts)
    k = n.shape[0]
    if scheme == "inverse":
        raw = 1.0 / n
    elif scheme == "effective":
        raw = np.array([(1.0 - beta) / (1.0 - beta ** n_c) for n_c in n], dtype=np.float64)
    else:
        raise ValueError("unknown scheme %r" % (scheme,))
    return raw * (k / np.sum(raw))


def ref_balanced_ce(logits, target, class_counts, scheme="effective", beta=0.9999):
    """l_i = a_{y_i} * (-log p_{y_i}), a = ref_class_weights(class_counts, scheme, beta)."""
    a = ref_class_weights(class_counts, scheme, beta)
    target = _int(target)
    return a[target] * ref_ce(logits, target)


# ----------------------------------------------------------------------------
# 5. label smoothing
# ----------------------------------------------------------------------------

def ref_label_smoothing(logits, target, smoothing=0.1, exclusive=False):
    """l_i = -sum_k q_k log p_k; q = (1-e) onehot + e/K, or exclusive q_y = 1-e, q_{k!=y} = e/(K-1)."""
    logp = _log_softmax(logits)
    target = _int(target)
    n, k = logp.shape
    e = float(smoothing)
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        q = np.empty(k, dtype=np.float64)
        for c in range(k):
            if exclusive:
                q[c] = (1.0 - e) if c == target[i] else e / (k - 1)
            else:
                q[c] = (1.0 - e) * (1.0 if c == target[i] else 0.0) + e / k
        out[i] = -np.sum(q * logp[i])
    return out


# ----------------------------------------------------------------------------
# 6. sparse (top-k) softmax
# ----------------------------------------------------------------------------

def ref_sparse_softmax(logits, target, k):
    """l_i = logsumexp(k largest entries of z_i) - z_{i, y_i} (target not forced into the set; k capped at K)."""
    z = _f64(logits)
    target = _int(target)
    n, num_classes = z.shape
    kk = min(int(k), num_classes)
    if kk < 1:
        raise ValueError("k must be >= 1")
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        top = np.sort(z[i])[::-1][:kk]
        out[i] = _logsumexp_row(top) - z[i, target[i]]
    return out


# ----------------------------------------------------------------------------
# 7. focal
# ----------------------------------------------------------------------------

def ref_focal(logits, target, gamma=2.0, alpha=None):
    """l_i = -a_y (1 - p_y)^gamma log p_y; alpha None -> a=1, scalar -> a_y = alpha, sequence -> a_y = alpha[y]."""
    logp = _log_softmax(logits)
    target = _int(target)
    n = logp.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        y = target[i]
        logp_y = logp[i, y]
        p_y = math.exp(logp_y)
        if alpha is None:
            a = 1.0
        elif np.ndim(alpha) == 0:
            a = float(alpha)
        else:
            a = float(_f64(alpha)[y])
        out[i] = -a * (1.0 - p_y) ** gamma * logp_y
    return out


# ----------------------------------------------------------------------------
# 8-9. cosface / am_softmax, arcface
# ----------------------------------------------------------------------------

def ref_cosface(embeddings, weight, target, s=64.0, m=0.35):
    """CE on s*(cos_k - m*[k==y]), cos_k = <x/|x|, W_k/|W_k|> (also am_softmax)."""
    cos = _cosines(embeddings, weight)
    target = _int(target)
    scores = s * cos.copy()
    for i in range(cos.shape[0]):
        scores[i, target[i]] = s * (cos[i, target[i]] - m)
    return _ce_from_scores(scores, target)


def ref_arcface(embeddings, weight, target, s=64.0, m=0.5):
    """CE on s*cos(theta_y + m) for the target and s*cos_k otherwise, theta = arccos(clip(cos, -1, 1));
    past theta_y = pi - m the target's is s*(cos theta_y - m sin m) (Deng et al.'s code), so that it keeps falling."""
    cos = np.clip(_cosines(embeddings, weight), -1.0, 1.0)
    target = _int(target)
    scores = s * cos.copy()
    for i in range(cos.shape[0]):
        theta_y = math.acos(cos[i, target[i]])
        if theta_y <= math.pi - m:
            scores[i, target[i]] = s * math.cos(theta_y + m)
        else:
            scores[i, target[i]] = s * (cos[i, target[i]] - m * math.sin(m))
    return _ce_from_scores(scores, target)


# ----------------------------------------------------------------------------
# 10-12. psi, l_softmax, sphereface
# ----------------------------------------------------------------------------

def ref_psi(theta, m):
    """psi(t) = (-1)^j cos(m t) - 2j, j = clip(floor(t m / pi), 0, m-1), elementwise."""
    theta = _f64(theta)
    m = int(m)
    j = np.clip(np.floor(theta * m / math.pi), 0, m - 1)
    sign = np.where(j % 2 == 0, 1.0, -1.0)
    return sign * np.cos(m * theta) - 2.0 * j


def _large_margin_scores(x, w, target, m, lam):
    """Linear scores W x with the target replaced by (lam*|W_y||x|cos t + |W_y||x|psi(t)) / (1+lam)."""
    target = _int(target)
    scores = x @ w.T
    for i in range(x.shape[0]):
        y = target[i]
        norm_w = np.linalg.norm(w[y])
        norm_x = np.linalg.norm(x[i])
        cos_t = float(np.clip(np.dot(w[y], x[i]) / (norm_w * norm_x), -1.0, 1.0))
        theta = math.acos(cos_t)
        psi = float(ref_psi(theta, m))
        scores[i, y] = (lam * norm_w * norm_x * cos_t + norm_w * norm_x * psi) / (1.0 + lam)
    return scores


def ref_l_softmax(embeddings, weight, target, m=2, lam=0.0):
    """CE on f_k = W_k.x, target replaced by (lam |W_y||x| cos t_y + |W_y||x| psi(t_y)) / (1 + lam)."""
    x = _f64(embeddings)
    w = _f64(weight)
    return _ce_from_scores(_large_margin_scores(x, w, target, m, lam), target)


def ref_sphereface(embeddings, weight, target, m=4, lam=0.0):
    """As ref_l_softmax with every W_k normalised to unit norm (|W| = 1), x not normalised."""
    x = _f64(embeddings)
    w = _unit_rows(weight)
    return _ce_from_scores(_large_margin_scores(x, w, target, m, lam), target)


# ----------------------------------------------------------------------------
# 13-14. soft-margin softmax, anchor
# ----------------------------------------------------------------------------

def ref_sm_softmax(logits, target, m):
    """CE on logits with the target logit lowered by m: z_y - m."""
    z = _f64(logits).copy()
    target = _int(target)
    for i in range(z.shape[0]):
        z[i, target[i]] -= m
    return _ce_from_scores(z, target)


def ref_anchor(logits, target, gamma=0.5, delta=0.05):
    """l = -log s(z_y) - sum_{j!=y} (1 + s(z_j) - q*)^gamma log(1 - s(z_j)), q* = max(s(z_y) - delta, 0)."""
    z = _f64(logits)
    target = _int(target)
    n, k = z.shape
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        y = target[i]
        log_p = -np.logaddexp(0.0, -z[i])        # log sigmoid(z)
        log_1mp = -np.logaddexp(0.0, z[i])       # log(1 - sigmoid(z))
        p = np.exp(log_p)
        q_star = max(p[y] - delta, 0.0)
        total = -log_p[y]
        for j in range(k):
            if j == y:
                continue
            total -= (1.0 + p[j] - q_star) ** gamma * log_1mp[j]
        out[i] = total
    return out


# ----------------------------------------------------------------------------
# 15. supervised contrastive
# ----------------------------------------------------------------------------

def ref_supcon(features, labels, temperature=0.1):
    """l_i = -(1/|P(i)|) sum_{p in P(i)} log(exp(z_i.z_p/t) / sum_{a != i} exp(z_i.z_a/t)), rows L2-normalised."""
    zf = _unit_rows(features)
    labels = _int(labels)
    m_rows = zf.shape[0]
    sim = (zf @ zf.T) / temperature
    out = np.zeros(m_rows, dtype=np.float64)
    for i in range(m_rows):
        others = [a for a in range(m_rows) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            out[i] = 0.0
            continue
        log_denominator = _logsumexp_row(sim[i, others])
        out[i] = -np.mean([sim[i, p] - log_denominator for p in positives])
    return out


# ----------------------------------------------------------------------------
# 16. MSE / Brier
# ----------------------------------------------------------------------------

def ref_mse(logits, target):
    """l_i = sum_k (p_k - onehot_k)^2, p = softmax(z) (summed over classes, not averaged)."""
    p = _softmax(logits)
    target = _int(target)
    n, k = p.shape
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        onehot = np.zeros(k, dtype=np.float64)
        onehot[target[i]] = 1.0
        out[i] = np.sum((p[i] - onehot) ** 2)
    return out


# ----------------------------------------------------------------------------
# 17-20. long-tail / modern set
# ----------------------------------------------------------------------------

def ref_ldam(embeddings, weight, target, class_counts, s=30.0, max_m=0.5):
    """CE on s*(cos_k - Delta_y [k==y]), Delta_c = C / n_c^(1/4), C such that max_c Delta_c = max_m."""
    n = _check_counts(class_counts)
    raw = 1.0 / n ** 0.25
    delta = raw * (max_m / np.max(raw))
    cos = _cosines(embeddings, weight)
    target = _int(target)
    scores = s * cos.copy()
    for i in range(cos.shape[0]):
        y = target[i]
        scores[i, y] = s * (cos[i, y] - delta[y])
    return _ce_from_scores(scores, target)


def ref_balanced_softmax(logits, target, class_counts):
    """CE on z_k + log n_k."""
    z = _f64(logits)
    n = _f64(class_counts)
    return _ce_from_scores(z + np.log(n)[None, :], target)


def ref_logit_adjusted(logits, target, class_counts, tau=1.0):
    """CE on z_k + tau * log pi_k, pi_k = n_k / sum n."""
    z = _f64(logits)
    n = _f64(class_counts)
    pi = n / np.sum(n)
    return _ce_from_scores(z + tau * np.log(pi)[None, :], target)


def ref_poly1(logits, target, epsilon=1.0):
    """l_i = -log p_y + epsilon * (1 - p_y)."""
    ce = ref_ce(logits, target)
    return ce + epsilon * (1.0 - np.exp(-ce))


# ----------------------------------------------------------------------------
# self-check against the published test vectors and identities
# ----------------------------------------------------------------------------

if __name__ == "__main__":
    TOL = 1e-6

    def close(a, b, tol=TOL):
        a = _f64(a)
        b = _f64(b)
        assert a.shape == b.shape or b.ndim == 0, (a.shape, b.shape)
        assert np.all(np.abs(a - b) <= tol), (a, b, np.abs(a - b).max())

    # test vector 1
    z = [[0.1, 0.2, 0.3, 0.4], [0.1, 0.1, 0.1, 0.1]]
    y = [2, 3]
    close(ref_ce(z, y).mean(), 1.364415)
    close(ref_label_smoothing(z, y, 0.1).mean(), 1.366915)
    close(ref_nll(_log_softmax(z), y), ref_ce(z, y), 1e-12)
    assert ref_ce(z, y).shape == (2,) and ref_ce(z, y).dtype == np.float64

    # test vector 2
    z = [[0.1, 8, 0.1], [0.1, 0.1, 8]]
    y = [1, 2]
    close(ref_label_smoothing(z, y, 0.2, exclusive=True).mean(), 1.580741)
    close(ref_label_smoothing(z, y, 0.2, exclusive=False).mean(), 1.054075)

    # test vector 3
    z = [np.log([0.1, 0.1, 0.1, 0.36, 0.34])]
    y = [3]
    close(ref_ce(z, y), [1.021651])
    close(ref_label_smoothing(z, y, 0.1), [1.099650])

    # focal test vectors (2 classes: logits log([1-p, p]) give p_y = p)
    close(ref_focal([np.log([0.1, 0.9])], [1], gamma=2.0), [1.0536e-3], 1e-7)
    close(ref_focal([np.log([0.4, 0.6])], [1], gamma=2.0), [8.1732e-2], 1e-6)

    # identities
    rng = np.random.default_rng(0)
    N, K, D = 7, 5, 6
    z = rng.normal(size=(N, K)) * 3
    y = rng.integers(0, K, size=N)
    ce = ref_ce(z, y)
    close(ref_focal(z, y, gamma=0.0), ce, 1e-12)
    close(ref_focal(z, y, gamma=0.0, alpha=0.25), 0.25 * ce, 1e-12)
    alpha_vec = np.linspace(0.1, 0.9, K)
    close(ref_focal(z, y, gamma=0.0, alpha=alpha_vec), alpha_vec[y] * ce, 1e-12)
    close(ref_sparse_softmax(z, y, K), ce, 1e-12)
    # top-k logsumexp >= the largest logit >= z_y when y is outside the set, so always positive
    assert np.all(ref_sparse_softmax(z, y, 2) > 0)
    assert np.all(ref_sparse_softmax(z, y, 2) <= ce + 1e-12)
    close(ref_poly1(z, y, epsilon=0.0), ce, 1e-12)
    close(ref_balanced_softmax(z, y, [10] * K), ce, 1e-12)
    close(ref_logit_adjusted(z, y, [10] * K), ce, 1e-12)
    close(ref_sm_softmax(z, y, 0.0), ce, 1e-12)
    close(ref_label_smoothing(z, y, 0.0), ce, 1e-12)
    close(ref_balanced_ce(z, y, [10] * K, "inverse"), ce, 1e-12)
    close(ref_balanced_ce(z, y, [10] * K, "effective"), ce, 1e-12)
    for scheme in ("inverse", "effective"):
        w = ref_class_weights([500, 100, 20, 5, 1], scheme)
        close(np.sum(w), K, 1e-12)
        assert np.all(np.diff(w) > 0)
    close(ref_class_weights([1, 2, 4], "inverse"), 3 * np.array([4, 2, 1]) / 7.0, 1e-12)

    x = rng.normal(size=(N, D))
    W = rng.normal(size=(K, D))
    s = 64.0
    cos = _unit_rows(x) @ _unit_rows(W).T
    close(ref_cosface(x, W, y, s=s, m=0.0), ref_ce(s * cos, y), 1e-9)
    close(ref_arcface(x, W, y, s=s, m=0.0), ref_ce(s * cos, y), 1e-9)
    close(ref_ldam(x, W, y, [10] * K, s=30.0, max_m=0.0), ref_ce(30.0 * cos, y), 1e-9)
    close(ref_l_softmax(x, W, y, m=1, lam=0.0), ref_ce(x @ W.T, y), 1e-9)
    close(ref_sphereface(x, W, y, m=1, lam=0.0), ref_ce(x @ _unit_rows(W).T, y), 1e-9)
    # huge lambda: the annealed target score tends to the plain score
    close(ref_l_softmax(x, W, y, m=4, lam=1e12), ref_ce(x @ W.T, y), 1e-6)

    theta = np.linspace(0.0, math.pi, 101)
    close(ref_psi(theta, 1), np.cos(theta), 1e-12)
    for m in (2, 3, 4):
        for j in range(1, m):
            t = j * math.pi / m
            left = ref_psi(t - 1e-9, m)
            right = ref_psi(t + 1e-9, m)
            close(left, right, 1e-6)
        # monotone decreasing on [0, pi], psi(0) = 1, psi(pi) = 1 - 2m
        vals = ref_psi(np.linspace(0.0, math.pi, 1001), m)
        assert np.all(np.diff(vals) <= 1e-12)
        close(vals[0], 1.0, 1e-12)
        close(vals[-1], 1.0 - 2 * m, 1e-12)

    # huge logits stay finite
    zbig = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]])
    ybig = [1, 0]
    for fn in (ref_ce, ref_mse, ref_anchor, ref_poly1,
               lambda a, b: ref_label_smoothing(a, b, 0.1),
               lambda a, b: ref_label_smoothing(a, b, 0.1, exclusive=True),
               lambda a, b: ref_sparse_softmax(a, b, 2),
               lambda a, b: ref_focal(a, b, 2.0),
               lambda a, b: ref_sm_softmax(a, b, 1.0),
               lambda a, b: ref_balanced_softmax(a, b, [100, 10, 1]),
               lambda a, b: ref_logit_adjusted(a, b, [100, 10, 1])):
        assert np.all(np.isfinite(fn(zbig, ybig)))
    close(ref_ce(zbig, ybig), [2e4, 2e4], 1e-9)

    # anchor: hand computation for one sample
    za = np.array([[0.3, -1.2, 2.0]])
    sig = 1.0 / (1.0 + np.exp(-za[0]))
    qs = max(sig[2] - 0.05, 0.0)
    expected = -np.log(sig[2]) - sum((1 + sig[j] - qs) ** 0.5 * np.log(1 - sig[j]) for j in (0, 1))
    close(ref_anchor(za, [2]), [expected], 1e-12)

    # mse: perfect prediction ~ 0, uniform prediction = (1-1/K)^2 + (K-1)/K^2
    close(ref_mse([[0.0] * K], [0]), [(1 - 1 / K) ** 2 + (K - 1) / K ** 2], 1e-12)

    # supcon: two views, hand computation on a tiny example
    feats = rng.normal(size=(6, 4))
    labs = np.array([0, 1, 0, 0, 1, 0])
    sc = ref_supcon(feats, labs, 0.1)
    assert sc.shape == (6,) and np.all(np.isfinite(sc))
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    e = np.exp(f @ f.T / 0.1)
    i = 0
    pos = [2, 3, 5]
    denom = sum(e[i, a] for a in range(6) if a != i)
    close(sc[i], -np.mean([np.log(e[i, p] / denom) for p in pos]), 1e-9)

    print("reference_losses self-check: all assertions passed")
