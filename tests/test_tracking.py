"""Experiment trackers (trainer.loggers, lossbench export) with their real
libraries, offline: TensorBoard's event files, MLflow's SQLite store and
W&B's offline run folder, read back with their own readers after real short
runs on digits. Trained once per module and shared; MLflow's store is made
once (its tables take seconds) and copied wherever a fresh one is needed."""

import json
import logging
import shutil
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from helpers.training import compose_train, read_rows
from lossbench.cli import main
from lossbench.errors import UserError
from lossbench.training import folder_lock
from lossbench.training.columns import TIME_COLUMNS
from lossbench.training.run import run_training
from lossbench.training.validate import validate_config

pytestmark = pytest.mark.slow  # trains networks: left out by pytest -m "not slow"

EPOCHS = 2
EXPERIMENT = "lossbench"


# reading the run's own files and the trackers' back

def columns(run_dir) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as {column: [(epoch, value), ...]}, the cells it leaves empty left out."""
    found = {}
    for row in read_rows(run_dir):
        for key, cell in row.items():
            if key != "epoch" and cell not in ("", "nan"):
                found.setdefault(key, []).append((int(row["epoch"]), float(cell)))
    return found


def without_time(run_dir) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIME_COLUMNS} for row in read_rows(run_dir)]


def summary_of(run_dir) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def tensorboard_run(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def hparams_of(events) -> dict:
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    return {tag: HParamsPluginData.FromString(content)
            for tag, content in events.PluginTagToContent("hparams").items()}


def assert_scalars_are_the_csv(events, run_dir):
    expected = columns(run_dir)
    assert set(expected) <= set(events.Tags()["scalars"])
    for key, values in expected.items():
        # TensorBoard keeps scalars as 32-bit floats
        assert [(e.step, e.value) for e in events.Scalars(key)] == [(epoch, float(np.float32(v))) for epoch, v in values], key


def mlflow_client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def mlflow_runs(client) -> list:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"], max_results=1000)


def mlflow_history(client, run) -> dict[str, list[tuple[int, float]]]:
    return {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
            for key in run.data.metrics if "/" not in key}


def wandb_records(path: Path) -> list:
    """The records of a W&B run file (``run-<id>.wandb``): LevelDB's log format,
    32 KiB blocks of chunks (CRC, length, type) after a 7-byte header, each
    record a ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data, records, pending = path.read_bytes(), [], b""
    assert data[:4] == b":W&B"
    position = 7
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a chunk header is padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position: position + 7])
        pending += data[position + 7: position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or a record's last chunk
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@contextmanager
def warnings_logged():
    """The warnings lossbench logs in the block, as text."""
    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("lossbench")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


# the runs, trained once

@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder for the module's runs, and W&B offline and silent, kept inside it."""
    root = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
            mp.setenv(name, str(root / "wandb_home"))
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.delenv("WANDB_API_KEY", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("OMP_NUM_THREADS", "2")
        yield root


@pytest.fixture(scope="module")
def empty_store(root) -> Path:
    """An MLflow SQLite store with its tables and nothing else, to copy."""
    started = time.perf_counter()
    path = root / "template" / "mlflow.db"
    path.parent.mkdir()
    mlflow_client(f"sqlite:///{path}").search_experiments()
    print(f"an empty MLflow store: {time.perf_counter() - started:.1f} s")
    return path


def fresh_store(empty_store: Path, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(empty_store, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def plain(root) -> Path:
    """A run without trackers."""
    run_training(compose_train(f"trainer.epochs={EPOCHS}"), root / "plain")
    return root / "plain"


@pytest.fixture(scope="module")
def tracked(root, empty_store):
    """The same run with all three trackers, in output_dir/run: (run folder, warnings)."""
    out = root / "out"
    fresh_store(empty_store, out)
    cfg = compose_train(f"trainer.epochs={EPOCHS}", "trainer.loggers=[tensorboard,mlflow,wandb]",
                        f"paths.output_dir={out}")
    with warnings_logged() as warned:
        run_training(cfg, out / "run")
    return out / "run", warned


@pytest.fixture(scope="module")
def sweep(root, empty_store) -> Path:
    """``lossbench train -m loss=ce,focal`` logging to MLflow and TensorBoard, in this process."""
    cwd = root / "sweeping"
    fresh_store(empty_store, cwd / "results")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        main(["train", "-m", "loss=ce,focal", "dataset=digits", f"trainer.epochs={EPOCHS}", "trainer.progress=false",
              "trainer.loggers=[mlflow,tensorboard]"])
    (folder,) = (cwd / "results" / "multirun").glob("*/*")
    return folder


# live logging

def test_trackers_change_nothing_the_run_writes(tracked, plain):
    run, warned = tracked
    assert warned == []
    assert without_time(run) == without_time(plain)
    assert summary_of(run).keys() == summary_of(plain).keys()


def test_tensorboard_has_the_csv_as_scalars_and_the_config_as_hparams(tracked):
    run, _ = tracked
    summary = summary_of(run)
    events = tensorboard_run(run / "tensorboard")
    assert_scalars_are_the_csv(events, run)
    hparams = hparams_of(events)
    start = hparams["_hparams_/session_start_info"].session_start_info.hparams
    assert start["loss.name"].string_value == "ce" and start["trainer.epochs"].number_value == EPOCHS
    assert start["optim.lr"].number_value == 0.1 and "trainer.loggers" not in start
    metrics = {m.name.tag for m in hparams["_hparams_/experiment"].experiment.metric_infos}
    assert {"selected/test_acc", "final/test_acc"} <= metrics
    (selected,) = events.Scalars("selected/test_acc")
    assert (selected.step, selected.value) == (summary["selected_epoch"],
                                               float(np.float32(float(f"{summary['selected']['test_acc']:.6g}"))))
    assert hparams["_hparams_/session_end_info"].session_end_info.status == 1  # STATUS_SUCCESS
    (text,) = events.Tensors("lossbench/diagnosis/text_summary")
    assert summary["diagnosis"]["label"] in text.tensor_proto.string_val[0].decode()


def test_mlflow_logs_into_the_output_dirs_sqlite_store(tracked):
    run, _ = tracked
    summary = summary_of(run)
    client = mlflow_client(f"sqlite:///{run.parent / 'mlflow.db'}")
    (record,) = mlflow_runs(client)
    assert record.info.run_name == "run" and record.info.status == "FINISHED"
    assert mlflow_history(client, record) == columns(run)
    params = record.data.params
    assert params["loss.name"] == "ce" and params["model.name"] == "small_cnn" and params["dataset.name"] == "digits"
    assert params["trainer.epochs"] == str(EPOCHS) and params["loss.weight"] == "null"
    assert "trainer.loggers" not in params and "trainer.progress" not in params
    tags = record.data.tags
    assert tags["lossbench.diagnosis"] == summary["diagnosis"]["label"] and tags["lossbench.status"] == "finished"
    assert tags["lossbench.run_dir"] == str(run) and "lossbench.sweep" not in tags
    assert summary["diagnosis"]["advice"] in tags["mlflow.note.content"]
    assert record.data.metrics["selected/test_acc"] == float(f"{summary['selected']['test_acc']:.6g}")
    artifacts = {a.path for a in client.list_artifacts(record.info.run_id)}
    assert {"metrics.csv", "summary.json", "per_class.csv", "resolved_config.yaml"} <= artifacts
    copy = Path(client.download_artifacts(record.info.run_id, "metrics.csv", str(run.parent / "downloaded")))
    assert copy.read_bytes() == (run / "metrics.csv").read_bytes()
    # beside the store, not in the current directory
    assert record.info.artifact_uri.startswith((run.parent / "mlartifacts").as_uri())


def test_wandb_offline_run_holds_the_config_history_and_summary(tracked):
    run, _ = tracked
    summary = summary_of(run)
    (folder,) = (run / "wandb").glob("offline-run-*")
    (file,) = folder.glob("run-*.wandb")
    records = wandb_records(file)
    kinds = [r.WhichOneof("record_type") for r in records]
    # the run as it began, and again as it ended (with the diagnosis among its tags)
    started, *_, ended = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    for run_record in (started, ended):
        config = {item.key: json.loads(item.value_json) for item in run_record.config.update}
        assert config["loss"]["name"] == "ce" and config["trainer"]["epochs"] == EPOCHS and config["seed"] == 0
        assert "loggers" not in config["trainer"] and run_record.display_name == "run"
    assert list(started.tags) == ["job=run"]
    assert list(ended.tags) == ["job=run", f"diagnosis={summary['diagnosis']['label']}"]
    assert summary["diagnosis"]["advice"] in ended.notes
    history = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {item.nested_key[0]: json.loads(item.value_json) for item in record.history.item}
            for key, value in items.items():
                if not key.startswith("_"):
                    history.setdefault(key, []).append((items["_step"], value))
    assert history == columns(run)
    final = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            for item in record.summary.update:
                final[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    assert final["diagnosis"] == summary["diagnosis"]["label"] and final["status"] == "finished"
    assert final["selected/test_acc"] == float(f"{summary['selected']['test_acc']:.6g}")
    saved = {f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files}
    assert {"metrics.csv", "summary.json"} <= saved
    assert kinds[-1] == "exit"


def test_a_sweep_is_a_parent_run_with_its_jobs_as_children(sweep):
    client = mlflow_client(f"sqlite:///{sweep.parents[2] / 'mlflow.db'}")
    records = mlflow_runs(client)
    (parent,) = [r for r in records if r.data.tags.get("lossbench.kind") == "sweep"]
    name = f"{sweep.parent.name}/{sweep.name}"
    assert parent.info.run_name == name and parent.data.tags["lossbench.sweep_dir"] == str(sweep)
    assert "loss=ce,focal" in parent.data.tags["lossbench.command"]
    children = sorted((r for r in records if r is not parent), key=lambda r: r.info.run_name)
    assert [c.info.run_name for c in children] == ["0_loss=ce", "1_loss=focal"]
    for child in children:
        job = sweep / child.info.run_name
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["lossbench.sweep"] == name and child.data.tags["lossbench.job"] == job.name
        assert child.data.params["loss.name"] == job.name.split("=")[1]
        assert mlflow_history(client, child) == columns(job)
        # one TensorBoard log directory for the sweep, a run per job
        assert_scalars_are_the_csv(tensorboard_run(sweep / "tensorboard" / job.name), job)
    assert not (sweep / "0_loss=ce" / "tensorboard").exists()


JOB = """
import sys, time
from pathlib import Path
from lossbench.tracking.mlflow_logger import MlflowLogger
from lossbench.tracking.record import TrackedRun

job, uri, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
logger = MlflowLogger(uri)
import mlflow.tracking  # noqa: F401 - imported before the start, so that both start at once
(go.parent / f"ready_{job.name}").touch()
while not go.exists():
    time.sleep(0.01)
logger.start(TrackedRun.of(job, {"loss": {"name": job.name}}, "2026-01-01T00:00:00+00:00"), [])
logger.log_epoch({"epoch": 1, "train_loss": 1.0})
logger.finish({"status": "finished", "epochs_completed": 1})
"""


def test_parallel_jobs_make_one_store_and_one_parent(tmp_path):
    """Two jobs of a sweep in two processes, starting at once on a store that does not exist yet."""
    sweep = tmp_path / "multirun" / "day" / "time"
    (sweep / ".lossbench_sweep.json").parent.mkdir(parents=True)
    (sweep / ".lossbench_sweep.json").write_text('{"task": ["loss=a,b"], "command": ["-m", "loss=a,b"]}')
    uri, go = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "go"
    jobs = [subprocess.Popen([sys.executable, "-c", JOB, str(sweep / name), uri, str(go)], stderr=subprocess.PIPE,
                             text=True) for name in ("0_loss=a", "1_loss=b")]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready_*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    go.touch()
    for job in jobs:
        assert job.wait(timeout=300) == 0, job.stderr.read()[-3000:]
    records = mlflow_runs(mlflow_client(uri))
    (parent,) = [r for r in records if r.data.tags.get("lossbench.kind") == "sweep"]
    children = [r for r in records if r is not parent]
    assert sorted(r.info.run_name for r in children) == ["0_loss=a", "1_loss=b"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}


def test_a_resumed_run_continues_its_records(root, empty_store):
    out = root / "resumed"
    fresh_store(empty_store, out)
    loggers = ["trainer.loggers=[mlflow,tensorboard]", f"paths.output_dir={out}"]
    run_training(compose_train("trainer.epochs=1", *loggers), out / "run")
    run_training(compose_train("trainer.epochs=2", *loggers), out / "run", resume=True)
    client = mlflow_client(f"sqlite:///{out / 'mlflow.db'}")
    (record,) = mlflow_runs(client)
    assert mlflow_history(client, record) == columns(out / "run") and len(columns(out / "run")["train_loss"]) == 2
    assert record.info.status == "FINISHED" and record.data.params["trainer.epochs"] == "1"  # as it began
    assert_scalars_are_the_csv(tensorboard_run(out / "run" / "tensorboard"), out / "run")


# a tracker that fails

def test_an_unreachable_tracking_server_costs_one_warning(root, plain, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    started = time.perf_counter()
    with warnings_logged() as warned:
        summary = run_training(compose_train(f"trainer.epochs={EPOCHS}", "trainer.loggers=[mlflow]"), root / "unreachable")
    assert time.perf_counter() - started < 120
    assert summary["status"] == "finished"
    (line,) = warned
    assert line.startswith("mlflow logging failed and is off for the rest of this run (training goes on): ")
    assert "http://127.0.0.1:9" in line and "\n" not in line
    assert without_time(root / "unreachable") == without_time(plain)
    assert summary_of(root / "unreachable").keys() == summary_of(plain).keys()


def test_a_store_broken_mid_run_costs_one_warning_and_the_other_trackers_go_on(root, plain, empty_store):
    out = root / "broken"
    fresh_store(empty_store, out)

    class BreakTheStoreAfterEpochOne(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("epoch 1/"):
                with open(out / "mlflow.db", "r+b") as f:
                    f.write(b"not a database" * 1000)

    breaker = BreakTheStoreAfterEpochOne()
    logging.getLogger("lossbench").addHandler(breaker)
    try:
        with warnings_logged() as warned:
            summary = run_training(compose_train(f"trainer.epochs={EPOCHS}", "trainer.loggers=[mlflow,tensorboard]",
                                                 f"paths.output_dir={out}"), out / "run")
    finally:
        logging.getLogger("lossbench").removeHandler(breaker)
    assert summary["status"] == "finished"
    (line,) = warned
    assert line.startswith("mlflow logging failed and is off for the rest of this run (training goes on): ")
    assert "not a database" in line
    assert without_time(out / "run") == without_time(plain)
    assert summary_of(out / "run").keys() == summary_of(plain).keys()
    assert_scalars_are_the_csv(tensorboard_run(out / "run" / "tensorboard"), out / "run")


# lossbench export

def test_export_to_mlflow_matches_live_logging_and_twice_changes_nothing(root, sweep, tracked, empty_store, capsys):
    from lossbench.report.build import report_main

    run, _ = tracked
    report_main([str(sweep)], None)
    uri = fresh_store(empty_store, root / "exported")
    capsys.readouterr()
    assert main(["export", "mlflow", str(sweep), str(run), "--tracking-uri", uri]) == 0
    assert "3 run(s) exported, 0 already there" in capsys.readouterr().out
    client = mlflow_client(uri)
    exported = {r.data.tags.get("lossbench.run_dir", "sweep"): r for r in mlflow_runs(client)}
    live_sweep = mlflow_client(f"sqlite:///{sweep.parents[2] / 'mlflow.db'}")
    live_run = mlflow_client(f"sqlite:///{run.parent / 'mlflow.db'}")
    live = {r.data.tags.get("lossbench.run_dir", "sweep"): (live_sweep, r) for r in mlflow_runs(live_sweep)}
    live.update({r.data.tags["lossbench.run_dir"]: (live_run, r) for r in mlflow_runs(live_run)})
    assert exported.keys() == live.keys() and len(exported) == 4
    for key, (live_client, record) in live.items():
        copy = exported[key]
        assert copy.info.run_name == record.info.run_name and copy.info.status == record.info.status
        assert copy.data.params == record.data.params
        ours = {k: v for k, v in copy.data.tags.items() if k.startswith("lossbench.")}
        assert ours == {k: v for k, v in record.data.tags.items() if k.startswith("lossbench.")}
        assert mlflow_history(client, copy) == mlflow_history(live_client, record)
        assert {k: v for k, v in copy.data.metrics.items() if "/" in k} == \
               {k: v for k, v in record.data.metrics.items() if "/" in k}
    parent = exported["sweep"]
    for key in (str(sweep / "0_loss=ce"), str(sweep / "1_loss=focal")):
        assert exported[key].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in exported[str(run)].data.tags
    # the sweep's report goes with its parent
    report = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/runs.csv"} <= report and any(p.endswith(".png") for p in report)

    assert main(["export", "mlflow", str(sweep), str(run), "--tracking-uri", uri]) == 0
    assert "0 run(s) exported, 3 already there" in capsys.readouterr().out
    again = mlflow_runs(client)
    assert sorted(r.info.run_id for r in again) == sorted(r.info.run_id for r in exported.values())


def test_export_to_tensorboard_writes_a_run_per_job_and_replaces_it_when_run_again(root, sweep, capsys):
    from PIL import Image
    from lossbench.report.build import report_main

    report_main([str(sweep)], None)
    logdir = root / "exported_tensorboard"
    for _ in range(2):
        assert main(["export", "tensorboard", str(sweep), "--logdir", str(logdir)]) == 0
    assert "2 run(s) exported" in capsys.readouterr().out
    # the sweep's report figures, as images of a run beside the jobs
    report = logdir / sweep.parent.name / sweep.name / "report"
    assert len(list(report.glob("events.out.tfevents.*"))) == 1
    images = EventAccumulator(str(report), size_guidance={"images": 0})
    images.Reload()
    pngs = sorted((sweep / "report").glob("*.png"))
    assert pngs and sorted(images.Tags()["images"]) == sorted(p.stem for p in pngs)
    for png in pngs:
        (event,) = images.Images(png.stem)
        assert (event.width, event.height) == Image.open(png).size
    for job in ("0_loss=ce", "1_loss=focal"):
        folder = logdir / sweep.parent.name / sweep.name / job
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        events = tensorboard_run(folder)
        assert_scalars_are_the_csv(events, sweep / job)
        assert hparams_of(events)["_hparams_/session_start_info"].session_start_info.hparams["loss.name"].string_value \
            == job.split("=")[1]


def test_export_default_store_is_the_output_dirs(sweep, monkeypatch):
    from lossbench.tracking.export import output_dir_of

    monkeypatch.chdir(sweep)
    assert output_dir_of(sweep) == output_dir_of(sweep / "0_loss=ce") == sweep.parents[2]
    assert output_dir_of(sweep.parents[2]) == sweep.parents[2]
    assert output_dir_of(sweep / "tensorboard") == sweep.parents[2]


# one-line refusals

@pytest.mark.parametrize("value, message", [
    ("[tensorbord]", "trainer.loggers='tensorbord' is invalid: valid values are tensorboard, mlflow, wandb"),
    ("mlflow", "trainer.loggers='mlflow' is invalid: it must be a list of tensorboard, mlflow, wandb, "
               "e.g. [tensorboard,mlflow], or [] for none"),
    ("[mlflow,mlflow]", "trainer.loggers=['mlflow', 'mlflow'] is invalid: name each tracker once"),
])
def test_a_bad_loggers_value_is_one_line(value, message, tmp_path, monkeypatch, capsys):
    with pytest.raises(UserError) as error:
        validate_config(compose_train(f"trainer.loggers={value}"))
    assert str(error.value) == message
    # and through the command line, before anything is written
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(folder_lock, "_held", {})
    with pytest.raises(SystemExit) as exit_:
        main(["train", "dataset=digits", f"trainer.loggers={value}"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"lossbench train: error: {message}"]
    assert list(tmp_path.rglob("*.csv")) == [] and list(tmp_path.rglob("*.json")) == []


@pytest.mark.parametrize("name", ["tensorboard", "mlflow", "wandb"])
def test_a_missing_library_names_the_pip_command(name, monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # what an import of a library that is not installed finds
    with pytest.raises(UserError) as error:
        validate_config(compose_train(f"trainer.loggers=[{name}]"))
    assert str(error.value) == (f"trainer.loggers=[{name}] needs {name}, which is not installed: "
                                f"pip install 'lossbench[{name}]'")


def test_export_refuses_options_of_the_other_tool(tmp_path, capsys):
    assert main(["export", "mlflow", str(tmp_path), "--logdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == \
        "lossbench export: error: --logdir is for tensorboard: mlflow writes to --tracking-uri"
