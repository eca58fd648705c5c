"""Runs of one setting grouped by a config key with seeds pooled: means,
standard deviations, a ranking, and per-seed paired differences against a
baseline group; and the groups' means across settings."""

import math

import numpy as np
import pandas as pd

from lossbench.report.runs import Run
from lossbench.report.settings import setting
from lossbench.report.statistics import Comparison, compare

METRICS = ("test_acc", "test_balanced_acc", "test_tail_acc", "test_ece", "test_nll")
# the selected epoch's numbers after the post-hoc steps (fitted on validation), beside the raw ones
POSTHOC_METRICS = ("test_ece_scaled", "test_nll_scaled", "test_balanced_acc_adjusted", "test_tail_acc_adjusted")
STAGES = ("selected", "final")
# what comparisons, the ranking and the headline judge by, at the epoch ``lossbench report --epoch`` names
COMPARED = "test_balanced_acc"
EPOCHS = ("selected", "final", "oracle")


def run_metrics(run: Run) -> dict:
    """selected_<metric> (at the epoch the run selected, see Run.selection),
    final_<metric> (last epoch), posthoc_<metric>, and oracle_<metric> (at the
    epoch of best test accuracy: optimistic, for comparison with papers only)."""
    m = run.metrics
    out = {"epochs": len(m)}
    if "test_acc" not in m or not m["test_acc"].notna().any():
        return out
    indices = {stage: run.epoch_index(stage) for stage in EPOCHS}
    for stage in ("selected", "oracle"):
        out[f"{stage}_epoch"] = int(m["epoch"].loc[indices[stage]])
    for metric in METRICS:
        if metric in m and m[metric].notna().any():
            for stage, index in indices.items():
                out[f"{stage}_{metric}"] = float(m[metric].loc[index])
    posthoc = run.posthoc()
    for metric in POSTHOC_METRICS:
        if posthoc.get(metric) is not None:
            out[f"posthoc_{metric}"] = float(posthoc[metric])
    return out


def group_label(run: Run, key: str) -> str:
    value = run.config_value(key)
    return "?" if value is None else str(value)


def summarize_groups(runs: list[Run], key: str, epoch: str = "selected") -> pd.DataFrame:
    """One row per group: n runs, mean and sample standard deviation of each metric."""
    rows = []
    labels = list(dict.fromkeys(group_label(r, key) for r in runs))
    for label in labels:
        members = [run_metrics(r) for r in runs if group_label(r, key) == label]
        row = {key: label, "runs": len(members)}
        columns = [f"{stage}_{metric}" for stage in dict.fromkeys((*STAGES, epoch)) for metric in METRICS]
        columns += [f"posthoc_{metric}" for metric in POSTHOC_METRICS]
        for column in columns:
            values = np.array([m[column] for m in members if column in m], dtype=float)
            if len(values):
                row[f"{column}_mean"] = float(values.mean())
                row[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    if f"{epoch}_{COMPARED}_mean" in table:
        table = table.sort_values(f"{epoch}_{COMPARED}_mean", ascending=False, kind="stable").reset_index(drop=True)
        table.insert(0, "rank", range(1, len(table) + 1))
    return table


def settings_table(runs: list[Run], key: str, metric: str = f"selected_{COMPARED}") -> pd.DataFrame:
    """One row per setting, one column per group: the mean of ``metric`` over seeds."""
    cells = {}
    for r in runs:
        value = run_metrics(r).get(metric)
        if value is not None:
            cells.setdefault((setting(r, key), group_label(r, key)), []).append(value)
    table = pd.Series({k: float(np.mean(v)) for k, v in cells.items()}, dtype=float)
    return table.unstack() if len(table) else pd.DataFrame()


def paired_differences(runs: list[Run], key: str, baseline: str, metric: str = f"selected_{COMPARED}") -> list[Comparison]:
    """Each group against the baseline on ``metric``, runs paired by seed and settings."""
    base = {(setting(r, key), r.seed): run_metrics(r).get(metric) for r in runs if group_label(r, key) == baseline}
    results = []
    for label in dict.fromkeys(group_label(r, key) for r in runs):
        if label == baseline:
            continue
        pairs = []
        for r in runs:
            if group_label(r, key) != label:
                continue
            value, reference = run_metrics(r).get(metric), base.get((setting(r, key), r.seed))
            if value is not None and reference is not None:
                pairs.append((value, reference))
        results.append(compare(label, baseline, metric, pairs))
    return results
