"""``lossbench export mlflow|tensorboard PATH...``: runs and sweeps that
already ran, read from their folders (as the report reads them), logged to a
tracker by the same loggers a training run uses, so that an exported run has
the names, parameters, tags and sweep structure it would have had logged live.

MLflow: a run the store already holds as its folder is now (the same
``lossbench.run_dir``, start and end) is skipped; any other record of that
folder (logged live by a run that failed to log to the end, or exported
before the run was continued) is replaced. A report written into
``PATH/report`` (``lossbench report PATH``) goes with the sweep's parent run,
or with the run where PATH is one. TensorBoard: a run's log directory is
written afresh at each export."""

import math
import os
from pathlib import Path

from lossbench.errors import UserError
from lossbench.tracking.guard import one_line
from lossbench.tracking.record import SWEEP_MARKERS, TrackedRun, diagnosis_of
from lossbench.training.run_dir import RunDir

TOOLS = ("mlflow", "tensorboard")
# the folders of an output directory (paths.output_dir) that hold runs
OUTPUT_PARTS = ("runs", "multirun", "search")
REPORT = "report"


def output_dir_of(path: Path) -> Path:
    """The output directory ``path`` was written under (the folder holding its
    runs/, multirun/ or search/), or the current directory."""
    path = Path(path).resolve()
    for folder in (path, *path.parents):
        if folder.name in OUTPUT_PARTS:
            return folder.parent
    if any((path / part).is_dir() for part in OUTPUT_PARTS):
        return path
    return Path.cwd()


def _rows(metrics) -> list[dict]:
    if "epoch" not in metrics:
        return []
    rows = []
    for record in metrics.to_dict("records"):
        row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}
        if row["epoch"] is not None:
            rows.append({**row, "epoch": int(row["epoch"])})
    return rows


def _summary(run) -> dict:
    """The run's summary as training left it; a diagnosis judged from its curves where it wrote none."""
    summary = dict(run.summary)
    summary["status"] = run.status
    if diagnosis_of(summary) is None:
        summary["diagnosis"] = run.diagnosis().record()
    return summary


def _tracker(tool: str, tracking_uri: str | None, logdir: str | None, path: Path):
    if tool == "mlflow":
        from lossbench.tracking.mlflow_logger import MlflowLogger, sqlite_uri

        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or sqlite_uri(output_dir_of(path))
        return MlflowLogger(uri, export=True)
    from lossbench.tracking.tensorboard_logger import TensorBoardLogger

    return TensorBoardLogger(Path(logdir).expanduser().resolve() if logdir else None, export=True)


def _export_run(tool, tracking_uri, logdir, given: Path, run):
    tracker = _tracker(tool, tracking_uri, logdir, given)
    summary = _summary(run)
    tracked = TrackedRun.of(run.path, run.config, summary.get("started_at"), run.overrides)
    rows = _rows(run.metrics)
    try:
        if tool == "mlflow":
            tracker.start(tracked, rows, finished_at=summary.get("finished_at"))
        else:
            tracker.start(tracked, rows)
        tracker.finish(summary)
    except Exception as e:  # noqa: BLE001 - the store's errors, in one line
        try:
            tracker.abandon()
        except Exception:  # noqa: BLE001
            pass
        raise UserError(f"{tool}: {run.path}: {one_line(e)}") from None
    return tracker, tracked


def _where(tool: str, tracker, logdir: str | None) -> str:
    if tool == "mlflow":
        return f"{tracker.uri}; open it with: mlflow ui --backend-store-uri {tracker.uri}"
    folder = Path(logdir).expanduser().resolve() if logdir else tracker.dir.parent
    return f"{folder}; open it with: tensorboard --logdir {folder}"


def export_main(tool: str, paths: list[str], tracking_uri: str | None = None, logdir: str | None = None) -> list:
    """Export every run under ``paths``; returns (tracker, tracked run) for each run exported or skipped."""
    from lossbench.report.runs import find_run_dirs, load_run

    if tool not in TOOLS:
        raise UserError(f"{tool!r} is not a tracker lossbench exports to: choose {' or '.join(TOOLS)}")
    if tool == "mlflow" and logdir is not None:
        raise UserError("--logdir is for tensorboard: mlflow writes to --tracking-uri")
    if tool == "tensorboard" and tracking_uri is not None:
        raise UserError("--tracking-uri is for mlflow: tensorboard writes to --logdir")
    done, lines = [], []
    for given in map(Path, paths):
        exported = []
        for run_dir in find_run_dirs([str(given)]):
            run = load_run(run_dir.resolve(), run_dir.name)
            if run.writer is not None:
                lines.append(f"  {run.path}: left out, still being written by {run.writer.describe()}: export it "
                             f"once it ends")
                continue
            tracker, tracked = _export_run(tool, tracking_uri, logdir, given, run)
            exported.append((tracker, tracked))
            skipped = getattr(tracker, "skipped", False)
            lines.append(f"  {run.path}: {'already there, as it is now: skipped' if skipped else 'exported'}")
        if exported and (given / REPORT).is_dir():
            try:
                if tool == "mlflow":
                    _attach_report(given, exported)
                else:
                    _report_images(given, exported)
            except Exception as e:  # noqa: BLE001 - the store's errors, in one line
                raise UserError(f"{tool}: {given / REPORT}: {one_line(e)}") from None
        done += exported
    if not done:
        raise UserError(f"nothing to export under {', '.join(paths)}: every run is still being written")
    skipped = sum(bool(getattr(t, "skipped", False)) for t, _ in done)
    print("\n".join(lines))
    print(f"{tool}: {len(done) - skipped} run(s) exported, {skipped} already there, into {_where(tool, done[-1][0], logdir)}")
    return done


def _is_sweep(given: Path) -> bool:
    return any((given / marker).exists() for marker in SWEEP_MARKERS)


def _report_images(given: Path, exported: list) -> None:
    """The report's figures as TensorBoard images, named by their files: a run
    ``report`` beside a sweep's jobs, or inside a run's log."""
    import numpy as np
    from PIL import Image
    from torch.utils.tensorboard import SummaryWriter

    tracker, _ = exported[-1]
    is_sweep = _is_sweep(given)
    folder = (tracker.dir.parent if is_sweep else tracker.dir) / REPORT
    for old in folder.glob("events.out.tfevents.*"):  # exported again: replaced
        old.unlink()
    writer = SummaryWriter(log_dir=str(folder))
    for png in sorted((given / REPORT).glob("*.png")):
        with Image.open(png) as image:
            writer.add_image(png.stem, np.asarray(image.convert("RGB")), 0, dataformats="HWC")
    writer.close()


def _attach_report(given: Path, exported: list) -> None:
    """The report of a sweep goes with its parent run; of a run, with that run."""
    tracker, tracked = exported[-1]
    is_sweep = _is_sweep(given)
    if is_sweep and tracker.parent_id:
        tracker.log_folder(tracker.parent_id, given / REPORT, REPORT)
    elif (given / RunDir.METRICS).exists() or (given / RunDir.SUMMARY).exists():
        tracker.log_folder(tracker.run_id, given / REPORT, REPORT)
