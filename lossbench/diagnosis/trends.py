"""Trends of a noisy per-epoch curve.

A trend is judged with the Theil-Sen estimator (the median of pairwise slopes),
which an oscillating or noisy curve does not sway. It counts only when the
change it implies across the window exceeds both ``REL_CHANGE`` of the curve's
level and ``NOISE_MULTIPLE`` times the robust spread of the residuals;
otherwise the curve is flat.
"""

from dataclasses import dataclass

import numpy as np

REL_CHANGE = 0.05
NOISE_MULTIPLE = 2.0
SMOOTH = 5


@dataclass
class Trend:
    direction: str  # falling, flat or rising: never falling with a positive slope
    slope: float  # per epoch
    level: float  # the median of the curve over the window
    noise: float  # robust spread of the residuals around the fitted line
    scale: float  # what a change is measured against


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept): the median of all pairwise slopes, the median intercept."""
    i, j = np.triu_indices(len(x), k=1)
    slope = float(np.median((y[j] - y[i]) / (x[j] - x[i])))
    return slope, float(np.median(y - slope * x))


def robust_spread(values: np.ndarray) -> float:
    """The median absolute deviation, scaled to a normal standard deviation."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def trend(x: np.ndarray, y: np.ndarray, floor: float = 0.0) -> Trend:
    """``floor``: the smallest level a change is measured against, so that the
    wiggles of a loss that has fallen near zero do not count as trends."""
    slope, intercept = theil_sen(x, y)
    noise = robust_spread(y - (slope * x + intercept))
    level = float(np.median(y))
    scale = max(abs(level), floor, 1e-8)
    change = slope * (x[-1] - x[0])
    significant = abs(change) > max(REL_CHANGE * scale, NOISE_MULTIPLE * noise)
    direction = "flat" if not significant else ("falling" if change < 0 else "rising")
    return Trend(direction, slope, level, noise, scale)


def smooth(y: np.ndarray, width: int = SMOOTH) -> np.ndarray:
    """Running median, so one noisy epoch moves nothing."""
    half = width // 2
    return np.array([np.median(y[max(0, i - half) : i + half + 1]) for i in range(len(y))])


def plateau_onset(epochs: np.ndarray, y: np.ndarray, window: int, smoothing: int = SMOOTH) -> int:
    """First epoch from which the smoothed curve stays near its final level."""
    smoothed = smooth(y, smoothing)
    final = trend(epochs[-window:], y[-window:])
    centre = float(np.median(smoothed[-window:]))
    band = max(REL_CHANGE * final.scale, NOISE_MULTIPLE * final.noise)
    outside = np.flatnonzero(np.abs(smoothed - centre) > band)
    if not len(outside):
        return int(epochs[0])
    return int(epochs[min(outside[-1] + 1, len(epochs) - 1)])
