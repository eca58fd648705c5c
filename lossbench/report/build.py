"""``lossbench report``: pictures, tables and a diagnosis of runs, sweeps or
folders of runs, written as report.md, report.html, runs.csv and PNGs."""

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from lossbench.errors import UserError
from lossbench.formatting import format_mean_std, format_number
from lossbench.report import figures
from lossbench.report.aggregate import (
    COMPARED,
    group_label,
    paired_differences,
    run_metrics,
    settings_table,
    summarize_groups,
)
from lossbench.report.headline import headline
from lossbench.report.per_class import PER_CLASS_CSV, PerClass, per_class_tables
from lossbench.report.statistics import Comparison, Ranking, few_seeds_line, rank_across_settings
from lossbench.report.render import EPOCH_NAMES, render_html, render_markdown, selection_sentence
from lossbench.report.runs import Run, being_written, load_runs
from lossbench.report.settings import check_group_by, pool


@dataclass
class Report:
    runs: list[Run]
    runs_table: pd.DataFrame
    groups: pd.DataFrame
    paired: list[Comparison]
    group_by: str
    baseline: str | None
    images: dict[str, Path]  # title -> PNG
    out_dir: Path
    ranking: Ranking | None = None  # across settings, where the runs hold more than one
    headline: str = ""
    epoch: str = "selected"  # whose numbers are compared
    left_out: list[str] = field(default_factory=list)  # what was not pooled, and why
    settings: list[str] = field(default_factory=list)  # what sets each compared setting apart ("" for one)
    per_class: PerClass | None = None  # each group's test accuracy per class, where the runs hold it


def _override_values(run: Run) -> dict:
    values = {}
    for override in run.overrides:
        key, _, value = override.lstrip("+~").partition("=")
        values[key] = value
    return values


def runs_table(runs: list[Run]) -> pd.DataFrame:
    """One row per run; integer columns stay integers even where a run lacks them."""
    rows = []
    for run in runs:
        d = run.diagnosis()
        rows.append({
            "run": str(run.path),
            "status": run.status,
            "requeues": run.requeues,
            **_override_values(run),
            **run_metrics(run),
            "diagnosis": d.label,
            "diagnosis_onset_epoch": d.onset_epoch,
        })
    table = pd.DataFrame(rows)
    for column in ("requeues", "epochs", "selected_epoch", "oracle_epoch", "diagnosis_onset_epoch"):
        if column in table:
            table[column] = table[column].astype("Int64")
    return table


def _baseline(given: str | None, group_by: str, labels: list[str]) -> str | None:
    """The group the others are compared against: as given (it must be one), else ce where there is one."""
    labels = list(dict.fromkeys(labels))
    if given is None:
        return "ce" if "ce" in labels else None
    if given not in labels:
        raise UserError(f"--baseline {given} is not a value of {group_by} in these runs: valid values are "
                        f"{', '.join(labels)}")
    return given


def _in_setting(comparisons: list[Comparison], label: str) -> list[Comparison]:
    return [replace(comparison, setting=label) for comparison in comparisons]


def _image_name(run: Run) -> str:
    return "run_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in run.name) + ".png"


def build_report(paths: list[str], out: str | None, group_by: str = "loss", baseline: str | None = None,
                 epoch: str = "selected", include_unfinished: bool = False) -> Report:
    """``epoch``: which epoch's numbers the ranking, the comparisons and the headline use.
    ``baseline``: None compares against ce where there is a ce group."""
    runs = load_runs(paths)
    check_group_by(runs, group_by)
    # one path: the report sits beside its runs; several: in the current directory
    out_dir = Path(out) if out else (Path(paths[0]) / "report" if len(paths) == 1 else Path("report"))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the report into {out_dir}: {e.strerror or e}; choose another with --out DIR") from None
    pooled = pool(runs, group_by, group_label, include_unfinished)
    groups = pd.concat([summarize_groups(members, group_by, epoch).assign(setting=label)
                        for label, members in pooled.settings.items()] or [pd.DataFrame()], ignore_index=True)
    baseline = _baseline(baseline, group_by, [group_label(r, group_by) for r in pooled.runs])
    compared = f"{epoch}_{COMPARED}"
    paired = [comparison for label, members in pooled.settings.items() if baseline
              for comparison in _in_setting(paired_differences(members, group_by, baseline, compared), label)]
    per_class = per_class_tables(pooled.settings, group_by, baseline, epoch, groups)
    settings = settings_table(pooled.runs, group_by, compared)
    ranking = rank_across_settings(settings) if len(settings) >= 2 and settings.shape[1] >= 2 else None
    images = {}
    try:
        if ranking is not None and ranking.critical_difference is not None:
            images["average rank across settings"] = figures.save(
                figures.critical_difference_figure(ranking), out_dir / "critical_difference.png")
        for number, (label, members) in enumerate(pooled.settings.items()):
            if len(members) < 2:
                continue
            suffix, tag = (f" ({label})", f"_{number + 1}") if label else ("", "")
            for title, name, figure in figures.comparison_figures(
                    members, groups[groups["setting"] == label], [c for c in paired if c.setting == label], group_by,
                    epoch, EPOCH_NAMES[epoch], compared):
                images[title + suffix] = figures.save(figure, out_dir / name.replace(".png", f"{tag}.png"))
        for run in runs:
            images[run.name] = figures.save(figures.run_figure(run), out_dir / _image_name(run))
            posthoc = figures.posthoc_figure(run)
            if posthoc is not None:
                images[f"post-hoc: {run.name}"] = figures.save(posthoc, out_dir / ("posthoc_" + _image_name(run)))
        table = runs_table(runs)
        table.to_csv(out_dir / "runs.csv", index=False, na_rep="")
        if per_class is not None:
            # the runs wrote their accuracies to 6 significant digits: more would be noise of the mean
            per_class.table.to_csv(out_dir / PER_CLASS_CSV, index=False, na_rep="", float_format="%.6g")
        else:  # an earlier report's, into the same folder, would pass for this one's
            (out_dir / PER_CLASS_CSV).unlink(missing_ok=True)
        headlines = [headline([c for c in paired if c.setting == label], members, epoch, where=label)
                     for label, members in pooled.settings.items()]
        report = Report(runs, table, groups, paired, group_by, baseline, images, out_dir, ranking,
                        " ".join(h for h in headlines if h), epoch, pooled.left_out, list(pooled.settings), per_class)
        (out_dir / "report.md").write_text(render_markdown(report))
        (out_dir / "report.html").write_text(render_html(report))
    except OSError as e:
        raise UserError(f"cannot write the report into {out_dir}: {e.strerror or e}; choose another with --out DIR") from None
    return report


def sweep_headline(sweep_dir: Path, swept: list[str], values: dict[str, list[str]]) -> str:
    """The headline of a sweep that compares one swept key (over seeds), for the end of ``lossbench train -m``:
    against ce where ce is one of the values, else against the first."""
    compared = [key for key in swept if key != "seed"]
    if len(compared) != 1 or "seed" not in swept:
        return ""
    key = compared[0]
    baseline = "ce" if "ce" in values[key] else values[key][0]
    runs = pool(load_runs([str(sweep_dir)]), key, group_label).runs  # the finished ones
    return headline(paired_differences(runs, key, baseline), runs)


def console_summary(report: Report) -> str:
    lines = [report.headline, ""] if report.headline else []
    lines.append(f"{len(report.runs)} runs: " + ", ".join(
        f"{n} {s}" for s, n in pd.Series([r.status for r in report.runs]).value_counts().items()))
    if being_written(report.runs):
        lines.append(being_written(report.runs))
    g = report.groups
    if len(g):
        lines.append(f"\nby {report.group_by} (mean ± std over runs). {selection_sentence(report.runs)}")
        lines += [f"  {line}" for line in report.left_out]
        names = figures.group_names(report.runs, report.group_by)
        for _, row in g.iterrows():
            if len(report.settings) > 1 and (row.get("rank") == 1):
                lines.append(f"  {row['setting']}:")
            compared, final = (format_mean_std(row.get(f"{stage}_test_balanced_acc_mean"),
                                               row.get(f"{stage}_test_balanced_acc_std")) for stage in (report.epoch, "final"))
            lines.append(
                f"  {row.get('rank', '-')}. {names.get(row[report.group_by], row[report.group_by]):<20} runs {row['runs']:>2}  "
                f"{EPOCH_NAMES[report.epoch]} balanced acc {compared}  final balanced acc {final}"
            )
    if report.paired:
        lines.append(f"\nagainst {report.group_by}={report.baseline} (paired by seed, {EPOCH_NAMES[report.epoch]} epoch's test "
                     f"balanced accuracy, 95% bootstrap CI):")
        for p in report.paired:
            where = f" [{p.setting}]" if p.setting else ""
            lines.append(f"  {p.group + where:<20} {p.n} pairs  diff {format_number(p.mean)} [{format_number(p.low)}, "
                         f"{format_number(p.high)}]  P(improvement) {format_number(p.p_improvement, 2)}  {p.verdict}")
        lines += [f"  {line}" for line in map(few_seeds_line, report.paired) if line]
    lines.append("\ndiagnosis:")
    for run in report.runs:
        d = run.diagnosis()
        onset = f" since epoch {d.onset_epoch}" if d.onset_epoch is not None else ""
        requeued = f" (requeued {run.requeues}x)" if run.requeues else ""
        lines.append(f"  {run.label:<40} [{run.status}{requeued}] {d.label}{onset}")
    tables = "runs.csv" + (f", {PER_CLASS_CSV}" if report.per_class is not None else "")
    lines.append(f"\nwrote {report.out_dir / 'report.html'}, report.md, {tables} and {len(report.images)} figures")
    return "\n".join(lines)


def report_main(paths: list[str], out: str | None, group_by: str = "loss", baseline: str | None = None,
                epoch: str = "selected", include_unfinished: bool = False) -> Report:
    report = build_report(paths, out, group_by, baseline, epoch, include_unfinished)
    print(console_summary(report))
    return report
