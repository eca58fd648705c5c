"""The comparison statistics on fixed numbers, against hand computations."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from lossbench.report.headline import headline
from lossbench.report.statistics import (
    bootstrap_interval, compare, few_seeds_line, probability_of_improvement, rank_across_settings, seeds_needed,
)


def test_bootstrap_interval_matches_the_exact_bootstrap_distribution():
    diffs = np.array([0.031, 0.012, -0.004, 0.027, 0.018])
    # all 5^5 resamples, equally likely: their means' 2.5% and 97.5% quantiles
    means = np.sort([np.mean(s) for s in itertools.product(diffs, repeat=5)])
    low, high = bootstrap_interval(diffs)
    assert low == pytest.approx(np.quantile(means, 0.025), abs=0.002)
    assert high == pytest.approx(np.quantile(means, 0.975), abs=0.002)


def test_probability_of_improvement_by_hand():
    x, y = np.array([0.80, 0.82, 0.78]), np.array([0.79, 0.78, 0.70])
    # of the 9 pairs, x wins 7 (0.78 loses to 0.79, ties 0.78)
    assert probability_of_improvement(x, y) == pytest.approx(7.5 / 9)
    assert probability_of_improvement(y, x) == pytest.approx(1.5 / 9)


def test_seeds_needed_by_hand():
    diffs = np.array([0.01, -0.005, 0.02])
    z = 1.959963984540054 + 0.8416212335729143  # z_0.975 + z_0.8
    expected = math.ceil((z * np.std(diffs, ddof=1) / np.mean(diffs)) ** 2)
    assert seeds_needed(diffs) == expected == 18
    line = few_seeds_line(compare("focal", "ce", "m", [(d, 0.0) for d in diffs]))
    assert line == ("focal: only 3 seed(s); at the observed spread, about 18 seeds would be needed to resolve a "
                    "difference of 0.8 pts (95% level, 80% power)")


def test_friedman_and_critical_difference_by_hand():
    # 4 settings x 3 losses; higher is better
    table = pd.DataFrame({"ce": [0.70, 0.60, 0.80, 0.65], "focal": [0.72, 0.61, 0.79, 0.66],
                          "ldam": [0.75, 0.66, 0.83, 0.70]})
    ranking = rank_across_settings(table)
    # ranks per setting (1 = best): ldam 1,1,1,1; focal 2,2,3,2; ce 3,3,2,3
    assert ranking.average_rank.to_dict() == {"ldam": 1.0, "focal": 2.25, "ce": 2.75}
    n, k = 4, 3
    r = np.array([1.0, 2.25, 2.75])
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(r ** 2) - k * (k + 1) ** 2 / 4)
    assert ranking.statistic == pytest.approx(chi2)
    # Demsar 2006, Table 5(a): q_0.05 = 2.343 for 3 classifiers
    assert ranking.critical_difference == pytest.approx(2.343 * math.sqrt(k * (k + 1) / (6 * n)), abs=1e-3)


class _Run:
    def __init__(self, dataset="digits_lt", ratio=10, metric="val_balanced_acc"):
        self.config = {"dataset": {"name": dataset, "imbalance_ratio": ratio}}
        self.summary = {}
        self.selection = {"metric": metric}

    def config_value(self, key):
        node = self.config
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


def test_headline_with_a_known_winner_and_with_none():
    runs = [_Run()]
    win = compare("balanced_softmax", "ce", "m", [(0.80, 0.78), (0.81, 0.79), (0.79, 0.77)])
    tie = compare("focal", "ce", "m", [(0.78, 0.78), (0.80, 0.79), (0.76, 0.77)])
    assert headline([tie, win], runs) == (
        "On digits_lt (r=10), balanced_softmax is best by validation-selected balanced accuracy: +2.0 pts over ce "
        "(95% CI [2.0, 2.0]), P(improvement) = 0.94, 3 seeds.")  # 8.5 of 9 pairs
    assert headline([tie], runs) == ("On digits_lt (r=10), no loss is distinguishable from ce by validation-selected "
                                     "balanced accuracy with 3 seeds.")
    worse = compare("mse", "ce", "m", [(0.70, 0.78), (0.71, 0.79), (0.69, 0.77)])
    assert headline([tie, worse], [_Run(metric=None)]) == (
        "On digits_lt (r=10), no loss beats ce by last-epoch balanced accuracy with 3 seeds; worse than ce: mse.")


def test_headline_names_a_close_second():
    first = compare("ldam", "ce", "m", [(0.80, 0.78), (0.82, 0.79), (0.79, 0.78)])
    second = compare("balanced_softmax", "ce", "m", [(0.80, 0.78), (0.81, 0.79), (0.79, 0.78)])
    far = compare("focal", "ce", "m", [(0.785, 0.78), (0.795, 0.79), (0.785, 0.78)])
    assert first.mean > second.mean >= first.low and far.mean < first.low
    assert headline([far, second, first], [_Run()]).endswith(
        f"3 seeds; balanced_softmax ({second.mean * 100:+.1f} pts) is within its interval.")
