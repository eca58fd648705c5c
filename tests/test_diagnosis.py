"""The diagnosis on synthetic curves with a known label and onset, with noise:
loss curves alone, as a run that records nothing else would give them."""

import json
from collections import Counter

import numpy as np
import pytest

from lossbench.diagnosis import ADVICE, MIN_EPOCHS, Diagnosis, RunFacts, diagnose
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


# Curves with the other columns metrics.csv records, for the labels that read them.

def _healthy(n=30, seed=0):
    """A run that fits, with accuracy and a cosine schedule: flat and at its best at the end."""
    rng = np.random.default_rng(seed)
    e = np.arange(1, n + 1, dtype=float)
    train = 2.0 * np.exp(-e / 3) + 0.006 * (1 + 0.1 * rng.standard_normal(n))
    test = 1.5 * np.exp(-e / 3) + 0.03 * (1 + 0.05 * rng.standard_normal(n))
    acc = np.minimum(0.99, 0.1 + 0.89 * (1 - np.exp(-e / 2))) + 0.003 * rng.standard_normal(n)
    train_acc = np.minimum(1.0, 0.1 + 0.9 * (1 - np.exp(-e / 2)))
    return {"epoch": e, "train_loss": train, "test_loss": test, "test_nll": test.copy(), "test_acc": acc,
            "test_balanced_acc": acc.copy(), "train_acc": train_acc, "lr": 0.05 * (1 + np.cos(np.pi * e / n)),
            "grad_norm_mean": np.full(n, 0.5), "grad_norm_max": np.full(n, 1.5), "update_ratio": 0.1 * np.exp(-e / 10)}


FACTS = RunFacts(num_classes=10, train_counts=[100] * 10, test_size=1000)


def test_a_run_flat_at_its_best_with_the_schedule_annealed_is_converged():
    d = diagnose(_healthy(), FACTS)
    assert d.label == "converged" and d.window == (23, 30)
    assert "learning rate" in d.sentence() and "more epochs will not help" in d.advice


def test_a_loss_orders_of_magnitude_above_its_start_is_exploding():
    c = _healthy()
    c["train_loss"][15:] = 2.3 * 10.0 ** np.linspace(1, 8, 15)  # finite, but up to 2e8
    c["test_loss"][15:] = c["test_nll"][15:] = 2.3
    d = diagnose(c, FACTS)
    # 100 x max(the first epoch's loss 1.44, ln 10 = 2.30) = 230.3: first passed at epoch 19 (727)
    assert d.label == "exploding" and d.onset_epoch == 19
    assert "lower the learning rate" in d.advice


def test_a_gradient_norm_that_blows_up_is_exploding():
    c = _healthy()
    c["grad_norm_max"][20] = 0.5 * 150  # 150x the first epoch's mean
    d = diagnose(c, FACTS)
    assert d.label == "exploding" and "gradient norm reached 75" in d.sentence()


@pytest.mark.parametrize("update_ratio, advice", [
    (1e-6, "raise the learning rate"),
    (5.0, "lower the learning rate"),
    (0.01, "check the labels, the data and the initialisation"),
])
def test_accuracy_at_chance_is_not_learning_with_advice_from_the_update_ratio(update_ratio, advice):
    c = _healthy()
    n = len(c["epoch"])
    rng = np.random.default_rng(1)
    c.update(train_loss=np.full(n, 2.3) + 0.01 * rng.standard_normal(n), test_loss=np.full(n, 2.31),
             test_acc=0.1 + 0.005 * rng.standard_normal(n), train_acc=np.full(n, 0.1), update_ratio=np.full(n, update_ratio))
    c["test_balanced_acc"] = c["test_acc"]
    d = diagnose(c, FACTS)
    assert d.label == "not_learning" and advice in d.advice
    other = "lower the learning rate" if advice == "raise the learning rate" else "raise the learning rate"
    assert other not in d.advice


def test_a_model_that_fits_train_but_predicts_test_at_chance_has_a_data_problem():
    c = _healthy()
    c["test_acc"] = c["test_balanced_acc"] = np.full(len(c["epoch"]), 0.1)
    d = diagnose(c, FACTS)
    assert d.label == "data_problem" and "does not match the training data" in d.advice


def test_chance_on_long_tailed_training_data_is_the_majority_share():
    c = _healthy()
    n = len(c["epoch"])
    # predicting the head class: 50% train accuracy, balanced test accuracy 1/K
    c.update(train_acc=np.full(n, 0.5), test_acc=np.full(n, 0.1), test_balanced_acc=np.full(n, 0.1),
             update_ratio=np.full(n, 1e-6))
    facts = RunFacts(num_classes=10, train_counts=[450] + [50] * 9, test_size=1000)
    d = diagnose(c, facts)
    assert d.label == "not_learning" and "majority class's share 0.500" in d.sentence()


def test_accuracy_falling_from_its_best_after_loss_spikes_is_unstable():
    c = _healthy()
    c["train_loss"][[22, 26]] = 1.5  # spikes after the best epoch
    c["test_acc"][21:] = c["test_balanced_acc"][21:] = 0.9
    d = diagnose(c, FACTS)
    assert d.label == "unstable" and d.onset_epoch == 23
    assert "spiked at epochs 23, 27" in d.sentence()


def test_a_rising_nll_with_accuracy_holding_is_overconfident():
    c = _healthy()
    c["test_nll"] = c["test_loss"] = c["test_loss"] + np.clip(c["epoch"] - 12, 0, None) * 0.02
    d = diagnose(c, FACTS)
    assert d.label == "overconfident" and "label smoothing" in d.advice
    c["test_acc"][18:] = c["test_balanced_acc"][18:] = 0.93  # and now the accuracy falls too
    assert diagnose(c, FACTS).label == "overfitting_diverging"


def test_a_large_gap_is_overfitting_and_a_small_one_is_not():
    c = _healthy()
    c["test_acc"] = c["test_balanced_acc"] = c["test_acc"] - 0.15
    assert diagnose(c, FACTS).label == "overfitting"
    c["test_acc"] = c["test_balanced_acc"] = c["test_acc"] + 0.12  # a 3-point gap
    assert diagnose(c, FACTS).label == "converged"


def test_flat_and_high_with_the_learning_rate_still_high_is_stuck_not_converged():
    c = _healthy()
    n = len(c["epoch"])
    c.update(train_loss=np.r_[np.linspace(2.0, 0.8, 10), np.full(n - 10, 0.8)], lr=np.full(n, 0.1))
    c["test_loss"] = c["test_nll"] = c["train_loss"] + 0.1
    c["train_acc"] = np.minimum(c["train_acc"], 0.75)
    c["test_acc"] = c["test_balanced_acc"] = np.minimum(c["test_acc"], 0.72)
    assert diagnose(c, FACTS).label == "stuck"
    c["lr"] = 0.05 * (1 + np.cos(np.pi * c["epoch"] / n))
    assert diagnose(c, FACTS).label == "converged"


def test_tail_accuracy_collapsing_while_the_head_rises_is_a_finding():
    c = _healthy()
    e = c["epoch"]
    c["test_head_acc"] = np.minimum(0.99, 0.5 + 0.03 * e)
    c["test_tail_acc"] = np.where(e <= 10, 0.05 * e, 0.5 - 0.02 * (e - 10))
    d = diagnose(c, FACTS)
    (finding,) = d.findings
    # medians of 3 epochs: 0.48 around epoch 10, 0.12 over the last three
    assert "tail classes' test accuracy fell from 0.480 (epoch 10) to 0.120" in finding
    c["test_tail_acc"] = np.minimum(0.9, 0.05 * e)
    assert diagnose(c, FACTS).findings == []


def test_a_label_smoothing_run_near_its_floor_is_not_a_data_problem():
    c = _healthy()
    floor = 0.5
    c["train_loss"] = c["train_loss"] + floor  # flat just above the floor, while the test loss still eases down
    c["test_loss"] = 1.5 * np.exp(-c["epoch"] / 3) + 0.55 + 0.01 * (30 - c["epoch"])
    c["lr"] = np.full(len(c["epoch"]), 0.1)  # not annealed: a falling test loss still counts
    facts = RunFacts(num_classes=10, train_counts=[100] * 10, test_size=1000, loss_floor=floor)
    assert diagnose(c, facts).label == "still_learning"
    assert diagnose(c, RunFacts(num_classes=10, train_counts=[100] * 10, test_size=1000)).label == "data_problem"


def test_a_diagnosis_round_trips_through_its_record_and_refuses_another_form():
    d = diagnose(_healthy(), FACTS)
    record = json.loads(json.dumps(d.record()))
    assert Diagnosis.from_record(record) == d
    old = {"label": "stuck", "advice": "", "train_slope": 0.0, "test_slope": 0.0, "window": [1, 2],
           "onset_epoch": 1, "best_epoch": 1}
    assert Diagnosis.from_record(old) is None


def test_facts_come_from_a_summary():
    facts = RunFacts.from_summary({"class_counts": [30, 10], "test_counts": [5, 5], "loss_floor": 0.2,
                                   "selected_epoch": 4, "selection": {"metric": "val_balanced_acc"}})
    assert facts == RunFacts(2, [30, 10], 10, 0.2, 4, "val_balanced_acc")
    assert facts.chance_accuracy == 0.5 and facts.majority_share == 0.75
    assert facts.chance_loss == pytest.approx(np.log(2))


def test_losses_creeping_down_after_the_schedule_ended_are_converged_unless_accuracy_still_rises():
    c = _healthy()
    e = c["epoch"]
    c["train_loss"] = c["train_loss"] + 0.002 * (30 - e)  # still creeping down at a learning rate near zero
    c["test_loss"] = c["test_nll"] = c["test_loss"] + 0.003 * (30 - e)
    assert diagnose(c, FACTS).label == "converged"
    c["test_acc"] = c["test_balanced_acc"] = np.minimum(0.99, 0.5 + 0.016 * e)  # but still climbing
    assert diagnose(c, FACTS).label == "still_learning"


def test_test_accuracy_jumping_between_epochs_is_unstable():
    c = _healthy()
    c["test_acc"][20:] = c["test_balanced_acc"][20:] = 0.8 + 0.1 * (-1.0) ** np.arange(10)  # 0.9, 0.7, 0.9, ...
    d = diagnose(c, FACTS)
    # a jump of 0.2 against a sampling noise of 0.014 (1,000 test images at 70%, the median of the last 3)
    assert d.label == "unstable" and "test accuracy jumps by 0.200 (the test set's sampling noise: 0.014)" in d.evidence[0]
