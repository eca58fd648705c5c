"""Diagnosis of train/test divergence from the loss curves.

The trend of each loss is judged over a recent window with the Theil-Sen
estimator (the median of pairwise slopes), which an oscillating or noisy curve
does not sway. A trend counts only when the change it implies across the window
exceeds both ``REL_CHANGE`` of the loss's level and ``NOISE_MULTIPLE`` times the
robust spread of the residuals; otherwise the curve is flat.

| train   | test    | label                  |
|---------|---------|------------------------|
| falling | falling | still_learning         |
| falling | flat    | overfitting            |
| falling | rising  | overfitting_diverging  |
| flat    | falling | data_problem           |
| flat    | flat    | stuck (oscillating when the swings are large) |
| flat    | rising  | overfitting_diverging  |
| rising  | any     | bad_setup              |

A training loss that has fallen below ``CONVERGED`` of its first value has
fitted the training set: it counts as falling (it cannot fall further), so a
converged run with a flat test loss is overfitting, not stuck.

plus ``diverged`` (a non-finite loss) and ``too_early`` (fewer than
``MIN_EPOCHS`` epochs). The onset is where the current phase began: where the
test loss stopped falling (overfitting: the start of its plateau; diverging: its
minimum), where the training loss stopped falling (stuck, oscillating, data
problem: the start of its plateau), where it began to rise (bad setup: its
minimum), the first non-finite epoch (diverged), or the first epoch (still
learning).
"""

import math
from dataclasses import dataclass

import numpy as np

MIN_EPOCHS = 10
MIN_WINDOW = 6
WINDOW_FRACTION = 0.25
REL_CHANGE = 0.05
NOISE_MULTIPLE = 2.0
SWING = 0.10  # robust spread / level above which a flat curve oscillates
SMOOTH = 5
SCALE_FLOOR = 0.05  # changes are measured against at least this fraction of the first epoch's loss
CONVERGED = 0.02  # a training loss below this fraction of its first value has fitted the training set

ADVICE = {
    "still_learning": "Both losses are still falling: keep training.",
    "overfitting": "The training loss falls while the test loss is flat: the model is overfitting; "
    "regularise (weight decay, augmentation, label smoothing) or stop at the best epoch.",
    "overfitting_diverging": "The test loss rises while the training loss does not: overfitting and diverging; "
    "stop at the best epoch or regularise.",
    "data_problem": "The training loss is flat while the test loss falls: almost certainly a data problem "
    "(e.g. leakage between train and test, or a broken split).",
    "stuck": "Both losses are flat: lower the learning rate or the batch size.",
    "bad_setup": "The losses are rising: bad architecture or hyper-parameters, or dirty data.",
    "diverged": "A loss became non-finite: lower the learning rate, and check the data and the loss's settings.",
    "oscillating": "The losses swing without a trend: lower the learning rate or raise the batch size.",
    "too_early": f"Fewer than {MIN_EPOCHS} epochs: too early to judge; train longer.",
}


@dataclass
class Trend:
    direction: str  # falling, flat or rising
    slope: float  # per epoch
    level: float
    noise: float  # robust spread of the residuals around the fitted line


@dataclass
class Diagnosis:
    label: str
    advice: str
    train_slope: float | None
    test_slope: float | None
    window: tuple[int, int] | None  # first and last epoch judged
    onset_epoch: int | None
    best_epoch: int | None

    def sentence(self) -> str:
        if self.window is None:
            evidence = ""
        else:
            evidence = (
                f" (epochs {self.window[0]}-{self.window[1]}: train loss slope {self.train_slope:+.3g}/epoch, "
                f"test loss slope {self.test_slope:+.3g}/epoch; phase began at epoch {self.onset_epoch})"
            )
        best = f" Best epoch: {self.best_epoch}." if self.best_epoch is not None else ""
        return f"{self.label}: {self.advice}{evidence}{best}"


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept): the median of all pairwise slopes, the median intercept."""
    i, j = np.triu_indices(len(x), k=1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return slope, float(np.median(y - slope * x))


def trend(x: np.ndarray, y: np.ndarray, floor: float = 0.0) -> Trend:
    """``floor``: the smallest level a change is measured against, so that the
    wiggles of a loss that has fallen near zero do not count as trends."""
    slope, intercept = theil_sen(x, y)
    residuals = y - (slope * x + intercept)
    noise = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    level = max(float(np.median(np.abs(y))), floor, 1e-8)
    change = slope * (x[-1] - x[0])
    significant = abs(change) > max(REL_CHANGE * level, NOISE_MULTIPLE * noise)
    direction = "flat" if not significant else ("falling" if change < 0 else "rising")
    return Trend(direction, slope, level, noise)


def smooth(y: np.ndarray, width: int = SMOOTH) -> np.ndarray:
    """Running median, so one noisy epoch moves nothing."""
    half = width // 2
    return np.array([np.median(y[max(0, i - half) : i + half + 1]) for i in range(len(y))])


def plateau_onset(epochs: np.ndarray, y: np.ndarray, window: int, smoothing: int = SMOOTH) -> int:
    """First epoch from which the smoothed curve stays near its final level."""
    smoothed = smooth(y, smoothing)
    final = trend(epochs[-window:], y[-window:])
    centre = float(np.median(smoothed[-window:]))
    band = max(REL_CHANGE * final.level, NOISE_MULTIPLE * final.noise)
    outside = np.flatnonzero(np.abs(smoothed - centre) > band)
    if not len(outside):
        return int(epochs[0])
    return int(epochs[min(outside[-1] + 1, len(epochs) - 1)])


def diagnose(epochs, train_loss, test_loss, test_acc=None) -> Diagnosis:
    epochs = np.asarray(epochs, dtype=float)
    train = np.asarray(train_loss, dtype=float)
    test = np.asarray(test_loss, dtype=float)
    best = None
    if test_acc is not None and np.isfinite(np.asarray(test_acc, dtype=float)).any():
        best = int(epochs[int(np.nanargmax(np.asarray(test_acc, dtype=float)))])
    elif np.isfinite(test).any():
        best = int(epochs[int(np.nanargmin(np.where(np.isfinite(test), test, np.inf)))])
    bad = ~(np.isfinite(train) & np.isfinite(test))
    if bad.any():
        return Diagnosis("diverged", ADVICE["diverged"], None, None, None, int(epochs[np.argmax(bad)]), best)
    n = len(epochs)
    if n < MIN_EPOCHS:
        return Diagnosis("too_early", ADVICE["too_early"], None, None, None, None, best)
    window = min(n, max(MIN_WINDOW, math.ceil(WINDOW_FRACTION * n)))
    x = epochs[-window:]
    train_trend = trend(x, train[-window:], SCALE_FLOOR * abs(train[0]))
    test_trend = trend(x, test[-window:], SCALE_FLOOR * abs(test[0]))
    converged = np.median(train[-window:]) <= CONVERGED * abs(train[0])
    label = _label(train_trend, test_trend, converged)
    onset = _onset(label, epochs, train, test, window)
    return Diagnosis(label, ADVICE[label], train_trend.slope, test_trend.slope, (int(x[0]), int(x[-1])), onset, best)


def _label(train: Trend, test: Trend, converged: bool) -> str:
    if train.direction == "rising":
        return "bad_setup"
    if train.direction == "falling" or converged:
        return {"falling": "still_learning", "flat": "overfitting", "rising": "overfitting_diverging"}[test.direction]
    if test.direction == "falling":
        return "data_problem"
    if test.direction == "rising":
        return "overfitting_diverging"
    swinging = max(train.noise / train.level, test.noise / test.level) > SWING
    return "oscillating" if swinging else "stuck"


def _onset(label: str, epochs, train, test, window: int) -> int:
    if label == "still_learning":
        return int(epochs[0])
    if label == "overfitting":
        return plateau_onset(epochs, test, window)
    if label == "overfitting_diverging":
        return int(epochs[int(np.argmin(smooth(test)))])
    if label == "bad_setup":
        return int(epochs[int(np.argmin(smooth(train)))])
    # a swinging curve needs a wider median before its plateau shows
    return plateau_onset(epochs, train, window, smoothing=2 * SMOOTH + 1 if label == "oscillating" else SMOOTH)
