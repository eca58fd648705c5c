"""MLflow: a run per run folder, in the experiment ``lossbench`` (or
MLFLOW_EXPERIMENT_NAME) of a real tracking store: ``sqlite:///<output_dir>/mlflow.db``
unless MLFLOW_TRACKING_URI names another.

A sweep is a parent run (named after the sweep folder, found by its
``lossbench.sweep_dir`` tag, made by the first job that needs it while that
job holds the sweep folder's lock) with its jobs as children; a new SQLite
store's tables are made likewise by one process, holding the store's folder. Each run is
found again by its ``lossbench.run_dir`` tag: a run that resumes continues its
record, a folder trained afresh replaces the earlier one, and an export skips
a run the store already holds as its folder is now and replaces any other."""

import os
import re
import socket
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

from lossbench.tracking.record import (
    TrackedRun,
    diagnosis_text,
    end_tags,
    epoch_metrics,
    param_text,
    result_metrics,
    run_files,
)

DEFAULT_EXPERIMENT = "lossbench"
DB_NAME = "mlflow.db"
ARTIFACTS = "mlartifacts"
STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "killed": "KILLED"}  # anything else: FAILED
# an HTTP store answers quickly or not at all: MLflow's own defaults retry for minutes
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
CONNECT_TIMEOUT_S = 3.0
LOCK_WAIT_S = 120.0
# MLflow's limits (mlflow.utils.validation)
MAX_KEY, MAX_PARAM, MAX_TAG, PARAMS_PER_BATCH, METRICS_PER_BATCH = 250, 6000, 8000, 100, 1000


def sqlite_uri(folder: Path) -> str:
    return f"sqlite:///{(Path(folder).expanduser().resolve() / DB_NAME)}"


def tracking_uri(folder: Path) -> str:
    """MLFLOW_TRACKING_URI where set, else the SQLite store in ``folder``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(folder)


def _key(name: str) -> str:
    return re.sub(r"[^/\w.\- :]", "_", name)[:MAX_KEY]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ms(timestamp: str | None) -> int | None:
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000) if timestamp else None
    except ValueError:
        return None


def check_reachable(uri: str) -> None:
    """An HTTP tracking server that does not accept a connection within seconds fails now, not after MLflow's retries."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https"):
        return
    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise ConnectionError(f"cannot reach the tracking server {uri}: {e.strerror or e}") from None


@contextmanager
def _one_at_a_time(uri: str, sweep):
    """Jobs may run in parallel processes: one at a time makes a new SQLite
    store's tables (holding the store's folder) and looks for, or makes, the
    sweep's parent run (holding the sweep's folder)."""
    from lossbench.training.folder_lock import claim

    folders = [Path(uri.removeprefix("sqlite:///")).parent] if uri.startswith("sqlite:///") else []
    folders += [sweep.path] if sweep is not None else []
    with ExitStack() as held:
        for folder in folders:
            held.enter_context(claim(folder, wait_s=LOCK_WAIT_S))
        yield


class MlflowLogger:
    name = "mlflow"

    def __init__(self, uri: str, export: bool = False, experiment: str | None = None):
        self.uri = uri
        self.export = export
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        self.client = None
        self.run_id = self.parent_id = self.experiment_id = None
        self.skipped = False  # an export: the store holds this run as its folder is now

    # the store

    def _connect(self) -> None:
        """The client; MLflow makes a new SQLite store's tables here."""
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)

    def _artifact_location(self) -> str | None:
        """Beside a SQLite store (MLflow's default would be the current directory)."""
        if not self.uri.startswith("sqlite:///"):
            return None
        return (Path(self.uri.removeprefix("sqlite:///")).parent / ARTIFACTS).resolve().as_uri()

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            try:
                return self.client.create_experiment(self.experiment, artifact_location=self._artifact_location())
            except MlflowException:  # made by another process in between
                found = self.client.get_experiment_by_name(self.experiment)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            self.client.restore_experiment(found.experiment_id)
        return found.experiment_id

    def _find(self, key: str, value: str) -> list:
        """The active runs of the experiment tagged ``key=value``, oldest first."""
        quote = "'" if "'" not in value else '"'
        if quote in value or "\\" in value:
            runs = self.client.search_runs([self.experiment_id], max_results=50000)
        else:
            runs = self.client.search_runs([self.experiment_id], f"tags.`{key}` = {quote}{value}{quote}",
                                           max_results=50000)
        return sorted((r for r in runs if r.data.tags.get(key) == value), key=lambda r: r.info.start_time or 0)

    def sweep_parent(self, sweep) -> str:
        """The parent run of ``sweep``'s jobs, made if the store has none (with the sweep's lock held)."""
        found = [r for r in self._find("lossbench.sweep_dir", str(sweep.path))
                 if r.data.tags.get("lossbench.kind") == "sweep"]
        if found:
            return found[0].info.run_id
        tags = {"lossbench.kind": "sweep", "lossbench.sweep": sweep.name, "lossbench.sweep_dir": str(sweep.path)}
        if sweep.command():
            tags["lossbench.command"] = _cut(sweep.command(), MAX_TAG)
        return self.client.create_run(self.experiment_id, run_name=sweep.name, tags=tags).info.run_id

    # logging

    def _log(self, metrics=(), params=(), tags=()) -> None:
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        metrics = [Metric(_key(k), v, now, int(step)) for k, v, step in metrics]
        params = [Param(_key(k), _cut(v, MAX_PARAM)) for k, v in params]
        tags = [RunTag(k, _cut(v, MAX_TAG)) for k, v in tags]
        for i in range(0, len(metrics), METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i: i + METRICS_PER_BATCH])
        for i in range(0, len(params), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[i: i + PARAMS_PER_BATCH])
        for i in range(0, len(tags), PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=tags[i: i + PARAMS_PER_BATCH])

    def _log_rows(self, rows: list[dict]) -> None:
        self._log(metrics=[(k, v, row["epoch"]) for row in rows for k, v in epoch_metrics(row).items()])

    def start(self, run: TrackedRun, earlier_rows: list[dict], finished_at: str | None = None) -> None:
        """``earlier_rows``: the epochs the run has before this process logs any (a resumed run's,
        an exported run's all); ``finished_at``: an export's run, as its summary says it ended."""
        self.run = run
        check_reachable(self.uri)
        with _one_at_a_time(self.uri, run.sweep):
            self._connect()
            self.experiment_id = self._experiment_id()
            self.parent_id = self.sweep_parent(run.sweep) if run.sweep else None
        records = self._find("lossbench.run_dir", str(run.path))
        this_attempt = [r for r in records if r.data.tags.get("lossbench.started_at") == run.started_at]
        if self.export and finished_at and any(r.data.tags.get("lossbench.finished_at") == finished_at
                                               for r in this_attempt):
            self.run_id, self.skipped = this_attempt[-1].info.run_id, True
            return
        if not self.export and earlier_rows and this_attempt:  # a resumed run continues its record
            self.run_id = this_attempt[-1].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            logged = {m.step for m in self.client.get_metric_history(self.run_id, "train_loss")}
            known = self.client.get_run(self.run_id).data.params
            self._log(params=[(k, param_text(v)) for k, v in run.params.items() if _key(k) not in known])
            self._log_rows([row for row in earlier_rows if row["epoch"] not in logged])
            return
        for record in records:  # an earlier attempt at this folder, or an export of an earlier state of it
            self.client.delete_run(record.info.run_id)
        tags = {**run.tags, "lossbench.kind": "run"}
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        started = _ms(run.started_at) if self.export else None
        self.run_id = self.client.create_run(self.experiment_id, start_time=started, run_name=run.name,
                                             tags={k: _cut(v, MAX_TAG) for k, v in tags.items()}).info.run_id
        self._log(params=[(k, param_text(v)) for k, v in run.params.items()])
        self._log_rows(earlier_rows)

    def log_epoch(self, row: dict) -> None:
        if not self.skipped:
            self._log_rows([row])

    def finish(self, summary: dict) -> None:
        if self.skipped:
            return
        run = self.run
        tags = end_tags(summary)
        text = diagnosis_text(summary)
        if text:
            tags["mlflow.note.content"] = text  # the run's description in the MLflow UI
        self._log(metrics=[(k, v, step) for k, (v, step) in result_metrics(summary).items()], tags=tags.items())
        for path in run_files(run):
            self.client.log_artifact(self.run_id, str(path))
        ended = _ms(summary.get("finished_at")) if self.export else None
        self.client.set_terminated(self.run_id, STATUS.get(summary.get("status"), "FAILED"), end_time=ended)
        if self.parent_id:  # the sweep ends with its last job
            self.client.set_terminated(self.parent_id, "FINISHED", end_time=ended)

    def log_folder(self, run_id: str, folder: Path, under: str) -> None:
        """A folder's files (a report) as artifacts of ``run_id``."""
        self.client.log_artifacts(run_id, str(folder), artifact_path=under)

    def abandon(self) -> None:
        if self.client is not None and self.run_id is not None and not self.skipped:
            self.client.set_terminated(self.run_id, "FAILED")
