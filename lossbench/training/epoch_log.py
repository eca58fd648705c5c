"""One line per epoch in the run's log (train.log), with or without a progress
bar: a job on a cluster has no terminal, and its log is all there is to read
while it trains."""

import logging
from contextlib import contextmanager

from lossbench.training.run_files import format_value

log = logging.getLogger("lossbench")

# the columns of metrics.csv the line shows, with its values as metrics.csv writes them
EPOCH_LINE_COLUMNS = ("lr", "train_loss", "train_acc", "val_balanced_acc", "test_acc", "test_balanced_acc",
                      "epoch_time_s", "eval_time_s")
_MARK = "lossbench_epoch_line"


def epoch_line(row: dict, epochs: int) -> str:
    shown = " ".join(f"{c}={format_value(row[c])}" for c in EPOCH_LINE_COLUMNS if row.get(c) is not None)
    return f"epoch {row['epoch']}/{epochs}: {shown}"


def log_epoch(row: dict, epochs: int) -> None:
    log.info("%s", epoch_line(row, epochs), extra={_MARK: True})


class _NotEpochLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, _MARK, False)


def _terminal_handlers() -> list[logging.Handler]:
    handlers, logger = [], log
    while logger is not None:
        handlers += [h for h in logger.handlers
                     if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
        logger = logger.parent if logger.propagate else None
    return handlers


@contextmanager
def epoch_lines_in_files_only(progress_bar: bool):
    """While a progress bar holds the terminal, the epoch lines go to the log
    files only: printed between its redraws they would break the bar, which
    shows the same progress."""
    if not progress_bar:
        yield
        return
    handlers, only_files = _terminal_handlers(), _NotEpochLines()
    for handler in handlers:
        handler.addFilter(only_files)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(only_files)
