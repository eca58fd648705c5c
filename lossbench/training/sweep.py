"""Sweeps (``lossbench train -m``) that a person can read and that never lose
finished work.

- Job folders are named by their number and the overrides that differ between
  jobs (``3_loss=focal,seed=0``), kept short and safe for file systems.
- Launching the same sweep command again continues the newest sweep of that
  command that has unfinished jobs: finished jobs (their summary.json says so)
  are skipped, interrupted ones continue from their last.pt, failed ones run
  again (their old files are kept under ``attempts/``). A job another launch
  is training (its folder is locked) is left to it.
- Launching it again once every job has finished starts nothing: it points
  to that sweep (``+rerun=true`` runs it again in a new folder).
- A failing job does not stop the others; the sweep ends with the list of the
  jobs that did not finish, and why.
"""

import hashlib
import json
import re
import shlex
import shutil
from datetime import datetime
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from lossbench.errors import UserError
from lossbench.training.folder_lock import claim, live_owner, new_folder
from lossbench.training.overrides import choices, hydra_value, parse, split_flags
from lossbench.training.run_dir import RunDir
from lossbench.training.run_files import write_json

MULTIRUN_FLAGS = ("-m", "--multirun")
MAX_NAME = 80
SWEEP_RECORD = ".lossbench_sweep.json"


INFO_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--shell-completion", "-sc")


def is_multirun(overrides: list[str]) -> bool:
    """A sweep that will run (Hydra's informational flags run nothing)."""
    if any(arg in INFO_FLAGS for arg in overrides):
        return False
    return any(arg in MULTIRUN_FLAGS for arg in overrides) or "hydra.mode=MULTIRUN" in overrides


RERUN = re.compile(r"^\+{0,2}rerun=(.*)$")


def take_rerun(args: list[str]) -> tuple[bool, list[str]]:
    """``+rerun=true``: run again a sweep of this command that has finished,
    in a new folder. A choice of the launch, not a setting of the runs: it is
    taken out of the command line before Hydra composes the config, so it
    changes neither the runs' config nor which sweep the command is."""
    given = [RERUN.match(arg) for arg in args if RERUN.match(arg)]
    if not given:
        return False, args
    value = given[-1].group(1).strip().lower()
    if value not in ("true", "false"):
        raise UserError(f"rerun={given[-1].group(1)} is invalid: use +rerun=true to run a finished sweep again "
                        f"in a new folder")
    if not any(arg in MULTIRUN_FLAGS for arg in args) and "hydra.mode=MULTIRUN" not in args:
        raise UserError("+rerun=true applies to a sweep (-m), which it runs again in a new folder once it has "
                        "finished; a single run always starts a new run")
    return value == "true", [arg for arg in args if not RERUN.match(arg)]


def task_overrides(args: list[str]) -> list[str]:
    """The overrides that make the jobs (Hydra's own settings left out), as typed."""
    return [o.input_line for o in parse(args).values() if not o.is_hydra_override()]


def job_dir_name(number, overrides_dirname: str) -> str:
    """``<number>_<differing overrides>``: only letters, digits and ``._,=+-``; long names shortened with a hash."""
    safe = re.sub(r"[^A-Za-z0-9._,=+-]", "_", str(overrides_dirname))
    if len(safe) > MAX_NAME:
        safe = safe[: MAX_NAME - 9] + "~" + hashlib.sha1(safe.encode()).hexdigest()[:8]
    return f"{number}_{safe}" if safe else str(number)


OmegaConf.register_new_resolver("lossbench_job_dir", job_dir_name, replace=True)


def expected_jobs(args: list[str]) -> int:
    """How many jobs the sweep has: the product of the swept overrides' lengths."""
    count = 1
    for override in parse(task_overrides(args)).values():
        if override.is_sweep_override():
            count *= len(choices(override) or [None])
    return count


def _record(sweep: Path) -> dict:
    """What lossbench wrote when it chose the sweep's folder; {} for a sweep made without it."""
    try:
        record = json.loads((sweep / SWEEP_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _recorded_task(sweep: Path) -> list[str] | None:
    """The overrides of the command that made ``sweep``: written by lossbench when
    it chose the folder, or else Hydra's multirun.yaml (written when jobs start)."""
    if isinstance(_record(sweep).get("task"), list):
        return list(_record(sweep)["task"])
    try:
        recorded = yaml.safe_load((sweep / "multirun.yaml").read_text())
        return list(recorded["hydra"]["overrides"]["task"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def continue_command(sweep: Path) -> str:
    """The command, for a shell, that continues ``sweep``: its own command line
    with its folder named, so that no other sweep of the same command is taken
    for it. Finished jobs are skipped, interrupted ones resume, failed ones run again."""
    command = _record(sweep).get("command")
    if not isinstance(command, list):
        command = ["-m", *(_recorded_task(sweep) or [])]
    return shlex.join(["lossbench", "train", *command, f"hydra.sweep.dir={hydra_value(sweep)}"])


class SweepFinished(Exception):
    """The sweep a command would run has already run, and every job of it finished."""

    def __init__(self, sweep: Path):
        super().__init__(str(sweep))
        self.sweep = sweep


def latest_sweep(output_dir: Path, overrides: list[str]) -> tuple[Path | None, bool]:
    """The newest sweep of the same command, if any, and whether every job of it finished."""
    wanted = sorted(task_overrides(overrides))
    expected = expected_jobs(overrides)
    for sweep in sorted(output_dir.glob("multirun/*/*"), reverse=True):
        if _recorded_task(sweep) is None or sorted(_recorded_task(sweep)) != wanted:
            continue
        jobs = [p for p in sweep.iterdir() if p.is_dir()]
        return sweep, sum(RunDir(j).finished() for j in jobs) >= expected
    return None, False


def plan_sweep(overrides: list[str], output_dir: str, rerun: bool = False) -> tuple[list[str], Path | None]:
    """The command line with the sweep's folder and job naming pinned, and that folder.

    The folder is the one given (``hydra.sweep.dir``), the unfinished sweep of the
    same command (launches running at once split its jobs: each job folder has
    one writer), or a new one under ``<output_dir>/multirun/<date>/<time>``,
    numbered (``_1``) when that name is taken. Raises SweepFinished where the
    newest sweep of the same command has finished, unless ``rerun``.
    """
    plan = list(overrides)
    task = task_overrides(overrides)
    parsed = parse(overrides)
    given = [str(parsed["hydra.sweep.dir"].value())] if "hydra.sweep.dir" in parsed else []
    # one launch at a time chooses (and records) its folder, so that the same
    # command started twice at once finds the first one's sweep and joins it
    with claim(Path(given[0]) if given else Path(output_dir) / "multirun", wait_s=60):
        if given:
            sweep_dir = Path(given[0])
            recorded = _recorded_task(sweep_dir)
            if recorded is not None and sorted(recorded) != sorted(task):
                raise UserError(f"hydra.sweep.dir={sweep_dir} holds another sweep ({' '.join(recorded)}): its jobs "
                                f"would be taken for this one's; choose another folder")
        else:
            sweep_dir, finished = latest_sweep(Path(output_dir), overrides)
            if sweep_dir is not None and finished and not rerun:
                raise SweepFinished(sweep_dir)
            if sweep_dir is not None and not finished:
                print(f"lossbench train: continuing the unfinished sweep {sweep_dir}: finished jobs are skipped, "
                      f"jobs another launch is training are left to it")
            else:
                # created here, so that two launches in the same second never share it
                sweep_dir = new_folder(Path(output_dir) / "multirun" / datetime.now().strftime("%Y-%m-%d/%H-%M-%S"))
            plan.append(f"hydra.sweep.dir={sweep_dir}")
        if _recorded_task(sweep_dir) is None:
            sweep_dir.mkdir(parents=True, exist_ok=True)
            command = [o for o in overrides if o.split("=", 1)[0] != "hydra.sweep.dir"]
            write_json(sweep_dir / SWEEP_RECORD, {"task": task, "command": command})
    constant = sorted(key for key, o in parsed.items() if not o.is_hydra_override() and not o.is_sweep_override())
    plan.append(f"hydra.job.config.override_dirname.exclude_keys=[{','.join(constant)}]")
    flags, plan = split_flags(plan)
    return flags + plan, sweep_dir


def prepare_job(path: Path) -> str:
    """What to do with a job folder: ``skip`` (finished), ``resume`` (interrupted
    with a checkpoint), or ``fresh`` (an earlier failed attempt's files move to attempts/N/)."""
    run_dir = RunDir(path)
    status = run_dir.status()
    if status == "finished":
        return "skip"
    if status in ("interrupted", "running") and run_dir.has_checkpoint():
        return "resume"
    previous = run_dir.previous_files()
    if previous:
        attempt = 1
        while (path / "attempts" / str(attempt)).exists():
            attempt += 1
        target = path / "attempts" / str(attempt)
        target.mkdir(parents=True)
        for path in previous:
            shutil.move(str(path), target / path.name)
    return "fresh"


def job_order(part: str):
    """Job folders in number order: 2_loss=ce before 10_loss=ce."""
    number = re.match(r"\d+", part)
    return (0, int(number.group()), part) if number else (1, 0, part)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders, in job order."""
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
                  key=lambda p: job_order(p.name))


def unfinished_jobs(sweep_dir: Path) -> list[tuple[str, str]]:
    """(job folder, why) for every job of the sweep that did not finish."""
    problems = []
    for job in job_dirs(sweep_dir):
        summary = RunDir(job).summary()
        if summary is None:
            problems.append((job.name, f"no {RunDir.SUMMARY}: the job died before it started training"))
            continue
        status = summary.get("status")
        if status != "finished":
            writer = live_owner(job)
            why = summary.get("error") or {
                "diverged": "the loss became non-finite",
                "interrupted": f"interrupted after epoch {summary.get('epochs_completed')}"
                               + (f"; {summary['not_requeued']}" if summary.get("not_requeued") else ""),
                "running": f"being trained by {writer.describe()}" if writer else
                           "killed without a chance to say so (kill -9, a crash, a lost node)",
            }.get(status, status)
            problems.append((job.name, f"{status}: {why}"))
    return problems
