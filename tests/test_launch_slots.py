"""hydra/launcher=local_gpus's slots (a machine's GPUs, or its cores), tested
through the real CLI on digits. There is no GPU here: the tests give the
launcher GPU ids, and each job records the CUDA_VISIBLE_DEVICES it was given
(with no CUDA device it trains on the CPU)."""

import csv
import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from lossbench.errors import UserError
from lossbench.launch.slots import SLOTS_FILE, Slot, plan_slots
from helpers.cli import LOSSBENCH, assert_one_line_error, lossbench
from helpers.training import read_rows

QUICK = ["dataset=digits", "trainer.epochs=2", "trainer.progress=false"]


# ---- the plan of slots -------------------------------------------------------

def test_every_gpu_gets_one_slot_before_any_gets_a_second():
    slots = plan_slots([0, 2, 3], jobs_per_gpu=2, cpu_jobs=2, cores=list(range(12)), present=["0", "1", "2", "3"])
    assert [s.gpu for s in slots] == ["0", "2", "3", "0", "2", "3"]
    assert [s.cpus for s in slots] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]


def test_all_takes_the_gpus_present_and_none_gives_cpu_slots_with_a_share_of_the_cores():
    assert [s.gpu for s in plan_slots("all", 1, 2, list(range(8)), ["0", "1"])] == ["0", "1"]
    cpu = plan_slots("all", 1, 2, list(range(8)), [])
    assert cpu == [Slot(0, None, (0, 1, 2, 3)), Slot(1, None, (4, 5, 6, 7))]
    assert [s.threads for s in cpu] == [4, 4]
    # more slots than cores: each slot one core, shared in turn
    assert [s.cpus for s in plan_slots([0, 1, 2, 3], 1, 2, [0, 1], [])] == [(0,), (1,), (0,), (1,)]


@pytest.mark.parametrize("gpus, jobs_per_gpu, cpu_jobs, fragment", [
    ([-1], 1, 2, "hydra.launcher.gpus=[-1] is invalid"),
    ("some", 1, 2, "use all, or a list of GPU ids"),
    ([0], 0, 2, "hydra.launcher.jobs_per_gpu=0 is invalid"),
    ([0], 1, 0, "hydra.launcher.cpu_jobs=0 is invalid"),
])
def test_bad_slot_settings_are_refused(gpus, jobs_per_gpu, cpu_jobs, fragment):
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        plan_slots(gpus, jobs_per_gpu, cpu_jobs, [0, 1], [])


def test_a_gpu_the_machine_lacks_is_refused():
    with pytest.raises(UserError, match=r"GPU 5 is not on this machine; its GPUs are 0, 1"):
        plan_slots([0, 5], 1, 2, [0, 1], ["0", "1"])


@pytest.mark.slow
@pytest.mark.parametrize("setting, fragment", [
    ("hydra.launcher.jobs_per_gpu=0", "hydra.launcher.jobs_per_gpu=0 is invalid"),
    ("hydra.launcher.gpu=[0]", "hydra.launcher.gpu is not a setting: the keys of hydra.launcher are"),
    ("trainer.device=cpu,cuda:2", "trainer.device=cuda:2: under hydra/launcher=local_gpus each job sees only"),
    ("+hydra.launcher.cpu_job=2", "hydra.launcher.cpu_job is not a setting of hydra/launcher=local_gpus: "
                                  "its settings are gpus, jobs_per_gpu, cpu_jobs"),
    ("hydra.launcher.gpus=[1,5]", "hydra.launcher.gpus=[1, 5]: GPU 5 is not on this machine; its GPUs are 0, 1"),
])
def test_bad_launcher_settings_are_refused_before_any_job(tmp_path, setting, fragment):
    # a machine that shows two GPUs
    result = lossbench("train", "-m", "hydra/launcher=local_gpus", setting, "seed=0,1", *QUICK, cwd=tmp_path,
                       env={"CUDA_VISIBLE_DEVICES": "0,1"})
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "results").exists()


def test_an_unknown_launcher_is_refused_with_the_valid_ones():
    from lossbench.training.overrides import check_command_line

    with pytest.raises(UserError, match="hydra/launcher=local_gpu is unknown: valid launchers are basic, local_gpus, "
                                        "joblib, submitit_slurm, submitit_local, slurm, slurm_local"):
        check_command_line(["-m", "hydra/launcher=local_gpu", "seed=0,1"])


@pytest.mark.slow
def test_the_launcher_config_is_shown_for_one_job_and_a_sweep_flag_with_it_refused(tmp_path):
    shown = lossbench("train", "hydra/launcher=slurm", "--cfg", "hydra", "--package", "hydra.launcher", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "max_requeues: 3" in shown.stdout and "signal_delay_s: 120" in shown.stdout
    refused = lossbench("train", "-m", "hydra/launcher=slurm", "--cfg", "hydra", cwd=tmp_path)
    assert_one_line_error(refused, "--cfg shows one job's config and runs nothing: drop -m")


@pytest.mark.slow
def test_the_slurm_launcher_without_slurm_is_refused_before_any_job(tmp_path):
    result = lossbench("train", "-m", "hydra/launcher=slurm", "seed=0,1", *QUICK, cwd=tmp_path,
                       env={"PATH": os.path.dirname(LOSSBENCH)})  # no sbatch on it
    assert_one_line_error(result, "hydra/launcher=slurm submits the jobs with SLURM's sbatch, which is not on",
                          "hydra/launcher=slurm_local")
    assert not (tmp_path / "results").exists()


# ---- slots on a real sweep ---------------------------------------------------

def _slot_records(sweep: Path) -> list[dict]:
    with open(sweep / SLOTS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        row["started"], row["ended"] = datetime.fromisoformat(row["started"]), datetime.fromisoformat(row["ended"])
    return rows


def _summary(job: Path) -> dict:
    return json.loads((job / "summary.json").read_text())


def _job_folders(sweep: Path) -> dict[str, Path]:
    return {p.name.split("_")[0]: p for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir()}


def _overlap(a: dict, b: dict) -> bool:
    return a["started"] < b["ended"] and b["started"] < a["ended"]


def _most_at_once(rows: list[dict]) -> int:
    return max(sum(1 for other in rows if other["started"] <= row["started"] < other["ended"]) for row in rows)


def _sweep(tmp_path, *args, env=None):
    result = lossbench("train", "-m", "hydra/launcher=local_gpus", "hydra.sweep.dir=sweep", *args, *QUICK,
                       cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "sweep"


@pytest.mark.slow
def test_six_jobs_on_four_gpus_use_every_slot_one_job_at_a_time_and_reuse_them(tmp_path):
    sweep = _sweep(tmp_path, "hydra.launcher.gpus=[0,1,2,3]", "seed=0,1,2,3,4,5")
    rows = _slot_records(sweep)
    jobs = _job_folders(sweep)
    assert sorted(int(r["job"]) for r in rows) == list(range(6)) and len(jobs) == 6
    for row in rows:
        summary = _summary(jobs[row["job"]])
        assert summary["status"] == "finished"
        # what the job itself saw, and that it is its slot's GPU
        assert summary["cuda_visible_devices"] == row["cuda_visible_devices"] == str(int(row["slot"]))
        assert summary["device"] == "cpu"  # no CUDA device here
        assert summary["threads"] == int(row["threads"]) == max(1, len(os.sched_getaffinity(0)) // 4)
        assert row["exit_code"] == "0"
    assert {r["slot"] for r in rows} == {"0", "1", "2", "3"}
    for a in rows:
        for b in rows:
            if a is not b and a["slot"] == b["slot"]:
                assert not _overlap(a, b), (a, b)
    reused = [r for r in rows if sum(o["slot"] == r["slot"] for o in rows) > 1]
    assert len(reused) == 4  # two slots ran two jobs each
    assert _most_at_once(rows) == 4
    first_four = sorted(rows, key=lambda r: r["started"])[:4]
    assert {r["job"] for r in first_four} == {"0", "1", "2", "3"}
    # the fifth job started only when one of the first four had ended, in the slot it left
    fifth = sorted(rows, key=lambda r: r["started"])[4]
    freed = [r for r in first_four if r["slot"] == fifth["slot"]]
    assert len(freed) == 1 and freed[0]["ended"] <= fifth["started"]


@pytest.mark.slow
def test_jobs_per_gpu_puts_that_many_jobs_on_one_gpu_at_once(tmp_path):
    sweep = _sweep(tmp_path, "hydra.launcher.gpus=[1]", "hydra.launcher.jobs_per_gpu=2", "seed=0,1")
    rows = _slot_records(sweep)
    jobs = _job_folders(sweep)
    for row in rows:
        assert row["cuda_visible_devices"] == _summary(jobs[row["job"]])["cuda_visible_devices"] == "1"
    assert sorted(r["slot"] for r in rows) == ["0", "1"] and _overlap(*rows)  # two slots shared GPU 1 at once


@pytest.mark.slow
def test_with_no_gpu_the_jobs_share_the_cores(tmp_path):
    # "all" GPUs of a machine that shows none: CPU slots
    sweep = _sweep(tmp_path, "seed=0,1", env={"CUDA_VISIBLE_DEVICES": ""})
    rows = _slot_records(sweep)
    jobs = _job_folders(sweep)
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    assert sorted(r["slot"] for r in rows) == ["0", "1"] and _overlap(*rows)
    for row in rows:
        summary = _summary(jobs[row["job"]])
        assert row["cuda_visible_devices"] == "" and summary["cuda_visible_devices"] == ""
        assert summary["device"] == "cpu" and summary["threads"] == int(row["threads"]) == share


@pytest.mark.slow
def test_sigterm_to_the_launching_command_stops_the_sweep_as_ctrl_c_does(tmp_path):
    command = [LOSSBENCH, "train", "-m", "hydra/launcher=local_gpus", "hydra.launcher.cpu_jobs=1",
               "hydra.sweep.dir=sweep", "dataset=digits", "trainer=quick", "trainer.epochs=12",
               "trainer.progress=false", "seed=0,1"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    first = tmp_path / "sweep" / "0_seed=0"
    deadline = time.time() + 180
    while not ((first / "metrics.csv").is_file() and read_rows(first)):
        assert time.time() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # a batch system's stop, or timeout(1)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "continue the sweep with: lossbench train -m hydra/launcher=local_gpus" in err
    summary = _summary(first)
    assert summary["status"] == "interrupted" and len(read_rows(first)) == summary["epochs_completed"] >= 1
    assert not (tmp_path / "sweep" / "1_seed=1").exists()
    (record,) = _slot_records(tmp_path / "sweep")
    assert record["job"] == "0" and record["exit_code"] == "130"


@pytest.mark.slow
def test_ctrl_c_stops_the_running_job_cleanly_and_the_sweep_continues_from_its_epoch(tmp_path):
    # one CPU slot: the second job waits for the first
    command = ["-m", "hydra/launcher=local_gpus", "hydra.launcher.cpu_jobs=1", "hydra.sweep.dir=sweep",
               "dataset=digits", "trainer=quick", "trainer.epochs=12", "trainer.progress=false", "seed=0,1"]
    process = subprocess.Popen([LOSSBENCH, "train", *command], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    first = tmp_path / "sweep" / "0_seed=0"
    deadline = time.time() + 180
    while not ((first / "metrics.csv").is_file() and read_rows(first)):
        assert time.time() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # as a terminal's Ctrl-C reaches the launching command
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "continue the sweep with: lossbench train -m hydra/launcher=local_gpus" in err
    stopped = _summary(first)
    assert stopped["status"] == "interrupted" and stopped["stopped_by"] == "SIGINT"
    assert len(read_rows(first)) == stopped["epochs_completed"] >= 1
    assert not (tmp_path / "sweep" / "1_seed=1").exists()  # no job started after the Ctrl-C
    result = lossbench("train", *command, cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    again = _summary(first)
    assert again["status"] == "finished" and again["resumed_from_epoch"] == stopped["epochs_completed"]
    assert [int(r["epoch"]) for r in read_rows(first)] == list(range(1, 13))
    assert _summary(tmp_path / "sweep" / "1_seed=1")["status"] == "finished"
