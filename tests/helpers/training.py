"""Configs composed as `lossbench train` composes them, and a run's metrics."""

import csv

from hydra import compose, initialize_config_dir

from lossbench.config_dir import config_dir


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose("train", overrides=["dataset=digits", "trainer.progress=false", *overrides])


def read_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))
