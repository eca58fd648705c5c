"""How sure a comparison is.

- Against a baseline, paired by seed: the mean difference with a percentile
  bootstrap interval (scipy.stats.bootstrap), and the probability of
  improvement P(X > Y) of Agarwal et al. 2021 ("Deep Reinforcement Learning at
  the Edge of the Statistical Precipice"), the Mann-Whitney U statistic over
  all pairs of runs divided by their number (ties count one half), as rliable
  computes it.
- With few seeds, how many the observed spread would need: the paired
  t-test's sample size for 80% power at the 5% level, from the normal
  approximation n = ((z_0.975 + z_0.8) sd / |mean|)^2.
- Across settings (datasets, imbalance ratios): each loss's average rank, the
  Friedman test and the Nemenyi critical difference (Demsar 2006, "Statistical
  Comparisons of Classifiers over Multiple Data Sets").
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
POWER = 0.8
BOOTSTRAP_RESAMPLES = 10_000
FEW_SEEDS = 5  # below this many pairs, a comparison says how many it would need


@dataclass
class Comparison:
    group: str
    baseline: str
    metric: str
    n: int  # pairs (seeds)
    mean: float  # of group - baseline
    low: float  # bootstrap interval of the mean
    high: float
    p_improvement: float  # P(a run of the group beats a run of the baseline)
    seeds_needed: int | None  # to resolve the observed mean at the observed spread; None: resolved or undefined
    verdict: str
    setting: str = ""  # what sets the compared runs apart from other compared runs ("" where all agree)


def bootstrap_interval(diffs: np.ndarray, confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    if len(diffs) < 2 or np.ptp(diffs) == 0:
        value = float(diffs.mean()) if len(diffs) else math.nan
        return (value, value) if len(diffs) >= 2 else (math.nan, math.nan)
    result = stats.bootstrap((diffs,), np.mean, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES,
                             method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2 over every pair of a run of x and a run of y."""
    if not len(x) or not len(y):
        return math.nan
    u = stats.mannwhitneyu(x, y, alternative="two-sided").statistic
    return float(u) / (len(x) * len(y))


def seeds_needed(diffs: np.ndarray, confidence: float = CONFIDENCE, power: float = POWER) -> int | None:
    """Pairs a paired test would need to resolve the observed mean difference at the observed spread."""
    if len(diffs) < 2:
        return None
    mean, sd = abs(float(diffs.mean())), float(diffs.std(ddof=1))
    if mean == 0 or sd == 0:
        return None
    z = stats.norm.ppf(0.5 + confidence / 2) + stats.norm.ppf(power)
    return max(2, math.ceil((z * sd / mean) ** 2))


def compare(group: str, baseline: str, metric: str, pairs: list[tuple[float, float]]) -> Comparison:
    """``pairs``: (group's value, baseline's value) per seed."""
    x = np.array([a for a, _ in pairs], dtype=float)
    y = np.array([b for _, b in pairs], dtype=float)
    diffs = x - y
    n = len(diffs)
    mean = float(diffs.mean()) if n else math.nan
    low, high = bootstrap_interval(diffs)
    needed = seeds_needed(diffs)
    if n < 2:
        verdict = "too few seeds to tell (need 2 or more pairs)"
    elif low <= 0 <= high:
        verdict = "not distinguishable"
    else:
        verdict = "better than the baseline" if mean > 0 else "worse than the baseline"
    resolved = n >= 2 and not low <= 0 <= high
    return Comparison(group, baseline, metric, n, mean, low, high, probability_of_improvement(x, y),
                      None if resolved or (needed is not None and needed <= n) else needed, verdict)


def few_seeds_line(comparison: Comparison) -> str | None:
    """What a handful of seeds can show, where there are few."""
    c = comparison
    if c.n >= FEW_SEEDS:
        return None
    if c.seeds_needed is None:
        return f"{c.group}: only {c.n} seed(s); more would narrow the interval"
    return (f"{c.group}: only {c.n} seed(s); at the observed spread, about {c.seeds_needed} seeds would be needed to "
            f"resolve a difference of {abs(c.mean) * 100:.1f} pts (95% level, 80% power)")


@dataclass
class Ranking:
    average_rank: pd.Series  # per loss, 1 = best, sorted
    settings: int
    statistic: float | None  # Friedman chi-square
    p_value: float | None
    critical_difference: float | None  # Nemenyi, at the 5% level


def rank_across_settings(table: pd.DataFrame, higher_is_better: bool = True) -> Ranking:
    """``table``: one row per setting, one column per loss, each cell the mean over seeds."""
    table = table.dropna()
    ranks = table.rank(axis=1, ascending=not higher_is_better)
    average = ranks.mean(axis=0).sort_values()
    n, k = table.shape
    statistic = p_value = cd = None
    if n >= 2 and k >= 3:
        statistic, p_value = stats.friedmanchisquare(*[table[c].to_numpy() for c in table.columns])
        statistic, p_value = float(statistic), float(p_value)
        q = stats.studentized_range.ppf(1 - (1 - CONFIDENCE), k, np.inf) / math.sqrt(2)
        cd = float(q * math.sqrt(k * (k + 1) / (6 * n)))
    return Ranking(average, n, statistic, p_value, cd)
