"""Several lossbench processes on the same results folder at once, started for
real by the tests: no run is lost, overwritten or trained twice at once."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from lossbench.cli import main as lossbench_main
from lossbench.training.folder_lock import LOCK_NAME, read_owner
from helpers.cli import LOSSBENCH, assert_one_line_error, lossbench

pytestmark = pytest.mark.slow  # processes or training: left out by pytest -m "not slow"

QUICK = ["trainer.epochs=2", "trainer.progress=false"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _launch(cwd, *args):
    return subprocess.Popen([LOSSBENCH, "train", *args], cwd=cwd, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _finish(processes, timeout=300):
    results = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        results.append((process.returncode, out, err))
    return results


def _summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))]


def _data_lines(job: Path) -> list[str]:
    """The line each training start logs: one per time the job was trained."""
    return [line for line in (job / "train.log").read_text().splitlines() if " train / " in line]


def _rows(run: Path) -> int:
    return len((run / "metrics.csv").read_text().splitlines()) - 1


def _wait_for_rows(run: Path, n: int, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run / "metrics.csv").exists() and _rows(run) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"{run} never reached {n} rows")


def _hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_sweeps_started_together_keep_all_their_runs(tmp_path):
    # Every folder name of the next minute is taken, so both launches must
    # number theirs (_1, _2) and race for the same numbered names.
    day = tmp_path / "results" / "multirun" / datetime.now().strftime("%Y-%m-%d")
    now = datetime.now()
    for s in range(90):
        (day / (now + timedelta(seconds=s)).strftime("%H-%M-%S")).mkdir(parents=True)
    processes = [_launch(tmp_path, "-m", f"dataset={ds}", "loss=ce,focal", "seed=0", *QUICK)
                 for ds in ("digits", "digits_lt")]
    for code, out, err in _finish(processes):
        assert code == 0, err[-3000:]
    sweeps = [s for s in sorted(day.iterdir()) if any(s.iterdir())]
    assert len(sweeps) == 2 and all(s.name[-2:] in ("_1", "_2") for s in sweeps)
    found = []
    for sweep in sweeps:
        dataset = yaml.safe_load((sweep / "multirun.yaml").read_text())["dataset"]["name"]
        for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
            summary = json.loads((job / "summary.json").read_text())
            assert summary["dataset"] == dataset and summary["status"] == "finished"
            assert [line.split("] - ")[1].split(":")[0] for line in _data_lines(job)] == [dataset]
            assert not (job / "attempts").exists()
            found.append((dataset, summary["loss"]))
    assert sorted(found) == [("digits", "ce"), ("digits", "focal"), ("digits_lt", "ce"), ("digits_lt", "focal")]


def test_the_same_sweep_started_twice_splits_its_jobs(tmp_path):
    args = ["-m", "dataset=digits", "loss=ce,focal,label_smoothing", "trainer.epochs=3", "trainer.progress=false"]
    results = _finish([_launch(tmp_path, *args), _launch(tmp_path, *args)])
    for code, out, err in results:
        assert code == 0, err[-3000:]
    (sweep,) = (tmp_path / "results" / "multirun").glob("*/*")
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0_loss=ce", "1_loss=focal", "2_loss=label_smoothing"]
    for job in jobs:
        assert len(_data_lines(job)) == 1 and _rows(job) == 3 and not (job / "attempts").exists()
        assert json.loads((job / "summary.json").read_text())["status"] == "finished"
    printed = results[0][1] + results[1][1]
    assert "continuing the unfinished sweep" in printed
    assert "left to it" in printed or "has finished (in an earlier or a concurrent launch)" in printed
    assert not list(tmp_path.rglob(LOCK_NAME))


def test_a_second_writer_is_refused_and_changes_nothing(tmp_path, capsys):
    owner = _launch(tmp_path, "dataset=digits", "trainer.epochs=60", "trainer.progress=false", "hydra.run.dir=run")
    run = tmp_path / "run"
    _wait_for_rows(run, 2)  # epoch 1's checkpoint is on disk
    os.killpg(owner.pid, signal.SIGSTOP)  # frozen, so that its files hold still while compared
    try:
        before = _hashes(run)
        assert read_owner(run).pid == owner.pid
        for args in (["hydra.run.dir=run"], [f"trainer.resume={run}"]):
            result = lossbench("train", "dataset=digits", "trainer.epochs=60", *args, cwd=tmp_path)
            assert_one_line_error(result, f"{run} is being written by pid {owner.pid} on {socket.gethostname()}")
        assert _hashes(run) == before

        # the report (in this process: what matters is what it reads from the lock) shows
        # the run as running and says who writes it
        assert lossbench_main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
        report = capsys.readouterr().out
        assert "1 running" in report and "Still being written" in report
        assert f"pid {owner.pid}" in report
        assert _hashes(run) == before
    finally:
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait()
    # killed without a word: its summary still says running, and nobody holds it
    assert json.loads((run / "summary.json").read_text())["status"] == "running"
    assert lossbench_main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    report = capsys.readouterr().out
    assert "1 killed" in report and "Still being written" not in report


def _foreign_lock(folder: Path, age_s: float) -> Path:
    folder.mkdir()
    lock = folder / LOCK_NAME
    lock.write_text(json.dumps({"pid": 4242, "host": "node-17", "pid_namespace": 1, "since": "2026-01-01T00:00:00+00:00",
                                "token": "abc"}))
    os.utime(lock, (time.time() - age_s, time.time() - age_s))
    return lock


def test_a_lock_of_another_host_counts_until_its_heartbeat_stops(tmp_path):
    """On a shared file system another host's PIDs cannot be checked: only the heartbeat tells."""
    _foreign_lock(tmp_path / "live", age_s=20)
    before = _hashes(tmp_path / "live")
    result = lossbench("train", "dataset=digits", *QUICK, "hydra.run.dir=live", cwd=tmp_path)
    assert_one_line_error(result, "is being written by pid 4242 on node-17", "after 300 s without a heartbeat")
    age = int(re.search(r"heartbeat (\d+) s ago", result.stderr).group(1))
    assert 20 <= age < 120
    assert _hashes(tmp_path / "live") == before

    _foreign_lock(tmp_path / "dead", age_s=400)
    result = lossbench("train", "dataset=digits", "trainer.epochs=1", "trainer.progress=false", "hydra.run.dir=dead",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "took over" in result.stderr and "from pid 4242 on node-17" in result.stderr
    assert int(re.search(r"no heartbeat for (\d+) s", result.stderr).group(1)) >= 400
    assert _rows(tmp_path / "dead") == 1 and read_owner(tmp_path / "dead") is None


def test_resume_auto_started_twice_resumes_two_different_runs(tmp_path):
    args = ["dataset=digits", "trainer.epochs=5", "trainer.progress=false"]
    for _ in range(2):
        process = _launch(tmp_path, *args)
        run = None
        deadline = time.time() + 120
        while run is None and time.time() < deadline:
            runs = [r for r in (tmp_path / "results" / "runs").glob("*/*") if (r / "metrics.csv").exists()
                    and read_owner(r) is not None and read_owner(r).pid == process.pid]
            run = runs[0] if runs else None
            time.sleep(0.1)
        _wait_for_rows(run, 2)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    runs = sorted((tmp_path / "results" / "runs").glob("*/*"))
    assert len(runs) == 2
    for code, out, err in _finish([_launch(tmp_path, *args, "trainer.resume=auto") for _ in range(2)]):
        assert code == 0, err[-3000:]
    for run in runs:
        assert json.loads((run / "summary.json").read_text())["status"] == "finished" and _rows(run) == 5
    assert len(list((tmp_path / "results" / "runs").glob("*/*"))) == 2


CLAIMER = """
import sys, time
from pathlib import Path
from lossbench.training.folder_lock import FolderBusy, claim, new_folder
print("ready", flush=True)
start = float(sys.stdin.readline())
while time.time() < start:
    pass
if sys.argv[1] == "new":
    print(new_folder(Path(sys.argv[2])).name)
else:
    try:
        with claim(Path(sys.argv[2])):
            print("won", flush=True)
            time.sleep(2)
    except FolderBusy as e:
        print("busy", e.owner.pid)
"""


def _race(kind: str, target: Path, n: int = 6) -> list[str]:
    processes = [subprocess.Popen([sys.executable, "-c", CLAIMER, kind, str(target)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    # the start is set once every process has started and imported what it needs
    for process in processes:
        assert process.stdout.readline().strip() == "ready"
    start = time.time() + 0.5
    for process in processes:
        process.stdin.write(f"{start}\n")
        process.stdin.flush()
    return [p.communicate(timeout=60)[0].strip() for p in processes]


def test_new_folders_made_at_the_same_instant_are_all_distinct(tmp_path):
    (tmp_path / "sweep").mkdir()
    names = _race("new", tmp_path / "sweep")
    assert sorted(names) == ["sweep_1", "sweep_2", "sweep_3", "sweep_4", "sweep_5", "sweep_6"]


def test_a_stale_lock_taken_over_at_the_same_instant_has_one_new_owner(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                "pid_namespace": os.stat("/proc/self/ns/pid").st_ino,
                                                "since": "2026-01-01T00:00:00+00:00", "token": "old"}))
    outcomes = _race("claim", folder)
    assert outcomes.count("won") == 1, outcomes
    assert all(o.startswith("busy") for o in outcomes if o != "won")
    assert not (folder / LOCK_NAME).exists()


HOLDER = """
import sys, time
from pathlib import Path
from lossbench.training import folder_lock

folder_lock.HEARTBEAT_S = 0.2
lock = folder_lock.claim(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


def test_the_owner_refreshes_its_heartbeat_and_releases_on_sigterm(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    lock = tmp_path / "run" / LOCK_NAME
    os.utime(lock, (time.time() - 1000, time.time() - 1000))
    assert read_owner(tmp_path / "run").is_stale()
    time.sleep(1.0)
    owner = read_owner(tmp_path / "run")
    assert owner.pid == holder.pid and owner.heartbeat_age_s < 1.0 and not owner.is_stale()
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(timeout=30) == 143
    assert not lock.exists() and (tmp_path / "run").is_dir()
