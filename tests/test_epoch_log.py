"""The per-epoch line of a run's log, and where it goes."""

import io
import logging

import pytest

from lossbench.training.epoch_log import epoch_line, epoch_lines_in_files_only, log_epoch

ROW = {"epoch": 3, "lr": 0.05, "train_loss": 0.123456789, "train_acc": 0.9, "val_balanced_acc": None,
       "test_acc": 0.875, "test_balanced_acc": 0.8125, "epoch_time_s": 1.5, "test_ece": 0.1}


def test_the_line_shows_the_main_columns_as_metrics_csv_writes_them():
    # no validation split: no val_balanced_acc; columns outside the line (test_ece) are left out
    assert epoch_line(ROW, 30) == ("epoch 3/30: lr=0.05 train_loss=0.123457 train_acc=0.9 test_acc=0.875 "
                                   "test_balanced_acc=0.8125 epoch_time_s=1.5")


@pytest.fixture
def terminal_and_file(tmp_path):
    """The handlers Hydra gives a run: one to the terminal, one to train.log."""
    terminal = logging.StreamHandler(io.StringIO())
    file = logging.FileHandler(tmp_path / "train.log", delay=True)
    logger = logging.getLogger("lossbench")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(terminal)
    logger.addHandler(file)
    yield terminal.stream, tmp_path / "train.log"
    logger.removeHandler(terminal)
    logger.removeHandler(file)
    file.close()
    logger.setLevel(level)


@pytest.mark.parametrize("progress_bar", [True, False])
def test_with_a_progress_bar_the_lines_go_to_the_file_only(terminal_and_file, progress_bar):
    terminal, file = terminal_and_file
    with epoch_lines_in_files_only(progress_bar):
        log_epoch(ROW, 30)
        logging.getLogger("lossbench").info("another message")
    log_epoch({**ROW, "epoch": 4}, 30)  # the filter is gone with the block
    assert file.read_text().splitlines() == [epoch_line(ROW, 30), "another message", epoch_line({**ROW, "epoch": 4}, 30)]
    on_terminal = [epoch_line(ROW, 30)] if not progress_bar else []
    assert terminal.getvalue().splitlines() == [*on_terminal, "another message", epoch_line({**ROW, "epoch": 4}, 30)]
