"""The table printed at the end of a run."""

from lossbench.formatting import format_summary_table

ROW = {"train_loss": 0.25, "train_acc": 0.9, "test_acc": 0.875, "test_balanced_acc": 0.85}
SELECTION = {"by": "the epoch of best val_balanced_acc"}


def test_a_run_with_a_selected_epoch_shows_it_beside_the_final_one():
    table = format_summary_table({"status": "finished", "epochs_completed": 5, "final": ROW,
                                  "selected": {**ROW, "test_acc": 0.9}, "selected_epoch": 3, "selection": SELECTION})
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "final", "selected", "(epoch", "3)"]
    assert lines[3].split() == ["test_acc", "0.8750", "0.9000"]
    assert lines[-1] == "selected: the epoch of best val_balanced_acc"


def test_a_run_that_diverged_before_any_selection_has_no_selected_column():
    nan = float("nan")
    table = format_summary_table({"status": "diverged", "epochs_completed": 1,
                                  "final": {**ROW, "train_loss": nan}, "selected": {}, "selected_epoch": None,
                                  "selection": SELECTION})
    lines = table.splitlines()
    assert "None" not in table and lines[0].split() == ["metric", "final"]
    assert lines[1].split() == ["train_loss", "-"] and lines[3].split() == ["test_acc", "0.8750"]
    assert lines[-1] == "selected: none (the loss became non-finite in epoch 1, before any epoch could be selected)"
