"""Post-hoc steps on known logits: temperature scaling recovers a known
temperature, logit adjustment is its formula, the ECE is the trainer's."""

import math

import numpy as np
import pytest
import torch
from scipy.special import softmax

from lossbench.posthoc import (
    adjusted_predictions, balanced_accuracy, calibration_error, choose_tau, fit_temperature, nll, posthoc_results,
    reliability_bins,
)
from lossbench.training.metrics import EpochTally, summarize_split


def _sampled(n=20000, k=5, temperature=2.5, seed=0):
    """Labels drawn from softmax(z), and the logits of a model over-confident by ``temperature``: z * temperature."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, k))
    labels = np.array([rng.choice(k, p=p) for p in softmax(z, axis=1)])
    return z * temperature, labels


def test_temperature_scaling_recovers_a_known_temperature():
    logits, labels = _sampled(temperature=2.5)
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.03)
    logits, labels = _sampled(temperature=0.5, seed=1)  # under-confident
    assert fit_temperature(logits, labels) == pytest.approx(0.5, rel=0.03)


def test_the_fitted_temperature_minimises_the_nll():
    logits, labels = _sampled(n=3000, temperature=2.0, seed=2)
    t = fit_temperature(logits, labels)
    for other in (0.9 * t, 1.1 * t):
        assert nll(logits, labels, t) < nll(logits, labels, other)
    # the NLL by hand
    log_p = logits / t - np.log(np.exp(logits / t).sum(axis=1, keepdims=True))
    assert nll(logits, labels, t) == pytest.approx(-log_p[np.arange(len(labels)), labels].mean(), rel=1e-12)


def test_logit_adjustment_is_its_formula():
    logits = np.array([[2.0, 1.5, 0.0], [0.2, 0.0, 0.1], [1.0, 1.0, 0.9]])
    prior = np.array([0.7, 0.2, 0.1])
    log_prior = np.log(prior)
    # tau = 1: argmax_k z_k - log pi_k
    expected = np.argmax(logits - np.log(prior), axis=1)
    assert adjusted_predictions(logits, log_prior, 1.0).tolist() == expected.tolist() == [1, 2, 2]
    assert adjusted_predictions(logits, log_prior, 0.0).tolist() == [0, 0, 0]


def test_tau_is_chosen_on_balanced_accuracy():
    # class 0 dominates the raw predictions; an adjustment of tau >= 0.5 recovers class 1
    logits = np.array([[1.0, 0.5]] * 4 + [[2.0, 0.0]] * 4)
    labels = np.array([1] * 4 + [0] * 4)
    log_prior = np.log(np.array([0.9, 0.1]))
    tau = choose_tau(logits, labels, log_prior)
    # z_1 - z_0 = -0.5 must exceed tau (log 0.1 - log 0.9) = -2.197 tau: tau > 0.2276; class 0's
    # rows (-2.0) stay class 0 while tau < 0.910; the smallest tau of the grid that wins both is 0.3
    assert tau == pytest.approx(0.3)
    assert balanced_accuracy(adjusted_predictions(logits, log_prior, tau), labels, 2)[0] == 1.0


def test_calibration_error_is_the_trainers():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, size=(500, 4))
    labels = rng.integers(0, 4, size=500)
    tally = EpochTally(4, torch.device("cpu"))
    tally.add(torch.tensor(logits), torch.tensor(labels), torch.tensor(0.0), calibration=True)
    row, _, _ = summarize_split("test", tally.read(), None)
    assert calibration_error(logits, labels) == pytest.approx(row["test_ece"], abs=1e-6)
    assert nll(logits, labels) == pytest.approx(row["test_nll"], rel=1e-5)


def test_posthoc_results_on_an_over_confident_long_tailed_model():
    rng = np.random.default_rng(4)
    counts = [100, 30, 10]
    # a model biased towards the head by the log prior, and over-confident by 3
    prior = np.array(counts) / sum(counts)

    def logits_for(n):
        labels = rng.integers(0, 3, size=n)
        z = rng.normal(0, 1, size=(n, 3)) + 2.0 * np.eye(3)[labels] + np.log(prior)
        return 3 * z, labels

    results = posthoc_results(logits_for(3000), logits_for(3000), counts, ["head", "medium", "tail"])
    assert results["temperature"] > 1.5
    assert results["test_ece_scaled"] < results["test_ece"] and results["test_nll_scaled"] < results["test_nll"]
    assert results["tau"] > 0
    assert results["test_balanced_acc_adjusted"] > results["test_balanced_acc"]
    assert results["test_tail_acc_adjusted"] > results["test_tail_acc"]
    assert math.isfinite(results["test_nll_scaled"])


def test_the_report_redoes_the_posthoc_steps_from_saved_logits(tmp_path):
    import json

    from lossbench.report import figures
    from lossbench.report.runs import load_runs
    from lossbench.training.run_dir import RunDir

    val, test = _sampled(n=2000, k=3, temperature=2.0, seed=5), _sampled(n=2000, k=3, temperature=2.0, seed=6)
    run_dir = RunDir(tmp_path / "run")
    run_dir.path.mkdir()
    run_dir.save_logits("selected", 7, {"val": (torch.tensor(val[0]), torch.tensor(val[1])),
                                        "test": (torch.tensor(test[0]), torch.tensor(test[1]))})
    (run_dir / "metrics.csv").write_text("epoch,test_acc\n7,0.5\n")
    run_dir.write_summary({"status": "finished", "class_counts": [50, 30, 20]})
    (run,) = load_runs([str(run_dir.path)])
    fig = figures.posthoc_figure(run)
    saved = RunDir(run_dir.path).logits("selected")  # float16 on disk: what the report works from
    t = fit_temperature(saved["val_logits"], saved["val_labels"])
    assert t == pytest.approx(2.0, rel=0.1)
    scaled = fig.axes[0].lines[2]  # after the perfect-calibration line and the raw curve
    count, confidence, hits = reliability_bins(saved["test_logits"], saved["test_labels"], t)
    filled = count > 0
    np.testing.assert_allclose(scaled.get_xdata(), confidence[filled] / count[filled])
    np.testing.assert_allclose(scaled.get_ydata(), hits[filled] / count[filled])
    assert f"T = {t:.2f}" in scaled.get_label()


def test_no_temperature_where_the_validation_split_has_no_error():
    logits = np.array([[3.0, 0.0], [0.0, 2.0], [4.0, 1.0]])
    labels = np.array([0, 1, 0])
    # every NLL is lower at a smaller T: no minimum to report
    assert nll(logits, labels, 0.1) < nll(logits, labels, 0.5) < nll(logits, labels, 1.0)
    assert fit_temperature(logits, labels) is None
    results = posthoc_results((logits, labels), (logits, labels), [2, 1], None)
    assert results["temperature"] is None and results["test_nll_scaled"] is None
    assert "no error" in results["temperature_note"]


def test_no_posthoc_steps_on_non_finite_logits():
    logits = np.array([[np.nan, 0.0], [0.0, 2.0]])
    labels = np.array([0, 1])
    assert posthoc_results((logits, labels), (logits, labels), [1, 1], None) is None
