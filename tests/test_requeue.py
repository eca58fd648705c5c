"""hydra/launcher=slurm's requeue of a job that a stop signal ended, tested
through the real CLI on digits with submitit's local executor
(hydra/launcher=slurm_local). That executor starts a job again when it exits
with submitit's requeue code: the same path the slurm launcher takes with
``scontrol requeue``."""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from lossbench.errors import UserError
from lossbench.launch.requeue import check_max_requeues, requeue_on_stop, requeue_stopped_run
from lossbench.training.columns import TIME_COLUMNS
from lossbench.training.stop_signals import StopRequest
from helpers.cli import LOSSBENCH, lossbench
from helpers.training import read_rows


def test_max_requeues_must_be_a_whole_number():
    assert check_max_requeues(0) == 0
    for bad in (-1, 1.5, "x", True):
        with pytest.raises(UserError, match="hydra.launcher.max_requeues="):
            check_max_requeues(bad)


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def _stopped_by(*signums) -> StopRequest:
    stop = StopRequest()
    for signum in signums:
        stop.signal = signum
        stop.received.add(signum)
    return stop


def test_the_requeue_hook_requeues_on_sigusr2_only_and_within_the_limit(tmp_path):
    asked = []
    summary = {"status": "interrupted", "epochs_completed": 2}
    # no launcher that requeues: nothing happens
    assert requeue_stopped_run(tmp_path, dict(summary), _stopped_by(signal.SIGUSR2)) is None and not asked
    with requeue_on_stop(1, asked.append):
        for not_ours in (signal.SIGINT, signal.SIGTERM):
            assert requeue_stopped_run(tmp_path, dict(summary), _stopped_by(not_ours)) is None
        assert not asked
        assert requeue_stopped_run(tmp_path, summary, _stopped_by(signal.SIGTERM, signal.SIGUSR2)) is None
        assert asked == [140] and summary["requeues"] == _summary(tmp_path)["requeues"] == 1
        refused = requeue_stopped_run(tmp_path, summary, _stopped_by(signal.SIGUSR2))
    assert refused == "not requeued: requeued 1 of hydra.launcher.max_requeues=1 times" and asked == [140]
    assert _summary(tmp_path)["not_requeued"] == refused


def test_a_requeue_the_scheduler_refuses_is_not_counted_and_says_why(tmp_path):
    def refuse(exit_code):
        raise subprocess.CalledProcessError(1, ["scontrol", "requeue", "42"])

    summary = {"status": "interrupted", "epochs_completed": 2, "requeues": 1}
    with requeue_on_stop(3, refuse):
        said = requeue_stopped_run(tmp_path, summary, _stopped_by(signal.SIGUSR2))
    assert said.startswith("not requeued: Command '['scontrol', 'requeue', '42']' returned non-zero exit status 1")
    assert _summary(tmp_path)["requeues"] == 1 and _summary(tmp_path)["not_requeued"] == said


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in rows]


def _stop_mid_run(tmp_path, signals, *args) -> tuple[subprocess.CompletedProcess, Path, int]:
    """A one-job sweep under hydra/launcher=slurm_local, sent ``signals`` once two
    epochs are done: (the sweep's result, its job folder, epochs done at the signal)."""
    command = [LOSSBENCH, "train", "-m", "hydra/launcher=slurm_local", "hydra.sweep.dir=sweep", *args]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    job = tmp_path / "sweep" / "0"
    deadline = time.time() + 180
    while not ((job / "metrics.csv").is_file() and len(read_rows(job)) >= 2):
        assert time.time() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    writer = json.loads((job / ".lossbench.lock").read_text())["pid"]
    for signum in signals:
        os.kill(writer, signum)
    done_at_signal = len(read_rows(job))
    out, err = process.communicate(timeout=240)
    return subprocess.CompletedProcess(command, process.returncode, out, err), job, done_at_signal


def _submitit_log(tmp_path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.err"))


@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_its_metrics_equal_an_uninterrupted_run(tmp_path):
    run = ["dataset=digits", "trainer=quick", "trainer.epochs=8", "trainer.progress=false", "seed=3"]
    # a preemption as submitit has SLURM signal it: SIGTERM, then SIGUSR2
    result, job, done_at_signal = _stop_mid_run(tmp_path, (signal.SIGTERM, signal.SIGUSR2), *run)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = _summary(job)
    assert summary["status"] == "finished" and summary["requeues"] == 1
    # resumed from the last epoch completed before the stop: nothing trained twice
    assert done_at_signal <= summary["resumed_from_epoch"] < 8
    assert "stopped by SIGUSR2 after epoch" in _submitit_log(tmp_path)
    assert "requeueing it (1 of at most 3); it resumes from that epoch" in _submitit_log(tmp_path)
    reference = lossbench("train", *run, "hydra.run.dir=reference", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert reference.returncode == 0, reference.stderr[-3000:]
    requeued_rows, reference_rows = read_rows(job), read_rows(tmp_path / "reference")
    assert [int(r["epoch"]) for r in requeued_rows] == list(range(1, 9))
    assert _comparable(requeued_rows) == _comparable(reference_rows)
    report = lossbench("report", "sweep", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "[finished (requeued 1x)]" in report.stdout
    with open(tmp_path / "sweep" / "report" / "runs.csv", newline="") as f:
        assert [row["requeues"] for row in csv.DictReader(f)] == ["1"]


@pytest.mark.slow
@pytest.mark.parametrize("signals, setting, why", [
    # SIGUSR2 (the time limit's signal) once the job has used its requeues
    ((signal.SIGUSR2,), "hydra.launcher.max_requeues=0", "not requeued: requeued 0 of hydra.launcher.max_requeues=0 times"),
    # SIGTERM alone: scancel, or a cluster's own preemption; a cancelled job must stay cancelled
    ((signal.SIGTERM,), "hydra.launcher.max_requeues=3", None),
])
def test_a_job_not_to_requeue_stays_interrupted_and_says_how_to_resume(tmp_path, signals, setting, why):
    result, job, _ = _stop_mid_run(tmp_path, signals, setting, "dataset=digits", "trainer=quick", "trainer.epochs=8",
                                   "trainer.progress=false")
    assert result.returncode == 1
    summary = _summary(job)
    assert summary["status"] == "interrupted" and summary["stopped_by"] == signal.Signals(signals[-1]).name
    assert summary.get("requeues", 0) == 0
    log = _submitit_log(tmp_path)
    assert "requeueing it" not in log
    if why:
        assert why in log
    assert "resume with: lossbench train" in log
    assert f"{job.name}: interrupted: interrupted after epoch {summary['epochs_completed']}" + (
        f"; {why}" if why else "") in result.stderr
