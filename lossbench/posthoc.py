"""Post-hoc steps on a trained model's saved logits, without retraining, each
fitted on the validation split and measured on the test set.

- Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural
  Networks"): one temperature T, fitted to the validation NLL of
  ``softmax(z / T)``; the predictions do not change, their confidence does.
- Post-hoc logit adjustment (Menon et al. 2021, "Long-Tail Learning via Logit
  Adjustment"): predict ``argmax_k z_k - tau log pi_k`` with ``pi`` the
  training class prior, tau chosen on validation balanced accuracy.
"""

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from lossbench.training.metrics import ECE_BINS, group_accuracies, per_class_accuracy

# tau from 0 (no adjustment) to 2 in steps of 0.1: the paper's tau = 1 lies inside
TAU_GRID = tuple(round(0.1 * i, 1) for i in range(21))
# the temperature is searched in log space over [1/50, 50]
LOG_T_BOUNDS = (-math.log(50.0), math.log(50.0))
UNFITTED = ("no temperature fitted: the validation split has no error at this epoch (or its NLL has no minimum "
            "within [1/50, 50]), so sharper is always better on it; a larger dataset.val_fraction gives it errors to "
            "weigh")


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    log_probs = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def reliability_bins(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0):
    """(count, summed confidence, summed hits) in ``ECE_BINS`` equal-width confidence bins
    (0, 1/B], (1/B, 2/B], ..., as the trainer bins them."""
    log_probs = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    confidence = np.exp(log_probs.max(axis=1))
    hit = (log_probs.argmax(axis=1) == labels).astype(np.float64)
    index = np.clip(np.ceil(confidence * ECE_BINS).astype(int), 1, ECE_BINS) - 1
    return (np.bincount(index, minlength=ECE_BINS), np.bincount(index, weights=confidence, minlength=ECE_BINS),
            np.bincount(index, weights=hit, minlength=ECE_BINS))


def calibration_error(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """ECE over the reliability bins, as the trainer measures it."""
    count, confidence, hits = reliability_bins(logits, labels, temperature)
    return float(np.abs(hits - confidence).sum() / count.sum()) if count.sum() else math.nan


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float | None:
    """The T > 0 that minimises the NLL of ``softmax(logits / T)``; None where
    no T does: a split with no error has an NLL that falls without bound as T
    shrinks, and a minimum at the edge of the search says the same."""
    if (np.asarray(logits).argmax(axis=1) == labels).all():
        return None
    found = minimize_scalar(lambda log_t: nll(logits, labels, math.exp(log_t)), bounds=LOG_T_BOUNDS,
                            method="bounded", options={"xatol": 1e-6})
    if min(abs(found.x - bound) for bound in LOG_T_BOUNDS) < 1e-3:
        return None
    return math.exp(found.x)


def adjusted_predictions(logits: np.ndarray, log_prior: np.ndarray, tau: float) -> np.ndarray:
    return np.argmax(np.asarray(logits, dtype=np.float64) - tau * log_prior[None, :], axis=1)


def balanced_accuracy(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[float, np.ndarray]:
    seen = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels, weights=(predictions == labels), minlength=num_classes)
    per_class = per_class_accuracy(seen, correct)
    return float(np.nanmean(per_class)), per_class


def choose_tau(logits: np.ndarray, labels: np.ndarray, log_prior: np.ndarray) -> float:
    """The tau of ``TAU_GRID`` with the best balanced accuracy (the smallest on a tie)."""
    scores = [balanced_accuracy(adjusted_predictions(logits, log_prior, tau), labels, len(log_prior))[0]
              for tau in TAU_GRID]
    return TAU_GRID[int(np.argmax(scores))]


def posthoc_results(val: tuple, test: tuple, class_counts: list[int], groups: list[str] | None) -> dict | None:
    """Both steps fitted on ``val`` = (logits, labels) and measured on ``test``; the raw numbers beside them.
    None where a logit is not finite (a run that skipped non-finite steps): nothing can be fitted to it."""
    (val_logits, val_labels), (test_logits, test_labels) = val, test
    if not (np.isfinite(val_logits).all() and np.isfinite(test_logits).all()):
        return None
    temperature = fit_temperature(val_logits, val_labels)
    scaled = temperature is not None
    counts = np.asarray(class_counts, dtype=np.float64)
    log_prior = np.log(counts / counts.sum())
    tau = choose_tau(val_logits, val_labels, log_prior)
    raw_balanced, raw_per_class = balanced_accuracy(test_logits.argmax(axis=1), test_labels, len(counts))
    adjusted_balanced, adjusted_per_class = balanced_accuracy(
        adjusted_predictions(test_logits, log_prior, tau), test_labels, len(counts))
    return {
        "temperature": temperature,
        **({} if scaled else {"temperature_note": UNFITTED}),
        "test_nll": nll(test_logits, test_labels),
        "test_nll_scaled": nll(test_logits, test_labels, temperature) if scaled else None,
        "test_ece": calibration_error(test_logits, test_labels),
        "test_ece_scaled": calibration_error(test_logits, test_labels, temperature) if scaled else None,
        "tau": tau,
        "test_balanced_acc": raw_balanced,
        "test_balanced_acc_adjusted": adjusted_balanced,
        "test_tail_acc": group_accuracies(raw_per_class, groups)["tail"],
        "test_tail_acc_adjusted": group_accuracies(adjusted_per_class, groups)["tail"],
    }
