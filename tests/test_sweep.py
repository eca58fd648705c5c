"""Sweeps through the real CLI on digits: parallel jobs, relaunch after a kill,
failing jobs, hyper-parameter search with resume, submitit."""

import hashlib
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import time

import pytest
import yaml

from lossbench.cli import main as lossbench_main
from lossbench.training.search import run_search
from lossbench.training.sweep import job_dir_name
from helpers.cli import LOSSBENCH, assert_one_line_error, epoch_lines, expected_epoch_lines, lossbench
from helpers.training import read_rows
from helpers.threads import TEST_THREADS

pytestmark = pytest.mark.slow  # processes or training: left out by pytest -m "not slow"

QUICK = ["dataset=digits", "trainer.epochs=3", "trainer.progress=false"]
# two jobs run at once: a thread each, so that on two cores their threads do not spin against each other
ONE_THREAD_PER_JOB = {"OMP_NUM_THREADS": "1"}


def _snapshot(folder):
    """Content of every file, and the modification time of the run's own files
    (Hydra rewrites its .hydra/ copies, with the same content, at each launch)."""
    return {p.relative_to(folder): (None if ".hydra" in p.parts else p.stat().st_mtime_ns,
                                    hashlib.sha1(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _status(job):
    try:
        return json.loads((job / "summary.json").read_text()).get("status")
    except (OSError, json.JSONDecodeError):
        return None


def _wait_for(predicate, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    raise AssertionError("timed out")


def _start(tmp_path, *args):
    return subprocess.Popen([LOSSBENCH, "train", *args], cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": TEST_THREADS},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_job_folder_names_are_short_and_safe():
    assert job_dir_name(3, "loss=focal,seed=0") == "3_loss=focal,seed=0"
    assert job_dir_name(0, "") == "0"
    assert job_dir_name(1, "paths.data_dir=/a b/c") == "1_paths.data_dir=_a_b_c"
    long = job_dir_name(7, "loss.gamma=" + "9" * 200)
    assert len(long) <= 82 and long.startswith("7_loss.gamma=999") and "~" in long


def test_parallel_jobs_with_joblib(tmp_path):
    result = lossbench("train", "-m", "loss=ce,focal", *QUICK, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", cwd=tmp_path,
                       env=ONE_THREAD_PER_JOB)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "results" / "multirun").glob("*/*")
    assert sorted(p.name for p in sweep.iterdir()) == [".lossbench_sweep.json", "0_loss=ce", "1_loss=focal", "multirun.yaml"]
    assert _status(sweep / "0_loss=ce") == _status(sweep / "1_loss=focal") == "finished"


def test_relaunch_runs_only_the_unfinished_jobs(tmp_path):
    args = ["-m", "loss=ce,focal,label_smoothing", *QUICK]
    process = _start(tmp_path, *args)
    sweeps = tmp_path / "results" / "multirun"
    _wait_for(lambda: any(_status(j) == "finished" for j in sweeps.glob("*/*/0_*"))
              and any((j / "metrics.csv").exists() for j in sweeps.glob("*/*/1_*")))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    (sweep,) = sweeps.glob("*/*")
    first = sweep / "0_loss=ce"
    before = _snapshot(first)
    result = lossbench("train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "continuing the unfinished sweep" in result.stdout and "0_loss=ce has finished (in an earlier or a concurrent launch): skipped" in result.stdout
    assert list(sweeps.glob("*/*")) == [sweep]  # the same sweep, continued
    assert _snapshot(first) == before  # the finished job's files are untouched
    for job in ("1_loss=focal", "2_loss=label_smoothing"):
        assert _status(sweep / job) == "finished"
    killed = sweep / "1_loss=focal"
    assert len((killed / "metrics.csv").read_text().splitlines()) == 4
    # killed before its first epoch ended: run afresh, the attempt kept; after: continued from last.pt
    resumed = "resumed_from_epoch" in json.loads((killed / "summary.json").read_text())
    assert resumed or (killed / "attempts" / "1" / "metrics.csv").exists()


def test_a_failing_job_does_not_stop_the_others(tmp_path, capsys):
    """A job that fails as it runs (a batch larger than the training set: only the data can tell) is
    recorded as failed, and the other jobs train."""
    result = lossbench("train", "-m", "trainer.batch_size=5000,64", *QUICK, cwd=tmp_path)
    assert result.returncode == 1
    (sweep,) = (tmp_path / "results" / "multirun").glob("*/*")
    bad, good = "0_trainer.batch_size=5000", "1_trainer.batch_size=64"
    assert _status(sweep / good) == "finished"
    failed = json.loads((sweep / bad / "summary.json").read_text())
    reason = "trainer.batch_size=5000 is larger than the training set (1295 images): use at most 1295"
    assert failed["status"] == "failed" and failed["error"] == reason
    assert "1 job(s)" in result.stderr and f"{bad}: failed: {reason}" in result.stderr
    # the sweep ends with what finished, the failed job's folder, and the commands that report and continue it
    where = sweep.relative_to(tmp_path)
    assert f"\n  {where}/{bad}: failed: {reason}" in result.stderr
    assert result.stdout.splitlines()[-2:] == [f"sweep {where}: 1 of 2 job(s) finished: {good}",
                                               f"report: lossbench report {where}"]
    assert _printed_command(result.stderr, "continue the sweep with: ") == [
        "lossbench", "train", "-m", "trainer.batch_size=5000,64", *QUICK, f"hydra.sweep.dir={where}"]
    # the report's command line is tested in test_cli.py: here, only what it makes of a failed job
    assert lossbench_main(["report", str(sweep)]) == 0 and "[failed]" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    # a knob one of the swept losses does not have
    (["loss=focal,ce", "loss.gamma=3"], "loss.gamma is not a knob of ce: its knobs are weight, ignore_index, reduction"),
    # a key one of the swept datasets does not have
    (["dataset=cifar10,digits", "dataset.download=false"], "dataset.download"),
])
def test_a_job_the_command_line_makes_invalid_refuses_the_sweep_before_any_job(tmp_path, args, message):
    result = lossbench("train", "-m", *args, "trainer.epochs=1", cwd=tmp_path)
    assert_one_line_error(result, message)
    assert not (tmp_path / "results" / "multirun").exists() or not any((tmp_path / "results" / "multirun").iterdir())


def _printed_command(output: str, prefix: str) -> list[str]:
    """The command printed after ``prefix``, as a shell splits it."""
    (line,) = [line for line in output.splitlines() if line.startswith(prefix)]
    return shlex.split(line[len(prefix):])


def test_a_finished_sweep_launched_again_points_to_it(tmp_path):
    result = lossbench("train", "-m", "dataset=digits", "loss=ce,focal", "trainer.epochs=1", "trainer.progress=false",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "results" / "multirun").glob("*/*")
    where = sweep.relative_to(tmp_path)
    assert result.stdout.splitlines()[-2:] == [f"sweep {where}: 2 of 2 job(s) finished: 0_loss=ce, 1_loss=focal",
                                               f"report: lossbench report {where}"]
    # without a progress bar the epoch lines are printed too, and train.log has them
    printed = epoch_lines(result.stdout)
    for job in ("0_loss=ce", "1_loss=focal"):
        expected = expected_epoch_lines(read_rows(sweep / job), 1)
        assert epoch_lines((sweep / job / "train.log").read_text()) == expected and expected[0] in printed
    before = _snapshot(sweep)

    # the same sweep, its overrides in another order: nothing runs, one line says where it is
    again = lossbench("train", "trainer.progress=false", "trainer.epochs=1", "loss=ce,focal", "-m", "dataset=digits",
                      cwd=tmp_path)
    assert again.returncode == 0 and "Traceback" not in again.stderr and "error" not in again.stderr
    assert again.stdout.splitlines() == [
        f"lossbench train: this sweep has already run and every job finished in {where}: "
        f"see lossbench report {where}; add +rerun=true to run it again in a new folder"]
    assert list((tmp_path / "results" / "multirun").glob("*/*")) == [sweep] and _snapshot(sweep) == before

    rerun = lossbench("train", "-m", "dataset=digits", "loss=ce,focal", "trainer.epochs=1", "trainer.progress=false",
                      "+rerun=true", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (fresh,) = set((tmp_path / "results" / "multirun").glob("*/*")) - {sweep}
    assert _status(fresh / "0_loss=ce") == _status(fresh / "1_loss=focal") == "finished"
    # a choice of the launch, not a setting: the runs' config does not have it
    assert "rerun" not in yaml.safe_load((fresh / "0_loss=ce" / "resolved_config.yaml").read_text())
    assert _snapshot(sweep) == before


def test_an_interrupted_sweep_prints_the_command_that_continues_it(tmp_path):
    process = subprocess.Popen([LOSSBENCH, "train", "-m", "dataset=digits", "loss=ce,focal", "trainer.epochs=3",
                                "trainer.progress=false"], cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": TEST_THREADS},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    sweeps = tmp_path / "results" / "multirun"
    _wait_for(lambda: any(len(read_rows(j)) >= 1 for j in sweeps.glob("*/*/1_*") if (j / "metrics.csv").exists()))
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr
    (sweep,) = sweeps.glob("*/*")
    assert _status(sweep / "0_loss=ce") == "finished" and _status(sweep / "1_loss=focal") == "interrupted"
    command = _printed_command(stderr, "continue the sweep with: ")
    assert command == ["lossbench", "train", "-m", "dataset=digits", "loss=ce,focal", "trainer.epochs=3",
                       "trainer.progress=false", f"hydra.sweep.dir={sweep.relative_to(tmp_path)}"]
    first = _snapshot(sweep / "0_loss=ce")
    result = lossbench(*command[1:], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "0_loss=ce has finished (in an earlier or a concurrent launch): skipped" in result.stdout
    assert list(sweeps.glob("*/*")) == [sweep] and _snapshot(sweep / "0_loss=ce") == first
    summary = json.loads((sweep / "1_loss=focal" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["resumed_from_epoch"] >= 1
    assert len(read_rows(sweep / "1_loss=focal")) == 3


def _complete_trials(study_dir):
    with sqlite3.connect(study_dir / "study.db") as db:
        return db.execute("select count(*) from trials where state = 'COMPLETE'").fetchone()[0]


def test_search_resumes_after_a_kill(tmp_path, monkeypatch, capsys):
    args = ["hparams_search=focal_gamma", "hparams_search.n_trials=3", *QUICK]
    process = _start(tmp_path, *args)
    search = tmp_path / "results" / "search"
    _wait_for(lambda: any(_status(t) == "finished" for t in search.glob("*/trial_000"))
              and any(search.glob("*/trial_001/metrics.csv")))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    (study_dir,) = search.glob("focal_gamma*")
    before = _snapshot(study_dir / "trial_000")
    assert _complete_trials(study_dir) == 1
    result = lossbench("train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 of 3 trials done, 2 to run" in result.stdout
    assert _complete_trials(study_dir) == 3
    assert _snapshot(study_dir / "trial_000") == before
    assert "best: trial" in result.stdout and (study_dir / "trials.csv").is_file()
    # launched once more (in this process: nothing is left to train) it runs no trial
    monkeypatch.chdir(tmp_path)
    assert run_search(args) == 0
    assert "3 of 3 trials done, 0 to run" in capsys.readouterr().out and _complete_trials(study_dir) == 3


def test_slurm_launcher_config_composes(tmp_path):
    result = lossbench("train", "hydra/launcher=slurm", "--cfg", "hydra", cwd=tmp_path,
                       env={"LOSSBENCH_SLURM_PARTITION": "gpu-short"})
    assert result.returncode == 0, result.stderr
    launcher = yaml.safe_load(result.stdout)["hydra"]["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert launcher["gpus_per_node"] == 1 and launcher["timeout_min"] == 240
    assert launcher["partition"] == "${oc.env:LOSSBENCH_SLURM_PARTITION,null}"
    assert launcher["max_requeues"] == 3
    # what the job script asks of SLURM: the stop signal ahead of the time limit, and leave to requeue
    from submitit.slurm.slurm import _make_sbatch_string

    script = _make_sbatch_string(command="true", folder=str(tmp_path), signal_delay_s=launcher["signal_delay_s"],
                                 additional_parameters=launcher["additional_parameters"])
    assert "#SBATCH --signal=USR2@120" in script and "#SBATCH --requeue" in script
    from omegaconf import OmegaConf

    os.environ["LOSSBENCH_SLURM_PARTITION"] = "gpu-short"
    try:
        assert OmegaConf.create({"partition": launcher["partition"]}).partition == "gpu-short"
    finally:
        del os.environ["LOSSBENCH_SLURM_PARTITION"]


def test_submitit_local_runs_two_jobs(tmp_path):
    result = lossbench("train", "-m", "hydra/launcher=submitit_local", "loss=ce,focal", *QUICK, cwd=tmp_path,
                       env=ONE_THREAD_PER_JOB)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "results" / "multirun").glob("*/*")
    assert _status(sweep / "0_loss=ce") == _status(sweep / "1_loss=focal") == "finished"
