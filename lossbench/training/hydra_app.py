"""The Hydra application behind ``lossbench train``."""

import json
import shutil
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lossbench.config_dir import config_dir
from lossbench.errors import UserError
from lossbench.report.diagnosis import Diagnosis
from lossbench.training.overrides import check_command_line, output_dir_of
from lossbench.training.sweep import is_multirun, plan_sweep, prepare_job, unfinished_jobs
from lossbench.training.run import format_summary_table, run_training
from lossbench.training.run_files import write_json
from lossbench.training.stop_signals import stop_on_signals

# Exit codes: 2 for the user's mistakes, 1 for a run that diverged or failed,
# 130 for an interruption (as a shell reports Ctrl-C).
EXIT_FAILED, EXIT_INTERRUPTED = 1, 130
HYDRA_FILES = {".hydra", "train.log"}


def _error(message: str) -> None:
    print(f"lossbench train: error: {message}", file=sys.stderr)


def _record_failure(run_dir: Path, message: str) -> None:
    """In a sweep, a job that cannot run says so in its summary.json, for the report."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        summary = {}
    summary.update(status="failed", error=message)
    write_json(path, summary)


def _resume_command(run_dir: Path) -> str:
    kept = [o for o in HydraConfig.get().overrides.task if not o.startswith(("trainer.resume=", "hydra."))]
    return " ".join(["lossbench train", *kept, f"trainer.resume={run_dir}"])


def _train_job(cfg: DictConfig):
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    resume = cfg.trainer.resume is not None
    if sweeping:
        action = prepare_job(run_dir)
        if action == "skip":
            print(f"lossbench train: {run_dir.name} finished in an earlier launch: skipped")
            return json.loads((run_dir / "summary.json").read_text())["best"].get("test_acc")
        resume = action == "resume"
    try:
        with stop_on_signals() as stop:
            summary = run_training(cfg, run_dir, resume=resume, stop=stop)
    except UserError as e:
        _error(str(e))
        if sweeping:
            _record_failure(run_dir, str(e))
            return None
        if {p.name for p in run_dir.iterdir()} <= HYDRA_FILES:
            # nothing of ours was written: leave no empty run behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise SystemExit(UserError.exit_code) from None
    except KeyboardInterrupt:
        _error(f"interrupted mid-epoch; completed epochs are in {run_dir}; resume with: {_resume_command(run_dir)}")
        raise SystemExit(EXIT_INTERRUPTED) from None
    except Exception as e:  # a bug or an environment failure: in a sweep, the other jobs go on
        if not sweeping:
            raise
        _error(f"{run_dir}: {type(e).__name__}: {e}")
        traceback.print_exc()
        _record_failure(run_dir, f"{type(e).__name__}: {e}")
        return None
    if summary["status"] == "interrupted":
        _error(f"stopped by {summary.get('stopped_by', 'a signal')} after epoch {summary['epochs_completed']}; "
               f"resume with: {_resume_command(run_dir)}")
        raise SystemExit(stop.exit_code)
    diagnosis = Diagnosis(**summary["diagnosis"]).sentence()
    print(f"\n{format_summary_table(summary)}\n\ndiagnosis: {diagnosis}\n\nstatus: {summary['status']}    run directory: {run_dir}")
    if summary["status"] != "finished" and not sweeping:
        raise SystemExit(EXIT_FAILED)
    return summary["best"].get("test_acc")


def pin_resumed_run(overrides: list[str]) -> list[str]:
    """With trainer.resume=DIR|auto: check the run can continue under this config,
    and point Hydra's run directory at it, before anything is written."""
    value = next((o.split("=", 1)[1] for o in overrides if o.startswith("trainer.resume=")), None)
    if value in (None, "null"):
        return overrides
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lossbench.training.checkpoint import check_resumable, find_resumable

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="train"):
        config = OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)
    target = find_resumable(Path(config["paths"]["output_dir"]), config) if value == "auto" else Path(value)
    check_resumable(target, config)
    kept = [o for o in overrides if not o.startswith(("trainer.resume=", "hydra.run.dir="))]
    return [*kept, f"trainer.resume={target}", f"hydra.run.dir={target}"]


def train_main(overrides: list[str]) -> None:
    try:
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
    if not is_multirun(overrides) and not any(a.startswith("-") for a in overrides):
        try:
            overrides = pin_resumed_run(overrides)
        except UserError as e:
            _error(str(e))
            raise SystemExit(UserError.exit_code) from None
    sweep_dir = None
    if is_multirun(overrides):
        overrides, sweep_dir = plan_sweep(overrides, output_dir_of(overrides))
    # Hydra reads its command line from sys.argv; argv[0] names the app in its messages.
    sys.argv = ["lossbench train", *overrides]
    app = hydra.main(config_path=str(config_dir()), config_name="train", version_base="1.3")(_train_job)
    app()
    if sweep_dir is not None and sweep_dir.is_dir():
        problems = unfinished_jobs(sweep_dir)
        if problems:
            print(f"\nlossbench train: {len(problems)} job(s) of {sweep_dir} did not finish:", file=sys.stderr)
            for job, why in problems:
                print(f"  {job}: {why}", file=sys.stderr)
            print("launch the same command again to run them (finished jobs are skipped)", file=sys.stderr)
            raise SystemExit(EXIT_FAILED)
