import math

import numpy as np
import pytest
import torch

from lossbench.training.metrics import EpochTally, class_groups, summarize_split


def test_class_groups_are_thirds_by_count():
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert class_groups(counts) == ["head"] * 4 + ["medium"] * 3 + ["tail"] * 3
    assert class_groups([1, 9, 5]) == ["tail", "head", "medium"]


def test_tally_on_known_numbers():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.4 (wrong)
    probs = torch.tensor(
        [[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.6, 0.3, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64
    )
    labels = torch.tensor([0, 0, 0, 1])
    tally = EpochTally(3, torch.device("cpu"))
    tally.add(probs.log(), labels, torch.tensor(2.0), calibration=True)
    row, per_class, bins = summarize_split("test", tally.read(), ["head", "medium", "tail"])
    assert row["test_acc"] == 0.5
    assert np.allclose(per_class[:2], [2 / 3, 0.0]) and math.isnan(per_class[2])
    assert math.isclose(row["test_balanced_acc"], 1 / 3)
    assert math.isclose(row["test_loss"], 0.5)
    nll = -(math.log(0.9) + math.log(0.05) + math.log(0.6) + math.log(0.3)) / 4
    assert math.isclose(row["test_nll"], nll, rel_tol=1e-6)  # float32 log-softmax
    # bins: 0.9 twice in (13/15, 14/15] with accuracy 1/2; 0.6 in (8/15, 9/15]; 0.4 in (5/15, 6/15]
    ece = (abs(1 - 1.8) + abs(1 - 0.6) + abs(0 - 0.4)) / 4
    assert math.isclose(row["test_ece"], ece, rel_tol=1e-6)
    assert math.isclose(row["test_head_acc"], 2 / 3) and row["test_medium_acc"] == 0.0
    assert math.isnan(row["test_tail_acc"])
    assert [b["count"] for b in bins if b["count"]] == [1, 1, 2]
    assert bins[13]["confidence"] == pytest.approx(0.9) and bins[13]["accuracy"] == 0.5
    assert math.isnan(bins[0]["accuracy"])


def test_no_groups_for_balanced_data():
    tally = EpochTally(2, torch.device("cpu"))
    tally.add(torch.tensor([[2.0, 0.0]]), torch.tensor([0]), torch.tensor(0.1), calibration=True)
    row, _, _ = summarize_split("test", tally.read(), None)
    assert row["test_head_acc"] is None and row["test_tail_acc"] is None
