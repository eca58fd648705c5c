"""Loss curves with a known diagnosis and onset, plus noise, for the diagnosis tests."""

import numpy as np


def _ramp(e, start, stop, at, after_slope=0.0):
    """Linear from ``start`` (epoch 1) to ``stop`` at epoch ``at``, then ``after_slope`` per epoch."""
    before = start + (stop - start) * (e - 1) / (at - 1)
    return np.where(e <= at, before, stop + after_slope * (e - at))


def curves(label: str, n: int, onset: int, rng: np.random.Generator, noise: float = 0.02):
    """(epochs, train_loss, test_loss) for ``label`` whose phase begins at ``onset``."""
    e = np.arange(1, n + 1, dtype=float)
    falling_train = 2.0 * np.exp(-e / (0.6 * n)) + 0.02
    if label == "still_learning":
        train, test = falling_train, 2.2 * np.exp(-e / (0.6 * n)) + 0.3
    elif label == "overfitting":
        train, test = falling_train, _ramp(e, 2.0, 0.6, onset)
    elif label == "overfitting_diverging":
        train, test = falling_train, _ramp(e, 2.0, 0.6, onset, after_slope=0.01)
    elif label == "data_problem":
        train, test = _ramp(e, 2.0, 0.5, onset), _ramp(e, 2.4, 0.8, n)
    elif label == "stuck":
        train, test = _ramp(e, 2.0, 0.5, onset), _ramp(e, 2.2, 0.7, onset)
    elif label == "bad_setup":
        train, test = _ramp(e, 2.0, 0.5, onset, after_slope=0.02), _ramp(e, 2.2, 0.7, onset, after_slope=0.02)
    elif label == "oscillating":
        swing = 0.25 * np.sin(e * 2.1)
        train, test = _ramp(e, 2.0, 0.5, onset) * (1 + np.where(e > onset, swing, 0)), _ramp(e, 2.2, 0.7, onset) * (
            1 + np.where(e > onset, swing[::-1], 0)
        )
    else:
        raise ValueError(label)
    train = train * (1 + noise * rng.standard_normal(n))
    test = test * (1 + noise * rng.standard_normal(n))
    return e, train, test
