"""Requeueing a sweep's job that a cluster stopped: ``hydra/launcher=slurm``.

The launcher has SLURM send SIGUSR2 ``signal_delay_s`` before a job's time
limit, the signal submitit also takes for preemption. It ends the run
cleanly after the step in progress, as any stop does: the completed epochs
are in last.pt. Then the job asks the scheduler to run it again (``scontrol
requeue``, through submitit) and exits. Run again, the job finds its folder
interrupted and resumes from the last completed epoch, so nothing is trained
twice. ``summary.json`` counts these requeues; past
``hydra.launcher.max_requeues`` the job stays interrupted and says how to
resume it.

SIGTERM alone (``scancel``, or a cluster's preemption) and Ctrl-C stop the run
the same way but do not requeue it: a cancelled job must stay cancelled. A
cluster that requeues preempted jobs itself (the jobs are submitted with
``--requeue``) starts the job again, and it resumes all the same.
"""

import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lossbench.errors import UserError, one_line
from lossbench.training.run_dir import RunDir


@dataclass(frozen=True)
class Requeue:
    limit: int
    request: Callable[[int], None]  # asks the scheduler to run this job again (given the exit code), and exits


_active: Requeue | None = None  # set, in a job's process, by a launcher that requeues


def check_max_requeues(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UserError(f"hydra.launcher.max_requeues={value!r} is invalid: use a whole number of at least 0 "
                        f"(0: a stopped job is not requeued)")
    return value


@contextmanager
def requeue_on_stop(limit: int, request: Callable[[int], None]):
    global _active
    previous, _active = _active, Requeue(check_max_requeues(limit), request)
    try:
        yield
    finally:
        _active = previous


REQUEUE_SIGNAL = signal.SIGUSR2


def requeue_stopped_run(run_dir: Path, summary: dict, stop) -> str | None:
    """After ``summary``'s run stopped on ``stop`` (a StopRequest): what to say,
    having requeued its job where the signals and its launcher call for it and
    its requeues are under the limit (the request ends this process). None
    where the job is not one to requeue."""
    if _active is None or REQUEUE_SIGNAL not in stop.received:
        return None
    done = int(summary.get("requeues") or 0)
    if done >= _active.limit:
        summary["not_requeued"] = f"not requeued: requeued {done} of hydra.launcher.max_requeues={_active.limit} times"
        RunDir(run_dir).write_summary(summary)  # the sweep's end says why the job stays interrupted
        return summary["not_requeued"]
    summary["requeues"] = done + 1
    RunDir(run_dir).write_summary(summary)
    print(f"lossbench train: {run_dir.name} stopped by {REQUEUE_SIGNAL.name} after epoch "
          f"{summary.get('epochs_completed')}: requeueing it ({done + 1} of at most {_active.limit}); "
          f"it resumes from that epoch", file=sys.stderr, flush=True)
    try:
        _active.request(stop.exit_code)  # ends this process once the job is requeued
    except (OSError, subprocess.SubprocessError) as e:  # the scheduler refused (scontrol's error)
        summary["requeues"] = done
        summary["not_requeued"] = f"not requeued: {one_line(e)}"
        RunDir(run_dir).write_summary(summary)
        return summary["not_requeued"]
    return None


class Requeued(SystemExit):
    """This process ends so that its requeued job can start again."""


def submitit_requeue(exit_code: int) -> None:
    """Requeue the submitit job this process runs: ``scontrol requeue`` on SLURM;
    under submitit's local executor, the exit code that has it start the job again."""
    import submitit

    try:
        submitit.JobEnvironment()._requeue(0)  # submitit's own requeue (its countdown is only logged)
    except SystemExit as local:  # the local executor's requeue is an exit code
        raise Requeued(local.code) from None
    raise Requeued(exit_code)


class RequeueOnStop:
    """Mixed into a submitit launcher: its jobs are requeued when a signal stops
    them, at most ``max_requeues`` times each."""

    def __init__(self, max_requeues: int = 3, **params) -> None:
        self.max_requeues = check_max_requeues(max_requeues)
        super().__init__(**params)

    def __call__(self, *args, **kwargs):
        with requeue_on_stop(self.max_requeues, submitit_requeue):
            try:
                return super().__call__(*args, **kwargs)
            except Requeued:
                raise
            except SystemExit:
                # a run that stopped and is not requeued: its folder says so, and
                # submitit records the job as ended instead of as lost
                from hydra.core.utils import JobReturn, JobStatus

                return JobReturn(overrides=list(args[0]), status=JobStatus.COMPLETED)
