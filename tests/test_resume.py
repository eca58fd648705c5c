"""Runs that die: kill -9 and resume, SIGTERM and SIGINT, divergence, bad resume
paths, I/O errors. Subprocesses through the real CLI on digits."""

import csv
import json
import os
import random
import shlex
import signal
import subprocess
import time

import pytest
import torch

from helpers.cli import LOSSBENCH, assert_one_line_error, lossbench
from lossbench.errors import UserError
from lossbench.training.checkpoint import check_resumable
from lossbench.training.folder_lock import read_owner
from lossbench.training.run_dir import RunDir
from lossbench.training.columns import TIME_COLUMNS
from helpers.threads import TEST_THREADS

pytestmark = pytest.mark.slow  # processes or training: left out by pytest -m "not slow"

RUN = ["dataset=digits", "trainer.epochs=6", "trainer.progress=false", "seed=3"]


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def _start(cwd, *args):
    return subprocess.Popen([LOSSBENCH, "train", *args], cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": TEST_THREADS},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_rows(metrics, count, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) > count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{metrics} never reached {count} rows")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """The uninterrupted run, made once: tests only read it, or check that refused commands leave it as it is."""
    cwd = tmp_path_factory.mktemp("reference")
    result = lossbench("train", *RUN, "hydra.run.dir=run", cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return cwd / "run"


@pytest.fixture(scope="module")
def reference(finished_run):
    """The uninterrupted run's metrics rows."""
    return _rows(finished_run)


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_9_then_resume_matches_the_uninterrupted_run(tmp_path, finished_run, reference, seed):
    run_dir = tmp_path / "run"
    process = _start(tmp_path, *RUN, f"hydra.run.dir={run_dir}")
    _wait_for_rows(run_dir / "metrics.csv", 1)
    time.sleep(random.Random(seed).uniform(0.0, 1.2))  # somewhere in epochs 2-5
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert read_owner(run_dir).pid == process.pid  # its lock is left behind
    result = lossbench("train", *RUN, f"trainer.resume={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    # taken over: the PID is gone on this host
    assert f"took over {run_dir} from pid {process.pid}" in result.stderr and "its process is gone" in result.stderr
    assert _rows(run_dir) == reference and read_owner(run_dir) is None
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_completed"] == 6
    # best.pt: the uninterrupted run's, of the selected epoch
    best, uninterrupted = (torch.load(d / "best.pt", weights_only=True) for d in (run_dir, finished_run))
    assert best["epoch"] == uninterrupted["epoch"] == summary["selected_epoch"] == summary["best_checkpoint"]["epoch"]
    assert all(torch.equal(best["model"][k], uninterrupted["model"][k]) for k in uninterrupted["model"])


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_end_the_run_cleanly(tmp_path, reference, sig, code):
    run_dir = tmp_path / "run"
    process = _start(tmp_path, *RUN, f"hydra.run.dir={run_dir}")
    _wait_for_rows(run_dir / "metrics.csv", 2)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    summary = json.loads((run_dir / "summary.json").read_text())
    done = summary["epochs_completed"]
    assert summary["status"] == "interrupted" and done >= 2
    assert "Traceback" not in stderr
    assert "resume with: lossbench train dataset=digits trainer.epochs=6" in stderr and f"trainer.resume={run_dir}" in stderr
    rows = _rows(run_dir)
    assert len(rows) == done and rows == reference[:done]  # each row complete, none half-written
    assert (run_dir / "last.pt").stat().st_size > 0
    resumed = _run_printed_resume_command(stderr, tmp_path)
    assert resumed.returncode == 0 and _rows(run_dir) == reference
    # the command's one-line refusal of a finished run is checked on the reference run
    with pytest.raises(UserError, match="has finished its 6 epochs: nothing to resume"):
        check_resumable(run_dir, RunDir(run_dir).config())


def _run_printed_resume_command(stderr: str, cwd):
    """The command the interrupted run printed, run as a user pasting it into a shell would."""
    command = shlex.split(stderr.split("resume with: ", 1)[1].splitlines()[0])
    assert command[:2] == ["lossbench", "train"]
    return lossbench(*command[1:], cwd=cwd)


def test_the_printed_resume_command_of_a_sweep_job_works(tmp_path):
    """A job folder's name holds "=" and ",": the printed command quotes it for Hydra and the shell."""
    sweep = tmp_path / "sweep"
    process = _start(tmp_path, "-m", "loss=ce,focal", *RUN, f"hydra.sweep.dir={sweep}")
    job = sweep / "0_loss=ce"
    _wait_for_rows(job / "metrics.csv", 2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in stderr
    resumed = _run_printed_resume_command(stderr, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((job / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_completed"] == 6 and len(_rows(job)) == 6


def test_resume_auto_finds_the_unfinished_run(tmp_path, reference):
    process = _start(tmp_path, *RUN)
    metrics = next(iter(_poll(lambda: list((tmp_path / "results" / "runs").glob("*/*/metrics.csv")))))
    _wait_for_rows(metrics, 2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = lossbench("train", *RUN, "trainer.resume=auto", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert _rows(metrics.parent) == reference
    assert len(list((tmp_path / "results" / "runs").glob("*/*"))) == 1  # no second run directory


def _poll(find, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("nothing appeared")


def test_non_finite_loss_stops_with_epoch_and_step(diverged_run):
    result, run = diverged_run
    assert result.returncode == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["epochs_completed"] == 1
    assert "non-finite at epoch 1, step" in summary["error"]
    assert len(_rows(run)) == 1


def test_skip_step_counts_the_skipped_steps(tmp_path):
    # in this process: what the trainer does with the bad steps is the point (a finished
    # run is what makes the command exit 0)
    from lossbench.training.run import run_training
    from helpers.training import compose_train

    run_dir = tmp_path / "run"
    summary = run_training(compose_train("optim.lr=1e8", "trainer.epochs=2", "trainer.on_nonfinite=skip_step"), run_dir)
    rows = _rows(run_dir)
    assert len(rows) == 2 and int(rows[0]["nonfinite_steps"]) > 0
    assert summary["status"] == json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_bad_resume_paths_fail_in_one_line_and_write_nothing(tmp_path, finished_run):
    (tmp_path / "not-a-run").mkdir()
    result = lossbench("train", *RUN, f"trainer.resume={tmp_path / 'not-a-run'}", cwd=tmp_path)
    assert_one_line_error(result, "is not a lossbench run directory")
    assert not (tmp_path / "results").exists() and not any((tmp_path / "not-a-run").iterdir())
    done = finished_run
    before = {p.relative_to(done): p.read_bytes() for p in done.rglob("*") if p.is_file()}  # .hydra/ included
    finished = lossbench("train", *RUN, f"trainer.resume={done}", cwd=tmp_path)
    assert_one_line_error(finished, "has finished its 6 epochs: nothing to resume")
    other = lossbench("train", "dataset=digits_lt", "trainer.epochs=6", f"trainer.resume={done}", cwd=tmp_path)
    assert_one_line_error(other, "was made with dataset.name=digits (now digits_lt)")
    other_model = lossbench("train", *RUN, "model=resnet20", f"trainer.resume={done}", cwd=tmp_path)
    assert_one_line_error(other_model, "model.name=small_cnn (now resnet20)")
    into_it = lossbench("train", "dataset=digits", "loss=focal", "trainer.epochs=1", f"hydra.run.dir={done}", cwd=tmp_path)
    assert_one_line_error(into_it, f"{done} already holds a run (metrics.csv)")
    assert {p.relative_to(done): p.read_bytes() for p in done.rglob("*") if p.is_file()} == before
    nothing = lossbench("train", *RUN, "trainer.resume=auto", cwd=tmp_path)
    assert_one_line_error(nothing, "trainer.resume=auto found no unfinished run")


def test_an_io_error_while_writing_metrics_names_the_path(tmp_path, monkeypatch):
    from lossbench.training import run_files
    from lossbench.training.run import run_training
    from helpers.training import compose_train

    real_fsync, calls = os.fsync, {"n": 0}

    def failing_fsync(fd):
        calls["n"] += 1
        if calls["n"] > 12:  # some epochs in: the disk fills up
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(run_files.os, "fsync", failing_fsync)
    with pytest.raises(UserError, match=r"cannot write .*: No space left on device"):
        run_training(compose_train("trainer.epochs=6"), tmp_path)
    monkeypatch.setattr(run_files.os, "fsync", real_fsync)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert rows and all(len(r) == len(rows[0]) and None not in r.values() for r in rows)
    json.loads((tmp_path / "summary.json").read_text())  # still valid


class _StopAfterFirstEpoch:
    """A stop request raised as soon as the first epoch's row is written."""

    def __init__(self, run_dir):
        self.metrics = run_dir / "metrics.csv"

    def __bool__(self):
        return self.metrics.exists() and len(self.metrics.read_text().splitlines()) > 1

    name = "SIGTERM"


def test_summary_records_the_threads_and_device_of_the_latest_launch(tmp_path):
    import torch

    from helpers.training import compose_train
    from lossbench.training.device import device_name
    from lossbench.training.run import run_training

    cfg, run_dir, threads = compose_train("trainer.epochs=2", "trainer.device=cpu"), tmp_path / "run", torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        first = run_training(cfg, run_dir, stop=_StopAfterFirstEpoch(run_dir))
        assert first["status"] == "interrupted" and first["epochs_completed"] == 1
        assert (first["threads"], first["device"], first["device_name"]) == (2, "cpu", device_name(torch.device("cpu")))
        torch.set_num_threads(1)
        resumed = run_training(cfg, run_dir, resume=True)
    finally:
        torch.set_num_threads(threads)
    written = json.loads((run_dir / "summary.json").read_text())
    assert written["status"] == "finished" and written["resumed_from_epoch"] == 1
    assert written["threads"] == resumed["threads"] == 1 and written["device"] == "cpu"
