"""Finding runs on disk and reading what they wrote; a run that failed, is still
running or wrote broken files is read as far as it goes, never dropped. A run
whose folder a process still holds is ``running``, never read as finished."""

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lossbench.errors import UserError
from lossbench.diagnosis import Diagnosis, RunFacts, diagnose
from lossbench.posthoc import posthoc_results
from lossbench.training.folder_lock import LockOwner, live_owner
from lossbench.training.run_dir import RunDir
from lossbench.training.selection import Selection, selection_for
from lossbench.training.sweep import job_order

DEFAULT_SELECT_METRIC = "val_balanced_acc"
# copies of a run's files that are not runs: an earlier attempt's (a sweep's
# failed job run again), and the trackers' (MLflow's artifacts beside its
# store, W&B's files in <run>/wandb/)
NOT_RUNS = ("attempts", "mlartifacts", "wandb")


@dataclass
class Run:
    path: Path
    name: str  # short, unique within the report
    metrics: pd.DataFrame
    summary: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    per_class: pd.DataFrame | None = None
    calibration: pd.DataFrame | None = None
    writer: LockOwner | None = None  # the process still writing the run, if any
    _diagnosis: Diagnosis | None = field(default=None, repr=False)
    _logits: dict | None = field(default=None, repr=False)
    _posthoc: dict | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        """``running`` while a process holds the run's folder, whatever its files
        say so far; ``killed`` for a run that says running but that nobody holds."""
        if self.writer is not None:
            return "running"
        status = self.summary.get("status", "unknown")
        return "killed" if status == "running" else status

    @property
    def requeues(self) -> int | None:
        """How many times a cluster's stop had the run's job requeued; None where its launcher does not requeue."""
        return self.summary.get("requeues")

    def config_value(self, key: str):
        """A config value by dotted key; a group name (``loss``) means its ``name``."""
        node = self.config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node.get("name") if isinstance(node, dict) else node

    @property
    def label(self) -> str:
        """The run's name with its command-line overrides, for titles and listings."""
        shown = " ".join(o for o in self.overrides if not o.startswith(("trainer.progress", "trainer.resume", "hydra.")))
        return f"{self.name} ({shown})" if shown else self.name

    @property
    def seed(self):
        return self.config_value("seed")

    @property
    def selection(self) -> dict:
        """How the run chose the epoch it reports (summary.json's record; for a
        run without one, the same rule: best val_balanced_acc, else the last epoch)."""
        recorded = self.summary.get("selection")
        if isinstance(recorded, dict):
            return recorded
        m = self.metrics
        has_validation = DEFAULT_SELECT_METRIC in m and m[DEFAULT_SELECT_METRIC].notna().any()
        return selection_for(DEFAULT_SELECT_METRIC, has_validation).record()

    def selected_index(self):
        """The row of metrics.csv at the selected epoch (None for a run with no epoch)."""
        m = self.metrics
        if not len(m):
            return None
        metric = self.selection.get("metric")
        if metric is None or metric not in m or not m[metric].notna().any():
            return m.index[-1]
        # the rule the run selected by, ties included
        selection = Selection(metric, "")
        keys = {index: selection.key(row) for index, row in zip(m.index, m.to_dict("records"))}
        return max((k for k in keys if keys[k] is not None), key=lambda k: keys[k])

    def epoch_index(self, epoch: str):
        """The row of metrics.csv whose numbers a report compares at ``epoch``: the
        selected one, the last one, or the best test accuracy's (``oracle``: optimistic)."""
        m = self.metrics
        if not len(m):
            return None
        if epoch == "final":
            return m.index[-1]
        if epoch == "oracle":
            return m["test_acc"].idxmax() if "test_acc" in m and m["test_acc"].notna().any() else None
        return self.selected_index()

    def saved_logits(self) -> dict | None:
        """The validation and test logits of the selected epoch, where the run saved them."""
        if self._logits is None:
            self._logits = RunDir(self.path).logits("selected") or {}
        return self._logits or None

    def groups(self) -> list[str] | None:
        """head / medium / tail per class, from per_class.csv (None on balanced data)."""
        pc = self.per_class
        if pc is None or "group" not in pc:
            return None
        groups = [g if isinstance(g, str) else "" for g in pc["group"]]  # empty cells read as NaN
        return groups if any(groups) else None

    def class_names(self) -> list[str] | None:
        """The classes' names in class order (None for a run from before names were recorded).
        summary.json's first: per_class.csv read back turns a name such as "007" or "NA" into a number or a gap."""
        names = self.summary.get("class_names")
        if isinstance(names, list) and names:
            return [str(name) for name in names]
        pc = self.per_class
        if pc is None or not {"class", "name"} <= set(pc.columns) or not pc["name"].notna().all():
            return None
        return [str(name) for name in pc.sort_values("class", kind="stable")["name"]]

    def class_labels(self, classes) -> list[str]:
        """Each of ``classes`` (indices) by its name, or by its index where the run recorded no names."""
        classes = [int(c) for c in classes]
        names = self.class_names()
        if names is None or any(c >= len(names) for c in classes):
            return [str(c) for c in classes]
        return [names[c] for c in classes]

    def posthoc(self) -> dict:
        """The post-hoc steps of the selected epoch, redone from the saved logits
        where the run has them, else as its summary recorded them."""
        if self._posthoc is None:
            saved, counts = self.saved_logits(), self.summary.get("class_counts")
            results = posthoc_results((saved["val_logits"], saved["val_labels"]),
                                      (saved["test_logits"], saved["test_labels"]), counts, self.groups()) \
                if saved is not None and "val_logits" in saved and counts else None
            if results is not None:
                self._posthoc = {"epoch": saved["epoch"], **results}
            else:
                self._posthoc = self.summary.get("posthoc") or {}
        return self._posthoc

    def diagnosis(self) -> Diagnosis:
        """What the run wrote at its end; judged from its curves so far while it
        is still written, when it was killed before it could say, or when another
        version wrote it."""
        if self._diagnosis is None:
            written = self.summary.get("diagnosis") if self.writer is None else None
            self._diagnosis = Diagnosis.from_record(written)
            if self._diagnosis is None:
                facts = RunFacts.from_summary(self.summary)
                selected = self.selected_index()
                if selected is not None and "epoch" in self.metrics:
                    facts.selected_epoch = int(self.metrics.loc[selected, "epoch"])
                self._diagnosis = diagnose(self.metrics, facts)
        return self._diagnosis


def find_run_dirs(paths: list[str]) -> list[Path]:
    """Every directory under ``paths`` that holds a metrics.csv or a summary.json
    (a job that failed before its first epoch has only the latter), in path order."""
    found = []
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise UserError(f"{root} does not exist: give a run directory, a multirun directory or a folder of runs")
        runs = {p.parent for name in (RunDir.METRICS, RunDir.SUMMARY) for p in root.rglob(name)}
        # nor are lossbench eval's folders (NOT_RUNS; eval.json beside their metrics.csv)
        runs = {r for r in runs
                if not set(NOT_RUNS) & set(r.relative_to(root).parts) and not (r / "eval.json").is_file()}
        found += sorted(runs, key=lambda p: [job_order(s) for s in p.parts])
    if not found:
        raise UserError(
            f"no runs under {', '.join(paths)}: a run directory holds metrics.csv (written by lossbench train)"
        )
    return found


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return None


def load_run(path: Path, name: str) -> Run:
    run_dir = RunDir(path)
    metrics = _read_csv(run_dir / RunDir.METRICS)
    if metrics is None:
        metrics = pd.DataFrame()
    numeric = [c for c in metrics.columns if c != "epoch"]
    metrics[numeric] = metrics[numeric].apply(pd.to_numeric, errors="coerce")
    return Run(
        path=path,
        name=name,
        metrics=metrics,
        summary=run_dir.summary() or {},
        config=run_dir.config() or {},
        overrides=run_dir.overrides() or [],
        per_class=_read_csv(run_dir / RunDir.PER_CLASS),
        calibration=_read_csv(run_dir / RunDir.CALIBRATION),
        writer=live_owner(path),
    )


def being_written(runs: list[Run]) -> str:
    """A sentence naming the runs still being written, or ""."""
    busy = [f"{run.name} (by {run.writer.describe()})" for run in runs if run.writer is not None]
    return f"Still being written, shown as far as they got: {'; '.join(busy)}." if busy else ""


def load_runs(paths: list[str]) -> list[Run]:
    dirs = [d.resolve() for d in find_run_dirs(paths)]
    root = Path(paths[0]).resolve() if len(paths) == 1 else None
    runs = []
    for d in dirs:
        if root is not None and d.is_relative_to(root) and d != root:
            name = str(d.relative_to(root))
        else:
            name = d.name if root is not None else str(d)
        runs.append(load_run(d, name))
    return runs
