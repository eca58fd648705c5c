"""Long-tailed subsampling of a balanced training set (Cao et al. 2019, Cui et al. 2019).

Exponential profile: class c keeps ``floor(n_max * r ** (-c / (C - 1)))`` images.
Step profile: the first ``C // 2`` classes keep ``n_max``, the rest ``floor(n_max / r)``.
"""

import math

import numpy as np

from lossbench.errors import UserError

PROFILES = ("exp", "step")


def long_tail_counts(n_max: int, num_classes: int, imbalance_ratio: float, profile: str = "exp") -> list[int]:
    if imbalance_ratio < 1:
        raise UserError(f"dataset.imbalance_ratio={imbalance_ratio} is invalid: it must be >= 1 (1 keeps the data balanced)")
    if profile not in PROFILES:
        raise UserError(f"dataset.profile={profile!r} is unknown: valid profiles are {', '.join(PROFILES)}")
    if num_classes == 1:
        return [n_max]
    if profile == "exp":
        # The small epsilon keeps exact powers (e.g. r = 100, c = C-1 gives 50) from
        # flooring one below because of the float pow.
        return [int(math.floor(n_max * imbalance_ratio ** (-c / (num_classes - 1)) + 1e-9)) for c in range(num_classes)]
    head = num_classes // 2
    tail = int(math.floor(n_max / imbalance_ratio + 1e-9))
    return [n_max] * head + [tail] * (num_classes - head)


def long_tail_indices(labels: np.ndarray, num_classes: int, imbalance_ratio: float, profile: str, seed: int) -> np.ndarray:
    """Indices of the images kept, per class a seeded random subset of the counts above.

    ``n_max`` is the smallest class's size, so every class can supply its count.
    The result is sorted, so the kept images keep their original order.
    """
    available = np.bincount(labels, minlength=num_classes)
    counts = long_tail_counts(int(available.min()), num_classes, imbalance_ratio, profile)
    if min(counts) < 1:
        raise UserError(
            f"dataset.imbalance_ratio={imbalance_ratio} leaves no image in the rarest class "
            f"(the smallest class has {available.min()} images): use a ratio <= {available.min()}"
        )
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in enumerate(counts)]
    return np.sort(np.concatenate(kept))
