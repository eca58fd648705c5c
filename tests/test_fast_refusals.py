"""A command line's mistakes are refused before torch is imported and before
any data is read, and --help answers without torch: what each command
imports is read from Python's own import log (-X importtime)."""

import os
import subprocess
import sys

import pytest

from helpers.cli import assert_one_line_error


def imports_of(args: list[str], cwd) -> tuple[subprocess.CompletedProcess, set[str]]:
    """The command's result and every module it imported, as Python logs them."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "lossbench.cli", *args], cwd=cwd,
                            capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    modules = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    result.stderr = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("import time:"))
    return result, modules


@pytest.mark.parametrize("args, fragments", [
    (["train", "loss=focl"], ["loss='focl' is unknown: valid losses are ce, nll"]),
    (["train", "trainer.epoch=3"], ["trainer.epoch"]),
    (["train", "trainer.epochs=-1"], ["trainer.epochs=-1 is invalid: it must be in [1, inf)"]),
    (["train", "loss=focal", "loss.gamma=-1"], ["loss.gamma=-1"]),
    (["train", "dataset=digits", "trainer.eval_batch_size=0"], ["trainer.eval_batch_size=0 is invalid", "or auto"]),
    (["train", "dataset=cifar10", "dataset.on_device=maybe"], ["dataset.on_device='maybe'"]),
    (["train", "trainer.drw_epoch=500"], ["trainer.drw_epoch=500"]),
])
def test_a_bad_value_is_refused_without_torch(tmp_path, args, fragments):
    result, modules = imports_of(args, tmp_path)
    assert_one_line_error(result, *fragments)
    assert "torch" not in modules and "hydra" in modules
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))


def test_help_answers_without_torch(tmp_path):
    result, modules = imports_of(["train", "--help"], tmp_path)
    assert result.returncode == 0 and "Config groups" in result.stdout and "loss: " in result.stdout
    assert "torch" not in modules


def test_every_job_of_a_sweep_is_checked_before_the_first_starts(tmp_path):
    result, modules = imports_of(["train", "-m", "dataset=digits", "seed=0,1", "optim.lr=0.1,-1"], tmp_path)
    assert_one_line_error(result, "optim.lr=-1")
    assert "torch" not in modules
    # no job ran and no sweep folder was made
    assert not (tmp_path / "results" / "multirun").exists() or not any((tmp_path / "results" / "multirun").rglob("*"))


def test_a_good_command_line_still_trains(tmp_path):
    """The checks before torch let a valid run through, which then imports torch and trains."""
    result, modules = imports_of(["train", "dataset=digits", "trainer.epochs=1", "trainer.progress=false"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torch" in modules and "status: finished" in result.stdout
