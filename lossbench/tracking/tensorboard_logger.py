"""TensorBoard: a log directory per run, the scalars named as metrics.csv's
columns (step: the epoch), the config in the HParams dashboard with the
selected and final results as its metrics, the sweep, job and diagnosis as text.

A sweep logs into one directory, ``<sweep>/tensorboard``, a run per job
(``<sweep>/tensorboard/<job>``); a run of its own into ``<run>/tensorboard``.
An export given ``--logdir DIR`` writes ``DIR/<sweep>/<job>`` or ``DIR/<run>``."""

import time
from pathlib import Path

from lossbench.tracking.record import (
    RESULT_METRICS,
    RESULT_STAGES,
    TrackedRun,
    diagnosis_text,
    end_tags,
    epoch_metrics,
    param_text,
    result_metrics,
)

FOLDER = "tensorboard"
EVENTS = "events.out.tfevents.*"


def log_dir(run: TrackedRun, root: Path | None = None) -> Path:
    """Where ``run`` logs: beside its sweep's jobs or in its folder, or under ``root`` (an export's --logdir)."""
    if root is not None:
        return Path(root) / (f"{run.sweep.name}/{run.name}" if run.sweep else run.name)
    return run.sweep.path / FOLDER / run.name if run.sweep else run.path / FOLDER


def hparam_value(value):
    """Numbers stay numbers (sortable in the HParams table); anything else is text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return param_text(value)


def _status_summary(status: str):
    """The HParams plugin's end of a session, with the run's status."""
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME, SESSION_END_INFO_TAG
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    code = {"finished": "STATUS_SUCCESS", "failed": "STATUS_FAILURE", "diverged": "STATUS_FAILURE",
            "interrupted": "STATUS_ABORTED", "killed": "STATUS_ABORTED"}.get(status, "STATUS_UNKNOWN")
    content = HParamsPluginData(session_end_info=SessionEndInfo(status=Status.Value(code), end_time_secs=time.time()),
                                version=PLUGIN_DATA_VERSION)
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME,
                                                                      content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=metadata)])


def _table(items: dict) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in items.items())])


class TensorBoardLogger:
    name = "tensorboard"

    def __init__(self, root: Path | None = None, export: bool = False):
        self.root, self.export = root, export
        self.writer = None
        self.last_epoch = 0

    def start(self, run: TrackedRun, earlier_rows: list[dict]) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.dir = log_dir(run, self.root)
        logged_before = any(self.dir.glob(EVENTS))
        resumes = bool(earlier_rows) and logged_before and not self.export
        if not resumes:  # an earlier attempt at this folder, or an earlier export of it: replaced
            for old in self.dir.glob(EVENTS):
                old.unlink()
        first_new = earlier_rows[-1]["epoch"] + 1 if earlier_rows else 1
        # a resumed run drops what an earlier process logged after its checkpoint
        self.writer = SummaryWriter(log_dir=str(self.dir), purge_step=first_new if resumes else None)
        if not resumes:
            metrics = {f"{stage}/{metric}": 0.0 for stage in RESULT_STAGES for metric in RESULT_METRICS}
            experiment, session_start, _ = hparams({k: hparam_value(v) for k, v in run.params.items()}, metrics)
            self.writer.file_writer.add_summary(experiment)
            self.writer.file_writer.add_summary(session_start)
            self.writer.add_text("lossbench/run", _table(run.tags), 0)
            for row in earlier_rows:
                self._scalars(row)
        self.writer.flush()

    def _scalars(self, row: dict) -> None:
        for key, value in epoch_metrics(row).items():
            self.writer.add_scalar(key, value, row["epoch"])
        self.last_epoch = max(self.last_epoch, int(row["epoch"]))

    def log_epoch(self, row: dict) -> None:
        self._scalars(row)
        self.writer.flush()

    def finish(self, summary: dict) -> None:
        for key, (value, epoch) in result_metrics(summary).items():
            self.writer.add_scalar(key, value, epoch)
        step = max(self.last_epoch, int(summary.get("epochs_completed") or 0))
        self.writer.add_text("lossbench/result", _table(end_tags(summary)), step)
        text = diagnosis_text(summary)
        if text:
            self.writer.add_text("lossbench/diagnosis", "    " + text.replace("\n", "\n    "), step)
        self.writer.file_writer.add_summary(_status_summary(str(summary.get("status"))))
        self.writer.close()

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.close()
