"""report.md (pictures beside it) and report.html (one self-contained file:
pictures embedded, opens offline)."""

import base64
import html

import pandas as pd

from lossbench.formatting import format_mean_std, format_number
from lossbench.report.aggregate import COMPARED, STAGES, group_label, run_metrics
from lossbench.report.figures import (CURVES_FIGURE, GROUPS_FIGURE, PAIRED_FIGURE, TAIL_FIGURE, numeric_values,
                                      short_numbers)
from lossbench.report.runs import being_written
from lossbench.report.statistics import few_seeds_line


# how each epoch is named wherever it is shown: the oracle always marked
EPOCH_NAMES = {"selected": "selected", "final": "final", "oracle": "oracle (best test epoch: optimistic)"}


def posthoc_sentence(runs) -> str:
    """Where the post-hoc numbers come from, and for how many runs a temperature could be fitted."""
    with_posthoc = [run.posthoc() for run in runs if run.posthoc()]
    if not with_posthoc:
        return "No run has post-hoc numbers (they need a validation split)."
    fitted = sum(p.get("temperature") is not None for p in with_posthoc)
    return (f"Temperature scaling and logit adjustment are fitted on the validation split; a temperature was "
            f"fitted for {fitted} of {len(with_posthoc)} runs (not where the split has no error at the selected "
            f"epoch: there, sharper is always better).")


def pooling_sentence(report) -> str:
    """Which runs were pooled: only those agreeing in everything but the grouping key and the seed."""
    split = (f"The runs differ in more than `{report.group_by}` and the seed, so each setting is compared on its own: "
             f"{'; '.join(report.settings)}. " if len(report.settings) > 1 else "")
    return split + " ".join(f"{line[0].upper()}{line[1:]}." for line in report.left_out) + (" " if report.left_out else "")


def selection_sentence(runs) -> str:
    """How the runs chose the epoch they report, in one sentence."""
    ways = list(dict.fromkeys(run.selection["by"] for run in runs))
    return f"Selected = {'; or '.join(ways)}." if ways else ""


def comparison_table(report) -> pd.DataFrame:
    g = report.groups
    if not len(g):
        return pd.DataFrame()
    table = pd.DataFrame({"rank": g.get("rank"), report.group_by: g[report.group_by], "runs": g["runs"]})
    if len(report.settings) > 1:
        table.insert(0, "setting", g["setting"])
    stages = dict.fromkeys((*STAGES, report.epoch))
    columns = [(f"{stage}_{metric}", f"{EPOCH_NAMES[stage]} {title}") for stage in stages for metric, title in (
        ("test_acc", "acc"), ("test_balanced_acc", "balanced acc"), ("test_tail_acc", "tail acc"), ("test_ece", "ECE"),
        ("test_nll", "NLL"))]
    columns += [("posthoc_test_ece_scaled", "selected ECE, temperature-scaled"),
                ("posthoc_test_nll_scaled", "selected NLL, temperature-scaled"),
                ("posthoc_test_balanced_acc_adjusted", "selected balanced acc, logit-adjusted"),
                ("posthoc_test_tail_acc_adjusted", "selected tail acc, logit-adjusted")]
    for column, title in columns:
        mean = g.get(f"{column}_mean")
        if mean is None:
            continue
        table[title] = [format_mean_std(m, s) for m, s in zip(mean, g[f"{column}_std"])]
    return table


def parameter_table(report) -> pd.DataFrame:
    """Where the groups are values of a number (a search over ``loss.gamma``): one row per run, by value."""
    values = numeric_values(report.runs, report.group_by)
    if values is None:
        return pd.DataFrame()
    short = short_numbers(values.values())
    compared = f"{report.epoch}_{COMPARED}"
    rows = [{report.group_by: group_label(run, report.group_by), "run": run.name, "seed": format_number(run.seed),
             "status": run.status,
             f"{EPOCH_NAMES[report.epoch]} test balanced acc": format_number(run_metrics(run).get(compared))}
            for run in report.runs]
    table = pd.DataFrame(rows)
    table = table.iloc[sorted(range(len(table)), key=lambda i: values[rows[i][report.group_by]])]
    table[report.group_by] = [short[values[label]] for label in table[report.group_by]]
    return table.reset_index(drop=True)


def paired_table(report) -> pd.DataFrame:
    return pd.DataFrame([
        {**({"setting": p.setting} if len(report.settings) > 1 else {}), report.group_by: p.group, "pairs": p.n, "mean difference": format_number(p.mean),
         "95% bootstrap CI": f"[{format_number(p.low)}, {format_number(p.high)}]",
         "P(improvement)": format_number(p.p_improvement, 2), "verdict": p.verdict,
         "seeds needed": format_number(p.seeds_needed)}
        for p in report.paired
    ])


# what the paired intervals cover, and what they do not
VARIANCE_SOURCES = ("The intervals cover the variation that `seed` brings (initialisation and data order); the "
                    "long-tail subsample (`dataset.subsample_seed`) and the validation split (`dataset.val_seed`) "
                    "stay fixed unless their own seeds are swept.")


def ranking_table(report) -> pd.DataFrame:
    r = report.ranking
    return pd.DataFrame({report.group_by: r.average_rank.index, "average rank": [format_number(v, 2) for v in r.average_rank]})


def ranking_intro(report) -> str:
    r = report.ranking
    test = (f" Friedman test: chi-square {format_number(r.statistic, 2)}, p = {r.p_value:.3g}; Nemenyi critical "
            f"difference {format_number(r.critical_difference, 2)} (ranks closer than that are not distinguishable "
            f"at the 5% level)." if r.p_value is not None else " (the Friedman test needs 3 or more groups)")
    return (f"Each group's rank by the {EPOCH_NAMES[report.epoch]} epoch's test balanced accuracy in each of "
            f"{r.settings} settings, averaged.{test}")


DIAGNOSIS_INTRO = (
    "Judged on each run's curves over its last quarter of epochs: the trends of train and test loss (the training "
    "loss above its floor), test accuracy against chance and against its best, the train-test gap, the learning rate "
    "schedule, gradient norms and the update-to-weight ratio. The best test epoch is shown for reference only."
)


def diagnosis_table(report) -> pd.DataFrame:
    rows = []
    for run in report.runs:
        d = run.diagnosis()
        rows.append({
            "run": run.label, "status": run.status, "diagnosis": d.label,
            "phase began (epoch)": format_number(d.onset_epoch), "best test epoch": format_number(d.best_epoch),
            "selected epoch": format_number(d.selected_epoch), "window": f"{d.window[0]}-{d.window[1]}" if d.window else "-",
            "advice": d.advice, "evidence": "; ".join(d.evidence + d.findings),
        })
    return pd.DataFrame(rows)


def _sections(report):
    """(title, intro, table or None, image titles) in report order."""
    statuses = pd.Series([r.status for r in report.runs]).value_counts()
    intro = f"{len(report.runs)} runs ({', '.join(f'{n} {s}' for s, n in statuses.items())}). " \
            f"{selection_sentence(report.runs)} ± is the standard deviation over runs. " \
            f"{posthoc_sentence(report.runs)} " \
            + being_written(report.runs)
    yield "Comparison", f"Grouped by `{report.group_by}`, seeds pooled. {pooling_sentence(report)}" + intro, \
        comparison_table(report), [t for t in report.images if t.startswith((GROUPS_FIGURE, TAIL_FIGURE, CURVES_FIGURE))]
    by_value = parameter_table(report)
    if len(by_value):
        yield (f"By {report.group_by}", f"Each run by its value of `{report.group_by}`, shown to the digits that tell "
               "the values apart.", by_value, [])
    if report.paired:
        notes = " ".join(line + "." for line in map(few_seeds_line, report.paired) if line)
        yield (f"Against {report.group_by}={report.baseline}",
               f"Per-seed paired difference of the {EPOCH_NAMES[report.epoch]} epoch's test balanced accuracy, with a 95% percentile "
               "bootstrap interval of the mean, and the probability that a run of the group beats a run of the "
               f"baseline. {VARIANCE_SOURCES} {notes}", paired_table(report), [t for t in report.images if t.startswith(PAIRED_FIGURE)])
    if report.ranking is not None:
        yield "Across settings", ranking_intro(report), ranking_table(report), [
            t for t in report.images if t == "average rank across settings"]
    yield "Diagnosis", DIAGNOSIS_INTRO, diagnosis_table(report), []
    yield "Runs", "", None, [name for run in report.runs
                             for name in (run.name, f"post-hoc: {run.name}") if name in report.images]


def render_markdown(report) -> str:
    parts = ["# lossbench report\n", f"**{report.headline}**\n" if report.headline else ""]
    for title, intro, table, images in _sections(report):
        parts.append(f"## {title}\n\n{intro}\n")
        if table is not None and len(table):
            parts.append(table.to_markdown(index=False) if _has_tabulate() else _markdown_table(table))
            parts.append("")
        for name in images:
            parts.append(f"![{name}]({report.images[name].name})\n")
    return "\n".join(parts) + "\n"


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def _markdown_table(table: pd.DataFrame) -> str:
    cells = [[str(c) for c in table.columns]] + [[format_number(v) if not isinstance(v, str) else v for v in row]
                                                 for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * len(table.columns))
    return "\n".join(lines) + "\n"


def render_html(report) -> str:
    body = [f"<p><strong>{html.escape(report.headline)}</strong></p>"] if report.headline else []
    for title, intro, table, images in _sections(report):
        body.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(intro)}</p>")
        if table is not None and len(table):
            body.append(table.to_html(index=False, escape=True, classes="table", na_rep="-"))
        for name in images:
            data = base64.b64encode(report.images[name].read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(name)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;font-size:90%}img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>lossbench report</title>"
            f"<style>{style}</style></head><body><h1>lossbench report</h1>{''.join(body)}</body></html>\n")
