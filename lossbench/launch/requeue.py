"""Requeueing a sweep's job that a cluster stopped: ``hydra/launcher=slurm``.

SLURM signals a job before its time limit (SIGUSR2, ``signal_delay_s``
ahead) and when it preempts it (SIGTERM). Either ends the run cleanly after
the step in progress, as any stop does: its completed epochs are in last.pt.
Then, in a job of a launcher that requeues, the job asks the scheduler to run
it again (``scontrol requeue``, through submitit) and exits. Run again, the
job finds its folder interrupted and resumes from the last completed epoch,
so nothing is trained twice. ``summary.json`` counts the job's requeues;
past ``hydra.launcher.max_requeues`` the job stays interrupted and says how
to resume it.
"""

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lossbench.errors import UserError
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


def requeue_stopped_run(run_dir: Path, summary: dict, exit_code: int) -> str | None:
    """After ``summary``'s run stopped on a signal: what to say, having requeued
    its job where its launcher allows and its requeues are under the limit (the
    request ends this process). None where the launcher does not requeue."""
    if _active is None:
        return None
    done = int(summary.get("requeues") or 0)
    if done >= _active.limit:
        return f"not requeued: requeued {done} of hydra.launcher.max_requeues={_active.limit} times"
    summary["requeues"] = done + 1
    RunDir(run_dir).write_summary(summary)
    print(f"lossbench train: {run_dir.name} stopped by {summary.get('stopped_by', 'a signal')} after epoch "
          f"{summary.get('epochs_completed')}: requeued ({done + 1} of at most {_active.limit}); "
          f"it resumes from that epoch", file=sys.stderr, flush=True)
    _active.request(exit_code)
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
