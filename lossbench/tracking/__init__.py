"""Experiment trackers: ``trainer.loggers=[tensorboard,mlflow,wandb]`` logs a
run to them as it trains, ``lossbench export`` logs finished runs and sweeps
from their folders. The run's own files stay what they are; a tracker that
fails is named in one warning and left out for the rest of the run.

Each tracker is a module of its own (``tensorboard_logger``, ``mlflow_logger``,
``wandb_logger``) whose library is imported only when it is used."""

import importlib.util
from pathlib import Path

from lossbench.errors import UserError
from lossbench.tracking.guard import Trackers

LOGGERS = ("tensorboard", "mlflow", "wandb")


def install_hint(name: str) -> str:
    return f"pip install 'lossbench[{name}]'"


def check_installed(name: str, key: str) -> None:
    """One line with the command that installs a tracker's library, where it is missing."""
    if importlib.util.find_spec(name) is None:
        raise UserError(f"{key} needs {name}, which is not installed: {install_hint(name)}")


def start_tracking(cfg, run_dir: Path, summary: dict, earlier_rows: list[dict]) -> Trackers:
    """The trackers ``cfg.trainer.loggers`` names, started on the run in ``run_dir``
    (``earlier_rows``: the epochs a resumed run already has)."""
    names = list(cfg.trainer.get("loggers") or [])
    if not names:
        return Trackers()
    from lossbench.tracking.record import TrackedRun
    from lossbench.training.compose import resolved
    from lossbench.training.run_dir import RunDir

    trackers = []
    for name in names:
        if name == "tensorboard":
            from lossbench.tracking.tensorboard_logger import TensorBoardLogger

            trackers.append(TensorBoardLogger())
        elif name == "mlflow":
            from lossbench.tracking.mlflow_logger import MlflowLogger, tracking_uri

            trackers.append(MlflowLogger(tracking_uri(Path(str(cfg.paths.output_dir)))))
        elif name == "wandb":
            from lossbench.tracking.wandb_logger import WandbLogger

            trackers.append(WandbLogger())
    run = TrackedRun.of(run_dir, resolved(cfg), summary.get("started_at"), RunDir(run_dir).overrides())
    return Trackers(trackers).start(run, [{**row, "epoch": int(row["epoch"])} for row in earlier_rows])
