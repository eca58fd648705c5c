"""Long-tailed subsampling of a balanced training set (Cao et al. 2019, Cui et al. 2019).

Exponential profile: class c keeps ``floor(n_max * r ** (-c / (C - 1)))`` images.
Step profile: the first ``C // 2`` classes keep ``n_max``, the rest ``floor(n_max / r)``.
"""

import math

import numpy as np

from lossbench.errors import UserError

PROFILES = ("exp", "step")
# ldam_drw: the images LDAM-DRW's code keeps (and the long-tail literature since, which builds CIFAR-LT
# with it); random: a subset drawn with dataset.subsample_seed
SUBSAMPLES = ("ldam_drw", "random")


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


def _checked(counts: list[int], available: np.ndarray, imbalance_ratio: float) -> list[int]:
    if min(counts) < 1:
        raise UserError(
            f"dataset.imbalance_ratio={imbalance_ratio} leaves no image in the rarest class "
            f"(the smallest class has {available.min()} images): use a ratio <= {available.min()}"
        )
    return counts


def long_tail_indices(labels: np.ndarray, num_classes: int, imbalance_ratio: float, profile: str, seed: int) -> np.ndarray:
    """Indices of the images kept, per class a seeded random subset of the counts above.

    ``n_max`` is the smallest class's size, so every class can supply its count.
    The result is sorted, so the kept images keep their original order.
    """
    available = np.bincount(labels, minlength=num_classes)
    counts = _checked(long_tail_counts(int(available.min()), num_classes, imbalance_ratio, profile), available,
                      imbalance_ratio)
    rng = np.random.default_rng(seed)
    kept = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in enumerate(counts)]
    return np.sort(np.concatenate(kept))


def ldam_drw_counts(images: int, num_classes: int, imbalance_ratio: float, profile: str) -> list[int]:
    """The counts as Cao et al.'s code computes them: the largest class keeps the
    mean class size, ``int(n_max * (1 / r) ** (c / (C - 1)))`` (exp), or ``n_max``
    then ``int(n_max / r)`` for each half of the classes (step)."""
    n_max, factor = images / num_classes, 1 / imbalance_ratio
    if profile == "exp":
        return [int(n_max * factor ** (c / (num_classes - 1.0))) for c in range(num_classes)]
    return [int(n_max)] * (num_classes // 2) + [int(n_max * factor)] * (num_classes - num_classes // 2)


def ldam_drw_indices(labels: np.ndarray, num_classes: int, imbalance_ratio: float, profile: str) -> np.ndarray:
    """The images Cao et al. 2019 keep (``IMBALANCECIFAR10`` of the LDAM-DRW code):
    NumPy's global generator seeded with 0 once, then for each class in label
    order its indices in the training files shuffled in place, the first count
    kept. In their order: class by class, each in its shuffled order."""
    counts = _checked(ldam_drw_counts(len(labels), num_classes, imbalance_ratio, profile),
                      np.bincount(labels, minlength=num_classes), imbalance_ratio)
    state = np.random.RandomState(0)  # np.random.seed(0): the same generator as NumPy's global one
    kept = []
    for c, n in enumerate(counts):
        indices = np.flatnonzero(labels == c)
        state.shuffle(indices)
        kept.append(indices[:n])
    return np.concatenate(kept)
