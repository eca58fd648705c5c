"""The installed `lossbench` command, run as a user would."""

import os
import re
import shutil
import subprocess
import sys

from helpers.threads import TEST_THREADS

LOSSBENCH = shutil.which("lossbench") or os.path.join(os.path.dirname(sys.executable), "lossbench")


def lossbench(*args, cwd, env=None, timeout=240):
    full_env = {**os.environ, "OMP_NUM_THREADS": TEST_THREADS, **(env or {})}
    return subprocess.run(
        [LOSSBENCH, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


EPOCH_LINE = re.compile(r"\]\[lossbench\]\[INFO\] - epoch (\d+)/(\d+): (.*)$")
EPOCH_LINE_COLUMNS = ("lr", "train_loss", "train_acc", "val_balanced_acc", "test_acc", "test_balanced_acc",
                      "epoch_time_s", "eval_time_s")


def epoch_lines(log: str) -> list[tuple[int, int, dict]]:
    """The per-epoch lines of a log: (epoch, epochs, {column: value as written})."""
    found = []
    for line in log.splitlines():
        match = EPOCH_LINE.search(line)
        if match:
            values = dict(pair.split("=", 1) for pair in match.group(3).split())
            found.append((int(match.group(1)), int(match.group(2)), values))
    return found


def expected_epoch_lines(rows: list[dict], epochs: int) -> list[tuple[int, int, dict]]:
    """What epoch_lines should find for the rows of metrics.csv (as csv.DictReader reads them)."""
    return [(int(r["epoch"]), epochs, {c: r[c] for c in EPOCH_LINE_COLUMNS if r[c] != ""}) for r in rows]
