"""A validation split held out of the training set, stratified per class, so
that the epoch a run reports, the temperature of its calibration and the tau
of its post-hoc adjustment are chosen without looking at the test set.

Class c with n_c training images gives ``round(fraction * n_c)`` of them to
validation, but at least one where n_c >= 2 and never its last training image.
Which images go is drawn per class by ``val_seed`` alone, so runs that differ
only in their training seed validate on the same images.
"""

import numpy as np


def validation_counts(class_counts, fraction: float) -> list[int]:
    if fraction == 0:
        return [0] * len(class_counts)
    return [min(max(round(fraction * n), 1 if n >= 2 else 0), n - 1) for n in class_counts]


def validation_indices(labels: np.ndarray, num_classes: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices), each sorted so the images keep their order."""
    counts = validation_counts(np.bincount(labels, minlength=num_classes).tolist(), fraction)
    rng = np.random.default_rng(seed)
    held = [rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in enumerate(counts)]
    val = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(len(labels)), val, assume_unique=True)
    return train, val.astype(np.int64)
