"""Which classes each group helps: per setting, each group's test accuracy per
class at the compared epoch, averaged over its runs, and its difference from the
baseline group's. With many classes the report shows those where the groups
differ most; the whole table goes into a CSV beside it."""

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lossbench.report.aggregate import group_label
from lossbench.report.figures import group_names
from lossbench.report.runs import Run

# the CSV beside the report that holds every class: not per_class.csv, which --out pointed at a run's own
# folder would overwrite
PER_CLASS_CSV = "per_class_accuracy.csv"
# more classes than this: the report shows SHOWN_CLASSES of them, the CSV all
MANY_CLASSES = 30
SHOWN_CLASSES = 20
# the per-class test accuracies per_class.csv keeps: the selected epoch's and the last epoch's
SELECTED_COLUMN, LAST_COLUMN = "test_acc_selected", "test_acc_last"


@dataclass
class PerClass:
    # every class of every setting: [setting], class, name, train_count, a mean per group, the differences
    table: pd.DataFrame
    shown: pd.DataFrame  # the rows the report shows, the same columns
    groups: list[str] = field(default_factory=list)  # the columns of group means, as named in the tables
    differences: list[str] = field(default_factory=list)  # the columns of differences from the baseline
    notes: list[str] = field(default_factory=list)  # what was shortened or left out: sentences, each whole
    head_first: list[bool] = field(default_factory=list)  # per setting shown: classes by training count (long-tailed)


def difference_column(group: str, baseline: str) -> str:
    return f"{group} - {baseline}"


def class_accuracy(run: Run, epoch: str) -> pd.DataFrame | None:
    """The run's classes (class, name, train_count, accuracy) in class order, with their test accuracy at the
    epoch the report compares (``Run.epoch_index``); None where per_class.csv holds no numbers for that epoch
    (a run from before it was written, or an oracle epoch that is neither the selected nor the last one)."""
    pc, index = run.per_class, run.epoch_index(epoch)
    if pc is None or index is None or not {"class", "train_count"} <= set(pc.columns) \
            or not pd.to_numeric(pc["class"], errors="coerce").notna().all():
        return None
    for column, at in ((SELECTED_COLUMN, run.selected_index()), (LAST_COLUMN, run.metrics.index[-1])):
        if index == at and column in pc and pc[column].notna().any():
            pc = pc.sort_values("class", kind="stable")
            return pd.DataFrame({"class": pc["class"].astype(int).to_numpy(), "name": run.class_labels(pc["class"]),
                                 "train_count": pd.to_numeric(pc["train_count"], errors="coerce").to_numpy(),
                                 "accuracy": pd.to_numeric(pc[column], errors="coerce").to_numpy()})
    return None


def same_classes(frames: dict[int, pd.DataFrame], runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """(the runs pooled, those left out): the most common number of classes, and among runs that recorded names,
    the most common names; a run without names is taken for the same classes as its setting's others."""
    sizes = Counter(len(frames[id(run)]) for run in runs)
    size = sizes.most_common(1)[0][0]
    named = Counter(tuple(run.class_names()) for run in runs if len(frames[id(run)]) == size and run.class_names())
    names = named.most_common(1)[0][0] if named else None
    kept = [run for run in runs if len(frames[id(run)]) == size
            and (names is None or run.class_names() is None or tuple(run.class_names()) == names)]
    return kept, [run for run in runs if run not in kept]


def _train_counts(frames: list[pd.DataFrame]) -> tuple[np.ndarray, bool]:
    """Each class's training images, and whether the runs agree on them; their mean where runs trained on
    different counts (where the grouping key changes the data, as ``dataset.imbalance_ratio`` does)."""
    counts = np.array([frame["train_count"].to_numpy(dtype=float) for frame in frames])
    return counts.mean(axis=0), bool((counts == counts[0]).all())


@dataclass
class SettingTable:
    table: pd.DataFrame  # class, name, train_count, a mean per group, a difference per group but the baseline
    groups: list[str]  # the columns of means
    differences: list[str]  # the columns of differences
    notes: list[str]
    head_first: bool = False  # classes by training count, most first: on long-tailed data


def setting_table(runs: list[Run], key: str, baseline: str | None, epoch: str, order: list[str]) -> SettingTable:
    """One setting's classes: name, training images, each group's mean accuracy over its runs, each group's
    difference from the baseline's; head first on long-tailed data, else in class order. And what was left out."""
    frames = {id(run): frame for run in runs if (frame := class_accuracy(run, epoch)) is not None}
    notes = []
    without = [run for run in runs if id(run) not in frames]
    if without:
        notes.append(f"{len(without)} of {len(runs)} runs {'holds' if len(without) == 1 else 'hold'} no per-class "
                     f"test accuracy for that epoch and {'is' if len(without) == 1 else 'are'} left out of this table "
                     f"({', '.join(run.name for run in without)})")
    if not frames:
        return SettingTable(pd.DataFrame(), [], [], notes)
    kept, other = same_classes(frames, [run for run in runs if id(run) in frames])
    if other:
        notes.append(f"{len(other)} run{'s' if len(other) > 1 else ''} trained on other classes than the rest "
                     f"{'are' if len(other) > 1 else 'is'} not pooled with them here "
                     f"({', '.join(run.name for run in other)})")
    counts, agree = _train_counts([frames[id(run)] for run in kept])
    if not agree:
        notes.append("the runs trained on different numbers of images per class: their mean is shown")
    table = frames[id(kept[0])][["class", "name"]].assign(train_count=counts)
    names = group_names(kept, key)
    present = list(dict.fromkeys(group_label(run, key) for run in kept))
    labels = [g for g in order if g in present] + [g for g in present if g not in order]
    for label in labels:
        accuracies = np.array([frames[id(run)]["accuracy"].to_numpy(dtype=float)
                               for run in kept if group_label(run, key) == label])
        # a class no run of the group has a number for stays empty, without a warning
        table[names[label]] = [column[np.isfinite(column)].mean() if np.isfinite(column).any() else np.nan
                               for column in accuracies.T]
    differences = []
    if baseline in labels:
        for label in labels:
            if label != baseline:
                differences.append(difference_column(names[label], names[baseline]))
                table[differences[-1]] = table[names[label]] - table[names[baseline]]
    head_first = any(run.groups() is not None for run in kept)  # long-tailed
    if head_first:
        table = table.sort_values("train_count", ascending=False, kind="stable")
    return SettingTable(table.reset_index(drop=True), [names[label] for label in labels], differences, notes,
                        head_first)


def shown_rows(table: pd.DataFrame, groups: list[str]) -> tuple[pd.DataFrame, str]:
    """All the rows of a few classes; of many, the SHOWN_CLASSES where the groups' means lie furthest apart (the
    first ones where there is one group), in the table's order. And the sentence that says which."""
    if len(table) <= MANY_CLASSES:
        return table, ""
    if len(groups) < 2:
        return table.head(SHOWN_CLASSES), f"the first {SHOWN_CLASSES} of {len(table)} classes are shown"
    spread = table[groups].max(axis=1) - table[groups].min(axis=1)
    chosen = spread.sort_values(ascending=False, kind="stable").index[:SHOWN_CLASSES]
    return (table.loc[sorted(chosen)],
            f"{SHOWN_CLASSES} of {len(table)} classes are shown: those where the groups' mean accuracies lie "
            f"furthest apart (largest minus smallest)")


def _sentence(note: str, setting: str) -> str:
    return f"With {setting}: {note}." if setting else f"{note[0].upper()}{note[1:]}."


def _ranking(summaries: pd.DataFrame, key: str, setting: str) -> list[str]:
    """A setting's groups in the comparison table's order (summarize_groups's rows, ``setting`` added)."""
    if key not in summaries or "setting" not in summaries:
        return []
    return list(summaries.loc[summaries["setting"] == setting, key])


def per_class_tables(settings: dict[str, list[Run]], key: str, baseline: str | None, epoch: str,
                     summaries: pd.DataFrame) -> PerClass | None:
    """Every setting's per-class table (a ``setting`` column where there are several), its groups in the order
    of ``summaries`` (the comparison's); None where no run holds per-class numbers for the compared epoch."""
    tables, shown, notes, groups, differences, head_first = [], [], [], [], [], []
    for label, runs in settings.items():
        part = setting_table(runs, key, baseline, epoch, _ranking(summaries, key, label))
        notes += [_sentence(note, label if len(settings) > 1 else "") for note in part.notes]
        if not len(part.table):
            continue
        groups += [g for g in part.groups if g not in groups]
        differences += [d for d in part.differences if d not in differences]
        rows, note = shown_rows(part.table, part.groups)
        if note:
            notes.append(_sentence(note, label if len(settings) > 1 else ""))
        tag = {"setting": label} if len(settings) > 1 else {}
        tables.append(part.table.assign(**tag))
        shown.append(rows.assign(**tag))
        head_first.append(part.head_first)
    if not tables:
        return None
    columns = (["setting"] if len(settings) > 1 else []) + ["class", "name", "train_count"] + groups + differences
    return PerClass(pd.concat(tables, ignore_index=True).reindex(columns=columns),
                    pd.concat(shown, ignore_index=True).reindex(columns=columns), groups, differences, notes,
                    head_first)
