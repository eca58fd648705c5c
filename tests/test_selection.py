"""The reported epoch is chosen on validation numbers only; a test metric
only when named, and then marked; without a validation split, the last epoch."""

import pytest

from lossbench.errors import UserError
from lossbench.training.selection import selection_for

# validation accuracy peaks at epochs 2 and 5 (a tie that the lower val_nll of epoch 5 breaks), test at epoch 3
ROWS = [
    {"epoch": 1, "val_balanced_acc": 0.50, "val_nll": 1.0, "test_acc": 0.50, "test_nll": 1.0},
    {"epoch": 2, "val_balanced_acc": 0.70, "val_nll": 0.8, "test_acc": 0.60, "test_nll": 0.9},
    {"epoch": 3, "val_balanced_acc": 0.65, "val_nll": 0.9, "test_acc": 0.75, "test_nll": 0.7},
    {"epoch": 4, "val_balanced_acc": 0.60, "val_nll": 0.6, "test_acc": 0.55, "test_nll": 0.8},
    {"epoch": 5, "val_balanced_acc": 0.70, "val_nll": 0.7, "test_acc": 0.55, "test_nll": 0.8},
    {"epoch": 6, "val_balanced_acc": 0.70, "val_nll": 0.75, "test_acc": 0.70, "test_nll": 0.6},
]


def _selected_epoch(selection) -> int:
    chosen, key = None, None
    for row in ROWS:
        if selection.improves(row, key):
            chosen, key = row["epoch"], selection.key(row)
    return chosen


def test_selection_reads_validation_only():
    assert _selected_epoch(selection_for("val_balanced_acc", True)) == 5
    assert _selected_epoch(selection_for("val_nll", True)) == 4  # lower is better


def test_a_saturated_validation_accuracy_goes_to_the_lower_nll():
    """A small validation split reaches 100% early: the first epoch there is not the best one."""
    selection = selection_for("val_acc", True)
    rows = [{"epoch": e, "val_acc": a, "val_nll": n} for e, a, n in
            [(1, 0.9, 0.30), (2, 1.0, 0.20), (3, 1.0, 0.08), (4, 1.0, 0.05), (5, 1.0, 0.06)]]
    chosen, key = None, None
    for row in rows:
        if selection.improves(row, key):
            chosen, key = row["epoch"], selection.key(row)
    assert chosen == 4 and "ties to the lower val_nll" in selection.by


def test_without_validation_the_last_epoch_is_reported():
    selection = selection_for("val_balanced_acc", False)
    assert _selected_epoch(selection) == 6 and selection.metric is None and "no validation split" in selection.by


def test_a_test_metric_only_when_named_and_marked():
    selection = selection_for("test_acc", True)
    assert _selected_epoch(selection) == 3 and "test set" in selection.by and "optimistic" in selection.by


def test_an_unknown_metric_is_refused():
    with pytest.raises(UserError, match="trainer.select_metric='val_acc2' is invalid: valid metrics are val_loss"):
        selection_for("val_acc2", True)


def test_a_search_optimises_a_validation_number_by_default():
    from helpers.training import compose_train
    from lossbench.training.search import _metric

    assert compose_train("hparams_search=focal_gamma").hparams_search.metric == "selected.val_balanced_acc"
    summary = {"selected": {"val_balanced_acc": 0.7, "test_acc": 0.9}, "oracle": {"test_acc": 0.95}}
    assert _metric(summary, "selected.val_balanced_acc") == 0.7
    assert _metric(summary, "oracle.test_acc") == 0.95  # named: allowed
    with pytest.raises(UserError, match="use selected.<metric> or final.<metric>"):
        _metric(summary, "best.test_acc")


def test_a_search_on_validation_needs_a_validation_split(tmp_path):
    from lossbench.training.search import run_search

    with pytest.raises(UserError, match="needs a validation split: set dataset.val_fraction"):
        run_search(["hparams_search=focal_gamma", "dataset=digits", "dataset.val_fraction=0",
                    f"paths.output_dir={tmp_path}"])
    assert not (tmp_path / "search").exists()
