"""What a sweep says when it ends: which jobs finished, which did not and why
(with their folders), its answer in one sentence where it has one, and the
commands that report it and continue it."""

import shlex
from pathlib import Path

from lossbench.training.run_dir import RunDir
from lossbench.training.sweep import continue_command, job_dirs, unfinished_jobs


def finished_jobs(sweep_dir: Path) -> list[str]:
    return [job.name for job in job_dirs(sweep_dir) if RunDir(job).finished()]


def sweep_results(sweep_dir: Path, finished: list[str], unfinished: int, headline: str | None) -> str:
    """For stdout: the finished jobs, the headline and the report's command."""
    total = len(finished) + unfinished
    lines = [f"sweep {sweep_dir}: {len(finished)} of {total} job(s) finished"
             + (f": {', '.join(finished)}" if finished else "")]
    if headline:
        lines.append(headline)
    lines.append(f"report: lossbench report {shlex.quote(str(sweep_dir))}")
    return "\n".join(lines)


def sweep_problems(sweep_dir: Path, problems: list[tuple[str, str]]) -> str:
    """For stderr: the jobs that did not finish, why, and how to continue the sweep."""
    lines = [f"lossbench train: {len(problems)} job(s) of {sweep_dir} did not finish "
             f"(continuing the sweep runs them, and skips the finished ones):"]
    lines += [f"  {sweep_dir / job}: {why}" for job, why in problems]
    lines.append(f"continue the sweep with: {continue_command(sweep_dir)}")
    return "\n".join(lines)


def sweep_end(sweep_dir: Path, headline: str | None) -> tuple[str, str | None]:
    """(what goes to stdout, what goes to stderr or None when every job finished)."""
    problems = unfinished_jobs(sweep_dir)
    results = sweep_results(sweep_dir, finished_jobs(sweep_dir), len(problems), headline)
    return results, sweep_problems(sweep_dir, problems) if problems else None
