"""``hydra/launcher=local_gpus``: a sweep's jobs spread over one machine's GPUs.

A slot is one GPU (``jobs_per_gpu`` slots per GPU for small networks that
leave a GPU idle) or, on a machine with no GPU, a share of the cores. Each
job runs in a process of its own that sees only its slot's device
(``CUDA_VISIBLE_DEVICES``) and its share of the cores (``OMP_NUM_THREADS``
and a CPU affinity of its own); a job that ends frees its slot for the next.
The sweep folder's ``slots.csv`` says which job ran where and when.
"""

import csv
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lossbench.errors import UserError

SLOTS_FILE = "slots.csv"
SLOTS_COLUMNS = ("job", "slot", "cuda_visible_devices", "threads", "cpus", "started", "ended", "exit_code")
JOB_FILES = ".slots"  # the jobs' pickled configs and their output logs


@dataclass(frozen=True)
class Slot:
    number: int
    gpu: str | None  # the id CUDA_VISIBLE_DEVICES takes; None: a CPU slot, which sees no GPU
    cpus: tuple[int, ...]  # the cores its job may run on

    @property
    def threads(self) -> int:
        return len(self.cpus)

    def describe(self) -> str:
        return f"GPU {self.gpu}" if self.gpu is not None else f"CPU ({self.threads} thread(s))"


def _check_slot_settings(gpus, jobs_per_gpu, cpu_jobs) -> None:
    """The launcher's settings, refused in one line naming the bad value."""
    if not (gpus == "all" or (isinstance(gpus, (list, tuple)) and all(_gpu_id(g) is not None for g in gpus))):
        raise UserError(f"hydra.launcher.gpus={gpus!r} is invalid: use all, or a list of GPU ids "
                        f"as CUDA_VISIBLE_DEVICES takes them, e.g. hydra.launcher.gpus=[0,2,3]; [] runs on the CPU")
    for key, value in (("jobs_per_gpu", jobs_per_gpu), ("cpu_jobs", cpu_jobs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"hydra.launcher.{key}={value!r} is invalid: use a whole number of at least 1")


def _gpu_id(value) -> str | None:
    """A GPU index (0, 1, ...) or UUID (GPU-...) as text; None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    text = str(value).strip()
    return text if text.isdigit() or text.startswith(("GPU-", "MIG-")) else None


def cores_of_this_process() -> list[int]:
    """The cores this process may run on, which a container or taskset can limit."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g.strip() for g in given.split(",") if g.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def plan_slots(gpus, jobs_per_gpu: int, cpu_jobs: int, cores: list[int], present: list[str]) -> list[Slot]:
    """The slots for ``gpus`` (``all``: those ``present``) or, with none, ``cpu_jobs``
    CPU slots. Jobs fill one slot of every GPU before a second slot of any, and
    the ``cores`` are split evenly between the slots (shared where there are
    more slots than cores)."""
    _check_slot_settings(gpus, jobs_per_gpu, cpu_jobs)
    chosen = list(present) if gpus == "all" else [_gpu_id(g) for g in gpus]
    if present and gpus != "all":
        missing = [g for g in chosen if g not in present]
        if missing:
            raise UserError(f"hydra.launcher.gpus={list(gpus)}: GPU {', '.join(missing)} is not on this machine; "
                            f"its GPUs are {', '.join(present)}")
    devices = [g for _ in range(jobs_per_gpu) for g in chosen] if chosen else [None] * cpu_jobs
    share = max(1, len(cores) // len(devices))
    return [Slot(k, gpu, tuple(cores[(k * share) % len(cores):][:share])) for k, gpu in enumerate(devices)]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def slot_environment(slot: Slot) -> dict:
    """What a job's process is started with: its device and its share of the cores."""
    threads = str(slot.threads)
    return {**os.environ, "CUDA_VISIBLE_DEVICES": slot.gpu or "", "OMP_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads, "LOSSBENCH_SLOT_CPUS": ",".join(map(str, slot.cpus))}


class SlotScheduler:
    """Runs pickled jobs, each in its own process, at most one per free slot."""

    def __init__(self, slots: list[Slot], sweep_dir: Path, progress: bool = True):
        self.slots, self.sweep_dir, self.progress = slots, sweep_dir, progress
        self.record = sweep_dir / SLOTS_FILE
        self._lock = threading.Lock()
        self._running: dict[int, subprocess.Popen] = {}
        self._stopping = threading.Event()

    def run(self, jobs: list[tuple[int, Path, str]]) -> None:
        """``jobs``: (number, pickled job, what it overrides); each job's exit code goes to slots.csv."""
        from tqdm.auto import tqdm

        waiting = queue.Queue()
        for job in jobs:
            waiting.put(job)
        if not self.record.exists():
            self.record.write_text(",".join(SLOTS_COLUMNS) + "\n")
        bar = tqdm(total=len(jobs), desc=f"jobs on {len(self.slots)} slot(s)", unit="job", disable=not self.progress)

        def work(slot: Slot):
            while not self._stopping.is_set():
                try:
                    number, payload, overrides = waiting.get_nowait()
                except queue.Empty:
                    return
                self._run_one(slot, number, payload, overrides, bar)

        threads = [threading.Thread(target=work, args=(slot,), daemon=True) for slot in self.slots[: len(jobs)]]
        # SIGTERM (a batch system's or timeout's stop) ends the sweep as Ctrl-C does
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(timeout=0.2)
        except KeyboardInterrupt:
            self._stop_running()
            for thread in threads:  # their jobs have ended: let them write slots.csv's rows
                thread.join(timeout=10)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            bar.close()

    def _run_one(self, slot: Slot, number: int, payload: Path, overrides: str, bar) -> None:
        log_path = payload.with_suffix(".log")
        started = _now()
        with open(log_path, "ab") as log:
            with self._lock:
                if self._stopping.is_set():  # stopped while this job was being taken
                    return
                bar.write(f"job {number} ({overrides}) starts on slot {slot.number}: {slot.describe()}")
                process = subprocess.Popen([sys.executable, "-m", "lossbench.launch.slot_job", str(payload)],
                                           env=slot_environment(slot), stdout=log, stderr=subprocess.STDOUT,
                                           # a terminal's Ctrl-C reaches this process, which passes on one
                                           # SIGINT: a second would stop the job mid-epoch
                                           start_new_session=True)
                self._running[number] = process
            code = process.wait()
        with self._lock:
            del self._running[number]
            with open(self.record, "a", newline="") as f:
                csv.writer(f).writerow([number, slot.number, slot.gpu or "", slot.threads,
                                        " ".join(map(str, slot.cpus)), started, _now(), code])
            if code != 0:
                bar.write(f"job {number} ({overrides}) ended with exit code {code}: see {log_path}")
            bar.update(1)

    def _stop_running(self) -> None:
        """Ctrl-C: no job starts any more, and the running ones stop cleanly
        after their step in progress, keeping their completed epochs."""
        with self._lock:
            self._stopping.set()
            running = list(self._running.values())
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def write_job(path: Path, job: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(job, f)
    return path
