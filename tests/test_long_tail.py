import numpy as np
import pytest

from lossbench.data.long_tail import long_tail_counts, long_tail_indices
from lossbench.errors import UserError


def test_exponential_profile_matches_the_spec():
    counts = long_tail_counts(5000, 10, 100, "exp")
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(counts) == 12406


def test_exponential_profile_for_cifar100_ends_at_n_max_over_r():
    counts = long_tail_counts(500, 100, 100, "exp")
    assert counts[0] == 500 and counts[-1] == 5 and len(counts) == 100
    assert all(a >= b for a, b in zip(counts, counts[1:]))
    assert sum(counts) == 10847  # CIFAR-100-LT at imbalance 100, as Cao et al. report


def test_step_profile():
    assert long_tail_counts(5000, 10, 100, "step") == [5000] * 5 + [50] * 5
    assert long_tail_counts(5000, 10, 10, "step") == [5000] * 5 + [500] * 5


def test_ratio_one_keeps_everything():
    assert long_tail_counts(5000, 10, 1, "exp") == [5000] * 10


@pytest.mark.parametrize("ratio, profile, message", [(0.5, "exp", "imbalance_ratio=0.5"), (10, "linear", "profile='linear'")])
def test_bad_values_are_named(ratio, profile, message):
    with pytest.raises(UserError, match=message):
        long_tail_counts(100, 10, ratio, profile)


def test_subsampling_is_seeded_and_exact():
    labels = np.repeat(np.arange(10), 200)
    np.random.default_rng(1).shuffle(labels)
    a = long_tail_indices(labels, 10, 100, "exp", seed=0)
    b = long_tail_indices(labels, 10, 100, "exp", seed=0)
    c = long_tail_indices(labels, 10, 100, "exp", seed=1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.bincount(labels[a], minlength=10).tolist() == long_tail_counts(200, 10, 100, "exp")
    assert len(np.unique(a)) == len(a) and np.all(np.diff(a) > 0)


def test_ratio_that_empties_a_class_is_refused():
    labels = np.repeat(np.arange(10), 20)
    with pytest.raises(UserError, match="rarest class"):
        long_tail_indices(labels, 10, 100, "exp", seed=0)
