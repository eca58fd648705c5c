"""What a tracker is told about a run, the same whether it is logged as it
trains or exported from its folder afterwards: its name, its sweep, its
config as parameters, its tags, and each epoch's metrics as metrics.csv
holds them."""

import hashlib
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from lossbench.diagnosis import Diagnosis
from lossbench.training.run_dir import RunDir
from lossbench.training.run_files import format_value
from lossbench.training.sweep import SWEEP_RECORD

# a folder holding one of these holds a sweep's jobs: lossbench's record of a
# sweep, Hydra's multirun.yaml, or a hyper-parameter search's study
SWEEP_MARKERS = (SWEEP_RECORD, "multirun.yaml", "study.db")
# how a run is launched and shown, not what it trains: left out of the parameters
NOT_PARAMETERS = ("trainer.resume", "trainer.progress", "trainer.loggers")
# the metrics of the selected and of the last epoch given as the run's results
# (``selected/test_acc``, ``final/test_acc``, ...)
RESULT_METRICS = ("test_acc", "test_balanced_acc", "test_tail_acc", "test_nll", "test_ece", "val_balanced_acc",
                  "val_acc", "train_loss")
RESULT_STAGES = ("selected", "final")
# the run's files every tracker that keeps files gets
RUN_FILES = (RunDir.METRICS, RunDir.SUMMARY, RunDir.PER_CLASS, RunDir.CONFIG)


@dataclass(frozen=True)
class Sweep:
    path: Path

    @property
    def name(self) -> str:
        """The folder's last two parts: ``2026-11-22/10-00-00`` for a multirun, ``search/focal_gamma`` for a search."""
        return f"{self.path.parent.name}/{self.path.name}"

    def command(self) -> str | None:
        """The command line that made the sweep, where lossbench recorded it."""
        try:
            command = json.loads((self.path / SWEEP_RECORD).read_text()).get("command")
        except (OSError, ValueError, AttributeError):
            return None
        return shlex.join(["lossbench", "train", *map(str, command)]) if isinstance(command, list) else None


def sweep_of(run_dir: Path) -> Sweep | None:
    """The sweep ``run_dir`` is a job of, or None for a run of its own."""
    parent = Path(run_dir).resolve().parent
    return Sweep(parent) if any((parent / marker).exists() for marker in SWEEP_MARKERS) else None


def _without(config: dict, dotted: tuple[str, ...]) -> dict:
    config = json.loads(json.dumps(config, default=str))
    for key in dotted:
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return config


def flat_params(config: dict, prefix: str = "") -> dict:
    """``{"loss": {"gamma": 2}}`` -> ``{"loss.gamma": 2}``; lists and empty sections stay values."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def param_text(value) -> str:
    """A parameter as text: strings as they are, anything else as JSON (true, null, [1, 2])."""
    return value if isinstance(value, str) else json.dumps(value)


def metric_value(value) -> float | None:
    """A metric as metrics.csv writes it (6 significant digits), read back;
    None for a missing or NaN value, which no tracker is given."""
    if value is None:
        return None
    try:
        number = float(format_value(value))
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def epoch_metrics(row: dict) -> dict[str, float]:
    """An epoch's metrics, named as metrics.csv's columns (the epoch is the step)."""
    values = {key: metric_value(value) for key, value in row.items() if key != "epoch"}
    return {key: value for key, value in values.items() if value is not None}


def result_metrics(summary: dict) -> dict[str, tuple[float, int]]:
    """``selected/<metric>`` and ``final/<metric>``: (value, epoch)."""
    found = {}
    epochs = {"selected": summary.get("selected_epoch"), "final": summary.get("epochs_completed")}
    for stage in RESULT_STAGES:
        row = summary.get(stage) or {}
        epoch = row.get("epoch", epochs[stage])
        for metric in RESULT_METRICS:
            value = metric_value(row.get(metric))
            if value is not None:
                found[f"{stage}/{metric}"] = (value, int(epoch or 0))
    return found


def diagnosis_of(summary: dict) -> Diagnosis | None:
    return Diagnosis.from_record(summary.get("diagnosis"))


@dataclass
class TrackedRun:
    """One run as every tracker sees it."""

    path: Path  # the run's folder
    config: dict  # resolved, the launch-only settings left out
    started_at: str | None = None
    overrides: list[str] = field(default_factory=list)
    sweep: Sweep | None = None

    @classmethod
    def of(cls, path: Path, config: dict, started_at: str | None, overrides: list[str] | None = None) -> "TrackedRun":
        path = Path(path).resolve()
        return cls(path, _without(config, NOT_PARAMETERS), started_at, list(overrides or []), sweep_of(path))

    @property
    def name(self) -> str:
        """The job's folder name in a sweep (``0_loss=ce``), the run's folder name otherwise."""
        return self.path.name

    @property
    def params(self) -> dict:
        return flat_params(self.config)

    @property
    def tags(self) -> dict[str, str]:
        tags = {"lossbench.run_dir": str(self.path)}
        if self.started_at:
            tags["lossbench.started_at"] = self.started_at
        if self.overrides:
            tags["lossbench.overrides"] = " ".join(self.overrides)
        if self.sweep is not None:
            tags.update({"lossbench.sweep": self.sweep.name, "lossbench.sweep_dir": str(self.sweep.path),
                         "lossbench.job": self.name})
        return tags

    def attempt_id(self, length: int = 16) -> str:
        """A stable id for this folder's run: the same when it resumes, another when the folder is trained afresh."""
        return hashlib.sha1(f"{self.path}|{self.started_at}".encode()).hexdigest()[:length]


def end_tags(summary: dict) -> dict[str, str]:
    """Tags a run gets when it ends: its status and its diagnosis's label."""
    tags = {"lossbench.status": str(summary.get("status")),
            "lossbench.epochs_completed": str(summary.get("epochs_completed"))}
    if summary.get("finished_at"):
        tags["lossbench.finished_at"] = str(summary["finished_at"])
    diagnosis = diagnosis_of(summary)
    if diagnosis is not None:
        tags["lossbench.diagnosis"] = diagnosis.label
    return tags


def diagnosis_text(summary: dict) -> str | None:
    diagnosis = diagnosis_of(summary)
    return None if diagnosis is None else diagnosis.explained()


def run_files(run: TrackedRun) -> list[Path]:
    return [run.path / name for name in RUN_FILES if (run.path / name).is_file()]
