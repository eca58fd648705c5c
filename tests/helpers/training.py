"""Configs composed as `lossbench train` composes them, and a run's metrics."""

import csv

from lossbench.training import compose


def compose_train(*overrides: str):
    return compose.compose_train(["dataset=digits", "trainer.progress=false", *overrides])


def read_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
