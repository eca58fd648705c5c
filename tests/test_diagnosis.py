"""The diagnosis on synthetic curves with a known label and onset, with noise:
loss curves alone, as a run that records nothing else would give them."""

from collections import Counter

import numpy as np
import pytest

from lossbench.diagnosis import ADVICE, MIN_EPOCHS, diagnose
from helpers.synthetic_curves import curves

DRAWS = 40


def judge(epochs, train_loss, test_loss, test_acc=None):
    columns = {"epoch": epochs, "train_loss": train_loss, "test_loss": test_loss}
    return diagnose(columns if test_acc is None else {**columns, "test_acc": test_acc})


# (label, epochs, true onset, onset tolerance in epochs)
CASES = [
    ("still_learning", 40, 1, 0),
    ("overfitting", 100, 40, 3),
    ("overfitting", 200, 90, 4),
    ("overfitting_diverging", 100, 50, 3),
    ("overfitting_diverging", 200, 120, 4),
    ("data_problem", 60, 20, 3),
    ("data_problem", 150, 50, 4),
    ("stuck", 60, 30, 3),
    ("stuck", 200, 80, 4),
    ("bad_setup", 60, 40, 3),
    ("bad_setup", 120, 70, 4),
    # swings of +-25% hide the end of the ramp into the plateau: a wider tolerance
    ("oscillating", 80, 30, 10),
    ("oscillating", 200, 100, 25),
]


@pytest.mark.parametrize("label, n, onset, tolerance", CASES)
def test_label_and_onset_under_noise(label, n, onset, tolerance):
    got = Counter()
    for seed in range(DRAWS):
        e, train, test = curves(label, n, onset, np.random.default_rng(seed))
        d = judge(e, train, test)
        got[d.label] += 1
        if d.label == label:
            assert abs(d.onset_epoch - onset) <= tolerance, (seed, d)
            assert d.window[1] == n and d.advice == ADVICE[label]
    # at 2% noise at least 95% of draws get the right label
    assert got[label] >= 0.95 * DRAWS, got


def test_diverged_names_the_first_non_finite_epoch():
    e, train, test = curves("still_learning", 40, 1, np.random.default_rng(0))
    train[24:] = np.nan
    d = judge(e, train, test)
    assert d.label == "diverged" and d.onset_epoch == 25


def test_too_early():
    e, train, test = curves("still_learning", MIN_EPOCHS - 1, 1, np.random.default_rng(0))
    assert judge(e, train, test).label == "too_early"
    e, train, test = curves("still_learning", MIN_EPOCHS, 1, np.random.default_rng(0))
    assert judge(e, train, test).label == "still_learning"


def test_best_epoch_is_the_best_test_accuracy():
    e, train, test = curves("overfitting", 50, 20, np.random.default_rng(0))
    accuracy = np.linspace(0.5, 0.9, 50)
    accuracy[33] = 0.95
    assert judge(e, train, test, accuracy).best_epoch == 34


def test_a_fitted_training_loss_with_a_flat_test_loss_is_converged():
    # Both at their minimum and flat: more epochs will not help. Without accuracy
    # columns nothing says the gap is large.
    e = np.arange(1, 31, dtype=float)
    rng = np.random.default_rng(0)
    train = 2.0 * np.exp(-e / 3) + 0.005 * (1 + 0.1 * rng.standard_normal(30))
    test = 0.4 * np.exp(-e / 3) + 0.02 * (1 + 0.05 * rng.standard_normal(30))
    assert judge(e, train, test).label == "converged"


def _boundary_curves(test_change: float, seed: int):
    """Train clearly falling; test changing by ``test_change`` of its level over the window."""
    n = 60
    e = np.arange(1, n + 1, dtype=float)
    rng = np.random.default_rng(seed)
    train = (2.0 * np.exp(-e / 40) + 0.3) * (1 + 0.01 * rng.standard_normal(n))
    window_start = n - 15 + 1
    test = 0.8 + 0.8 * test_change * np.clip(e - window_start, 0, None) / 14
    return e, train, test * (1 + 0.01 * rng.standard_normal(n))


def test_stability_near_the_flat_rising_boundary():
    # The threshold is a 5% change over the window. Well inside either side the
    # label does not flip between noise draws; exactly on the boundary only the
    # two neighbouring labels occur, each in at least 20% of the draws.
    for change, expected in ((0.02, "overfitting"), (0.10, "overfitting_diverging")):
        labels = Counter(judge(*_boundary_curves(change, s)).label for s in range(100))
        assert labels[expected] >= 98, labels
    on_boundary = Counter(judge(*_boundary_curves(0.05, s)).label for s in range(100))
    assert set(on_boundary) <= {"overfitting", "overfitting_diverging"}
    assert min(on_boundary.values()) >= 20 and len(on_boundary) == 2, on_boundary
