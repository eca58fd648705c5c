"""The Hydra application behind ``lossbench train``.

A command line is checked, job by job for a sweep, before torch is imported
and before any data is read: a mistake costs what Hydra needs to compose the
config. Training's modules are imported by the job that trains."""

import re
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from lossbench.errors import UserError
from lossbench.config_dir import config_dir
from lossbench.training.compose import compose_train, resolved
from lossbench.training.overrides import (
    check_command_line,
    choices,
    hydra_value,
    not_a_setting,
    output_dir_of,
    parse,
    split_flags,
)
from lossbench.training.sweep import (
    SweepFinished,
    continue_command,
    is_multirun,
    job_dirs,
    plan_sweep,
    prepare_job,
    take_rerun,
)
from lossbench.training.sweep_summary import sweep_end
from lossbench.training.folder_lock import LOCK_NAME, FolderBusy, FolderLock, claim, live_owner, new_folder
from lossbench.training.run_dir import RunDir
from lossbench.training.run_files import write_config_record
from lossbench.training.stop_signals import stop_on_signals
from lossbench.training.validate import validate_config

# Exit codes: 2 for the user's mistakes, 1 for a run that diverged or failed,
# 130 for an interruption (as a shell reports Ctrl-C).
EXIT_FAILED, EXIT_INTERRUPTED = 1, 130
HYDRA_FILES = {".hydra", "train.log", LOCK_NAME}


def _error(message: str) -> None:
    print(f"lossbench train: error: {message}", file=sys.stderr)


def _resume_command(run_dir: Path) -> str:
    """The command that continues ``run_dir``, for a shell; None before its first epoch ends."""
    if not RunDir(run_dir).has_checkpoint():
        return None
    kept = [o for o in HydraConfig.get().overrides.task if not o.startswith(("trainer.resume=", "hydra."))]
    return shlex.join(["lossbench", "train", *kept, f"trainer.resume={hydra_value(run_dir)}"])


def _how_to_continue(run_dir: Path) -> str:
    command = _resume_command(run_dir)
    return f"resume with: {command}" if command else "no epoch was completed: start it again"


def _how_to_continue_the_sweep() -> str:
    return f"continue the sweep with: {continue_command(Path(HydraConfig.get().sweep.dir))}"


def _train_job(cfg: DictConfig):
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        lock = claim(run_dir)
    except FolderBusy as e:
        if not sweeping:
            _error(str(e))
            raise SystemExit(UserError.exit_code) from None
        # another launch of this sweep trains it: the jobs split between the launches
        print(f"lossbench train: {run_dir.name} is being trained by {e.owner.describe()}: left to it")
        return None
    with lock:
        return _train_held_job(cfg, run_dir, sweeping)


def _train_held_job(cfg: DictConfig, run_dir: Path, sweeping: bool):
    from lossbench.diagnosis import Diagnosis
    from lossbench.formatting import format_summary_table
    from lossbench.training.run import run_training

    resume = cfg.trainer.resume is not None
    overrides = list(HydraConfig.get().overrides.task)
    if sweeping:
        made_by = RunDir(run_dir).overrides()
        if made_by is not None and sorted(made_by) != sorted(overrides):
            _error(f"{run_dir} holds a job of another sweep ({' '.join(made_by)}): left as it is; "
                   f"give this sweep its own hydra.sweep.dir")
            return None
        action = prepare_job(run_dir)
        if action == "skip":
            print(f"lossbench train: {run_dir.name} has finished (in an earlier or a concurrent launch): skipped")
            return RunDir(run_dir).summary()["selected"].get("test_acc")
        resume = action == "resume"
    try:
        if not resume:
            RunDir(run_dir).refuse_existing_run()  # before .hydra/ is written: a refused run changes nothing
        write_config_record(run_dir, cfg, overrides, HydraConfig.instance().cfg)
        with stop_on_signals() as stop:
            summary = run_training(cfg, run_dir, resume=resume, stop=stop)
    except UserError as e:
        _error(str(e))
        if sweeping:
            RunDir(run_dir).record_failure(str(e))
            return None
        if {p.name for p in run_dir.iterdir()} <= HYDRA_FILES:
            # nothing of ours was written: leave no empty run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise SystemExit(UserError.exit_code) from None
    except KeyboardInterrupt:
        _error(f"interrupted mid-epoch; completed epochs are in {run_dir}; {_how_to_continue(run_dir)}")
        if sweeping:
            print(_how_to_continue_the_sweep(), file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Exception as e:  # a bug or an environment failure: in a sweep, the other jobs go on
        if not sweeping:
            raise
        _error(f"{run_dir}: {type(e).__name__}: {e}")
        traceback.print_exc()
        RunDir(run_dir).record_failure(f"{type(e).__name__}: {e}")
        return None
    if summary["status"] == "interrupted":
        from lossbench.launch.requeue import requeue_stopped_run

        not_requeued = requeue_stopped_run(run_dir, summary, stop)
        _error(f"stopped by {summary.get('stopped_by', 'a signal')} after epoch {summary['epochs_completed']}; "
               + (f"{not_requeued}; " if not_requeued else "") + _how_to_continue(run_dir))
        if sweeping:
            print(_how_to_continue_the_sweep(), file=sys.stderr)
        raise SystemExit(stop.exit_code)
    diagnosis = Diagnosis.from_record(summary["diagnosis"]).explained()
    print(f"\n{format_summary_table(summary)}\n\ndiagnosis: {diagnosis}\n\nstatus: {summary['status']}    run directory: {run_dir}")
    if summary["status"] != "finished" and not sweeping:
        raise SystemExit(EXIT_FAILED)
    return summary["selected"].get("test_acc")


def _pinned(overrides: list[str], run_dir: Path, resume: bool) -> list[str]:
    kept = [o for o in overrides if not o.startswith(("trainer.resume=", "hydra.run.dir="))]
    value = hydra_value(run_dir)
    return [*kept, *([f"trainer.resume={value}"] if resume else []), f"hydra.run.dir={value}"]


def claim_run_folder(overrides: list[str]) -> tuple[list[str], FolderLock]:
    """A single run holds its folder before Hydra writes anything, and Hydra is
    pointed at it: (the overrides that point it there, the hold to release).

    The folder is the run to continue (``trainer.resume=DIR``, or with ``auto``
    the newest unfinished run of this config that no other process holds), the
    one ``hydra.run.dir`` names, or a new one, numbered when the name is taken."""
    from omegaconf import OmegaConf, open_dict

    composed = compose_train(overrides, return_hydra_config=True)
    run_dir = Path(str(OmegaConf.select(composed, "hydra.run.dir"))).expanduser()
    with open_dict(composed):
        del composed["hydra"]
    validate_config(composed)
    config = resolved(composed)
    resume = parse(overrides).get("trainer.resume")
    value = resume.value() if resume is not None else None
    if value is not None:
        from lossbench.training.checkpoint import check_resumable, resumable_runs

        output_dir = Path(config["paths"]["output_dir"])
        candidates = resumable_runs(output_dir, config) if value == "auto" else [Path(str(value)).expanduser()]
        busy = []
        for target in candidates:
            check_resumable(target, config)
            try:
                lock = claim(target)
                return _pinned(overrides, target, resume=True), lock
            except FolderBusy as e:
                busy.append(e)
        if len(busy) == 1:
            raise busy[0]
        raise UserError("trainer.resume=auto: every unfinished run of this config is being written: "
                        + "; ".join(f"{e.folder} by {e.owner.describe()}" for e in busy))
    if any(o.startswith("hydra.run.dir=") for o in overrides):
        lock = claim(run_dir, remove_if_empty=not run_dir.exists())
    else:
        run_dir = new_folder(run_dir)
        lock = claim(run_dir, remove_if_empty=True)
    return _pinned(overrides, run_dir, resume=False), lock


def check_every_job(overrides: list[str]) -> None:
    """Each job of a sweep composed and checked as a single run's config is,
    before the sweep starts: a bad value in one job is refused in one line
    instead of failing that job after the others have trained."""
    from itertools import product

    prefixes = {"ADD": "+", "FORCE_ADD": "++"}
    per_override = []
    for text in split_flags(overrides)[1]:
        override = next(iter(parse([text]).values()))
        if override.is_hydra_override():
            continue
        if not override.is_sweep_override():
            per_override.append([text])
            continue
        values = choices(override)
        if values is None:  # a glob or a range only Hydra expands: its jobs are checked as they start
            return
        key = prefixes.get(override.type.name, "") + override.key_or_group
        per_override.append([f"{key}={value}" for value in values])
    for job in product(*per_override):
        try:
            validate_config(compose_train(list(job)))
        except HydraException as e:  # a key one job's config does not have
            raise UserError(f"the job {' '.join(job)}: {_hydra_refusal(e, list(job))}") from None


def check_launcher(overrides: list[str]) -> None:
    """The launcher's own settings (``hydra.launcher.*``), checked before any job starts."""
    from omegaconf import OmegaConf

    from lossbench.launch.settings import check_launcher_settings

    hydra_only = [o for o in split_flags(overrides)[1] if next(iter(parse([o]).values())).is_hydra_override()]
    if not any(o.startswith(("hydra/launcher=", "hydra.launcher.")) for o in hydra_only):
        return
    try:
        launcher = OmegaConf.select(compose_train(hydra_only, return_hydra_config=True), "hydra.launcher")
    except HydraException as e:
        raise UserError(_hydra_refusal(e, hydra_only)) from None
    device = parse(overrides).get("trainer.device")
    devices = [] if device is None else [str(v) for v in (
        device.sweep_iterator() if device.is_sweep_override() else [device.value()])]
    check_launcher_settings(OmegaConf.to_container(launcher, resolve=False), devices)


def _wait_for_other_launches(sweep_dir: Path, progress: bool) -> None:
    """Jobs of this sweep that another launch is training: wait, so that this
    command ends, like the other, with the jobs of the whole sweep that did not finish."""
    busy = {job: owner for job in sorted(sweep_dir.iterdir()) if job.is_dir() and (owner := live_owner(job))}
    if not busy:
        return
    print(f"lossbench train: waiting for {len(busy)} job(s) that another launch is training: "
          + "; ".join(f"{job.name} by {owner.describe()}" for job, owner in busy.items()))
    from tqdm.auto import tqdm

    try:
        with tqdm(total=len(busy), desc="jobs of other launches", unit="job", disable=not progress) as bar:
            while busy:
                time.sleep(1.0)
                done = [job for job in busy if live_owner(job) is None]
                for job in done:
                    del busy[job]
                bar.update(len(done))
    except KeyboardInterrupt:
        _error(f"stopped waiting; the other launch goes on training {', '.join(job.name for job in busy)} in {sweep_dir}")
        raise SystemExit(EXIT_INTERRUPTED) from None


def _hydra_refusal(error: HydraException, overrides: list[str]) -> str:
    """Hydra's refusal of an override, as one line; a key that is not a setting
    gets the valid keys beside it (not Hydra's advice to add it with +, which
    would make a setting that nothing reads)."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    cause = str(error.__cause__).splitlines()[0] if error.__cause__ is not None and str(error.__cause__) else ""
    if cause and cause not in message:  # a structured config's type check (a launcher's) says why
        message = f"{message}: {cause}"
    unknown = re.search(r"Could not override '([^']+)'", message)
    if unknown is None:
        return message
    key = unknown.group(1)
    others = [o for o in split_flags(overrides)[1] if o.split("=", 1)[0].lstrip("+~") != key]
    try:
        return not_a_setting(key, compose_train(others, return_hydra_config=key.startswith("hydra."))) or message
    except HydraException:
        return message


def _headline(sweep_dir: Path, overrides: list[str]) -> str | None:
    """The sweep's answer in one sentence, where it compares one key over seeds."""
    from lossbench.report.build import sweep_headline

    parsed = parse(overrides)
    swept = {key: choices(o) for key, o in parsed.items() if o.is_sweep_override() and not o.is_hydra_override()}
    try:
        return sweep_headline(sweep_dir, list(swept), swept) or None
    except UserError:
        return None


def train_main(overrides: list[str]) -> None:
    try:
        rerun, overrides = take_rerun(overrides)
        overrides = check_command_line(overrides)
    except UserError as e:
        _error(str(e))
        raise SystemExit(UserError.exit_code) from None
    if any(o.startswith("hparams_search=") for o in overrides) and not any(a.startswith("-") for a in overrides):
        from lossbench.training.search import run_search

        try:
            raise SystemExit(run_search(overrides))
        except UserError as e:
            _error(str(e))
            raise SystemExit(UserError.exit_code) from None
    sweep_dir, run_folder = None, None
    try:
        if is_multirun(overrides):
            check_every_job(overrides)
            check_launcher(overrides)
            overrides, sweep_dir = plan_sweep(overrides, output_dir_of(overrides), rerun=rerun)
        elif not any(a.startswith("-") for a in overrides):
            overrides, run_folder = claim_run_folder(overrides)
    except SweepFinished as e:
        # nothing failed: what the command asks for exists (a relaunch in a script, a requeued job)
        where = shlex.quote(str(e.sweep))
        print(f"lossbench train: this sweep has already run and every job finished in {e.sweep}: "
              f"see lossbench report {where}; add +rerun=true to run it again in a new folder")
        return
    except UserError as e:
        _error(str(e))
        raise SystemExit(UserError.exit_code) from None
    except HydraException as e:  # an override Hydra cannot parse or apply
        _error(_hydra_refusal(e, overrides))
        raise SystemExit(UserError.exit_code) from None
    # Hydra reads its command line from sys.argv; argv[0] names the app in its messages.
    sys.argv = ["lossbench train", *overrides]
    app = hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(_train_job)
    try:
        app()
    except KeyboardInterrupt:
        if sweep_dir is None:
            raise
        # between two jobs, or in a launcher whose jobs run elsewhere
        _error(f"interrupted; the jobs that finished are kept in {sweep_dir}")
        print(f"continue the sweep with: {continue_command(sweep_dir)}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:
        if run_folder is not None:
            # the command's own hold (the job's is released already): an
            # in-process caller goes on without the folder held
            run_folder.release()
        if sweep_dir is not None and sweep_dir.is_dir() and not job_dirs(sweep_dir):
            # Hydra or its launcher stopped before any job: leave no sweep behind for a later launch to continue
            shutil.rmtree(sweep_dir, ignore_errors=True)
    if sweep_dir is not None and sweep_dir.is_dir():
        # read as Hydra reads it, not by matching text
        given = parse(overrides).get("trainer.progress")
        progress = given is None or given.value() is not False
        _wait_for_other_launches(sweep_dir, progress)
        results, problems = sweep_end(sweep_dir, _headline(sweep_dir, overrides))
        print(f"\n{results}")
        if problems:
            print(f"\n{problems}", file=sys.stderr)
            raise SystemExit(EXIT_FAILED)
