"""report.md and report.html, both showing the PNGs beside them (the folder opens offline as it is)."""

import html
import os
import re
import struct
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from lossbench.formatting import format_mean_std, format_number
from lossbench.report.aggregate import COMPARED, STAGES, group_label, run_metrics
from lossbench.report.figures import (CURVES_FIGURE, GROUPS_FIGURE, PAIRED_FIGURE, TAIL_FIGURE, group_names, numeric_values,
                                      short_numbers)
from lossbench.report.headline import selected_by
from lossbench.report.per_class import PER_CLASS_CSV
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
    names = group_names(report.runs, report.group_by)
    table = pd.DataFrame({"rank": g.get("rank"), report.group_by: [names.get(v, v) for v in g[report.group_by]],
                          "runs": g["runs"]})
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


def epoch_words(runs, epoch: str) -> str:
    """The compared epoch as the report names it elsewhere: the selected one as the headline does
    ("validation-selected epoch"), the others as the tables do ("final epoch")."""
    if epoch != "selected":
        return f"{EPOCH_NAMES[epoch]} epoch"
    by = selected_by(runs, epoch)
    if by == "last-epoch":
        return "selected epoch (the last: no run had a validation split to select by)"
    return f"{by} epoch"


def per_class_intro(report) -> str:
    p = report.per_class
    against = (f", and each group's difference from `{report.group_by}={report.baseline}`'s (positive: the group is "
               "better on that class)" if p.differences else "")
    order = ("by training count, most first" if all(p.head_first) else "in class order" if not any(p.head_first)
             else "by training count, most first, where the data is long-tailed, else in class order")
    notes = " ".join(p.notes)
    return (f"Test accuracy per class at the {epoch_words(report.runs, report.epoch)}: each `{report.group_by}` "
            f"group's mean over its runs{against}. Classes {order}. {notes + ' ' if notes else ''}The whole table, "
            f"every class, is in `{PER_CLASS_CSV}` beside this report.")


def _count_text(value) -> str:
    """A class's training images: a whole number, or the runs' mean where they differ."""
    return format_number(None if pd.isna(value) else int(value) if float(value).is_integer() else float(value), 1)


def per_class_table(report) -> pd.DataFrame:
    p = report.per_class
    shown = p.shown
    table = pd.DataFrame({"class": shown["name"].astype(str), "training images": shown["train_count"].map(_count_text)})
    if "setting" in shown:
        table.insert(0, "setting", shown["setting"])
    for column in p.groups + p.differences:
        table[column] = [format_number(None if pd.isna(v) else float(v)) for v in shown[column]]
    return table.reset_index(drop=True)


DIAGNOSIS_INTRO = (
    "Judged on each run's curves over its last quarter of epochs: the trends of train and test loss (the training "
    "loss above its floor), test accuracy against chance and against its best, the train-test gap, the learning rate "
    "schedule, gradient norms and the update-to-weight ratio. The best test epoch is shown for reference only."
)


def diagnosis_table(report) -> pd.DataFrame:
    rows = []
    requeued = any(run.requeues for run in report.runs)
    for run in report.runs:
        d = run.diagnosis()
        rows.append({
            "run": run.label, "status": run.status, **({"requeued": run.requeues or 0} if requeued else {}),
            "diagnosis": d.label,
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
    if report.per_class is not None:
        yield "Per class", per_class_intro(report), per_class_table(report), []
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


# Cells made of numbers (also "0.9583 ± 0.0083", "[0.03, 0.05]", a window "7-12", "-" for none) are kept on one
# line and right-aligned, so that columns of numbers line up and a ± never parts a mean from its deviation.
_NUMBER = re.compile(r"[-+]?(\d[\d.eE+-]*|nan|inf)|±|-")
_NUMBER_SEPARATORS = re.compile(r"[\s\[\](),]+")
# Text columns longer than these (advice, evidence) get a minimum width instead of wrapping a word per line,
# the longest a wider one, so that their rows do not grow many lines tall.
_LONG_TEXT, _LONGER_TEXT = 40, 240
# The verdict that makes a comparison worth pointing out.
_BETTER = "better than the baseline"

STYLE = """
:root{--line:#d0d4da;--head:#f3f5f7;--winner:#e3f4e1;--winner-edge:#2e7d32;--link:#1a5fb4}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;line-height:1.45;color:#1d232a;
     margin:0 auto;padding:1em clamp(0.75em,3vw,2em);max-width:1400px}
h1{margin:0.3em 0}
h2{margin-top:2em;border-bottom:1px solid var(--line);padding-bottom:0.2em}
a{color:var(--link)}
code{font-size:92%;background:var(--head);padding:0 0.25em;border-radius:3px}
.headline{font-size:110%;padding:0.6em 0.9em;border-left:4px solid var(--winner-edge);background:var(--winner)}
nav.toc{border:1px solid var(--line);border-radius:4px;padding:0.4em 1em;display:inline-block;max-width:100%}
nav.toc ul{margin:0.3em 0;padding-left:1.2em}
nav.toc li{margin:0.1em 0}
nav.toc ul.figures{padding-left:0}
nav.toc ul.figures li{display:inline-block;margin-right:0.9em}
.table-scroll{max-width:100%;overflow-x:auto;margin:1em 0}
table{border-collapse:collapse;font-size:90%}
td,th{border:1px solid var(--line);padding:4px 8px;vertical-align:top}
th{background:var(--head);text-align:left;font-weight:600}
td.text,th.text,td.long,th.long{text-align:left}
td.num,th.num{text-align:right}
td.num{white-space:nowrap;font-variant-numeric:tabular-nums}
td.long,th.long{min-width:16em}
td.longer,th.longer{min-width:26em}
tr.winner td{background:var(--winner)}
tr.winner td:first-child{box-shadow:inset 4px 0 var(--winner-edge)}
.note{font-size:90%;color:#555}
figure{margin:1.5em 0}
figure img{max-width:100%;height:auto;display:block;border:1px solid var(--line)}
figcaption{font-size:90%;color:#444;margin-top:0.3em}
"""


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _inline_code(text: str) -> str:
    """Escaped text with `key` shown as code, as the Markdown report shows it."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _cell_text(value) -> str:
    return value if isinstance(value, str) else format_number(None if pd.isna(value) else value)


def _column_kind(cells: list[str]) -> str:
    """"num", "text", "long" or "long longer": the column's classes, which align, wrap and size it."""
    if all(_NUMBER.fullmatch(token) for cell in cells for token in _NUMBER_SEPARATORS.split(cell) if token):
        return "num"
    longest = max(map(len, cells), default=0)
    return "long longer" if longest > _LONGER_TEXT else "long" if longest > _LONG_TEXT else "text"


def _winner_rows(table: pd.DataFrame) -> list[bool]:
    """The rows worth pointing out: the top-ranked group (where there is more than one), and comparisons found
    better than the baseline."""
    if "verdict" in table:
        return [v == _BETTER for v in table["verdict"]]
    if "rank" in table and len(table) > 1:
        return [r == 1 for r in table["rank"]]
    return [False] * len(table)


def _html_table(table: pd.DataFrame) -> str:
    columns = [[_cell_text(v) for v in table.iloc[:, i]] for i in range(table.shape[1])]
    kinds = [_column_kind(cells) for cells in columns]
    head = "".join(f'<th class="{kind}" scope="col">{html.escape(str(name))}</th>'
                   for name, kind in zip(table.columns, kinds))
    rows = []
    for i, winner in enumerate(_winner_rows(table)):
        cells = "".join(f'<td class="{kind}">{html.escape(column[i])}</td>' for column, kind in zip(columns, kinds))
        rows.append(f'<tr class="winner">{cells}</tr>' if winner else f"<tr>{cells}</tr>")
    note = ('<p class="note">Highlighted: ' + ("comparisons better than the baseline." if "verdict" in table
                                                 else "the top-ranked group.") + "</p>") if any(_winner_rows(table)) else ""
    return (f'<div class="table-scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>{note}")


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's header: given to the browser, the page does not jump as figures load."""
    with open(path, "rb") as f:
        header = f.read(24)
    return struct.unpack(">II", header[16:24])


def _figure(report, name: str) -> str:
    path = report.images[name]
    src = html.escape(quote(Path(os.path.relpath(path, report.out_dir)).as_posix()))
    width, height = _png_size(path)
    return (f'<figure id="{_anchor("figure " + name)}"><a href="{src}"><img alt="{html.escape(name)}" src="{src}" '
            f'width="{width}" height="{height}" loading="lazy"></a><figcaption>{html.escape(name)}</figcaption></figure>')


def _toc_figures(images: list[str], table) -> str:
    """A section of figures alone (the runs) lists them, as they are many and far down the page."""
    if table is not None or not images:
        return ""
    links = " ".join(f'<li><a href="#{_anchor("figure " + name)}">{html.escape(name)}</a></li>' for name in images)
    return f'<ul class="figures">{links}</ul>'


def render_html(report) -> str:
    sections = list(_sections(report))
    toc = "".join(f'<li><a href="#{_anchor(title)}">{html.escape(title)}</a>{_toc_figures(images, table)}</li>'
                  for title, _, table, images in sections)
    body = [f'<p class="headline"><strong>{html.escape(report.headline)}</strong></p>'] if report.headline else []
    body.append(f'<nav class="toc" aria-label="contents"><strong>Contents</strong><ul>{toc}</ul></nav>')
    for title, intro, table, images in sections:
        body.append(f'<section id="{_anchor(title)}"><h2>{html.escape(title)}</h2>')
        if intro:
            body.append(f"<p>{_inline_code(intro)}</p>")
        if table is not None and len(table):
            body.append(_html_table(table))
        body.extend(_figure(report, name) for name in images)
        body.append("</section>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>lossbench report</title>'
            f"<style>{STYLE}</style></head><body><h1>lossbench report</h1>{''.join(body)}</body></html>\n")
