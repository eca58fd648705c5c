"""The report's figures. Each function returns a matplotlib Figure (so its
plotted data can be checked) that ``save`` writes as a PNG."""

import io
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from lossbench.posthoc import adjusted_predictions, balanced_accuracy, reliability_bins  # noqa: E402
from lossbench.report.aggregate import group_label, run_metrics  # noqa: E402
from lossbench.report.runs import Run  # noqa: E402
from lossbench.report.statistics import CONFIDENCE, Comparison, bootstrap_interval  # noqa: E402

GROUP_COLORS = {"head": "tab:blue", "medium": "tab:orange", "tail": "tab:red", "": "tab:gray"}
PRINT_DPI = 200
# test and balanced test accuracy closer than this at every epoch are drawn as one line
SAME_ACCURACY = 0.005

# the comparison figures' titles, by which the report places them
MIN_TICK_GAP = 0.06  # of the axis's span: closer values get automatic ticks, not one each
CURVES_FIGURE = "test accuracy and NLL by group"
GROUPS_FIGURE = "test balanced accuracy by group"
TAIL_FIGURE = "head, medium and tail test accuracy by group"
PAIRED_FIGURE = "paired differences against the baseline"


def _plot_columns(ax, metrics: pd.DataFrame, columns: dict[str, str], title: str, ylabel: str,
                  styles: dict[str, dict] | None = None) -> None:
    for column, label in columns.items():
        if column in metrics and metrics[column].notna().any():
            ax.plot(metrics["epoch"], metrics[column], label=label, **(styles or {}).get(column, {}))
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if ax.lines:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


def log_scale_if_spanning(ax, *series) -> None:
    """A log y axis where the plotted positive values span more than a decade."""
    values = np.concatenate([np.asarray(v, dtype=float) for v in series if v is not None] or [np.array([])])
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) and values.max() / values.min() > 10:
        ax.set_yscale("log")


def mark_diagnosis(ax, d) -> None:
    """Shade the judged window; mark the onset of the phase, the best test epoch and the selected one."""
    if d.window is not None:
        ax.axvspan(d.window[0], d.window[1], color="0.85", alpha=0.5, label="judged window", zorder=0)
    for epoch, style, name in ((d.onset_epoch, dict(color="tab:red", ls="--"), f"{d.label} from"),
                               (d.best_epoch, dict(color="tab:green", ls=":"), "best test"),
                               (d.selected_epoch, dict(color="tab:blue", ls="-."), "selected")):
        if epoch is not None:
            ax.axvline(epoch, lw=1, label=f"{name} (epoch {epoch})", **style)


def run_figure(run: Run) -> plt.Figure:
    """Loss and accuracy curves with the diagnosis marked, learning rate and
    gradient norms, per-class accuracy, reliability diagram, the diagnosis."""
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    m, d = run.metrics, run.diagnosis()
    loss_columns = {"train_loss": "train objective", "test_loss": "test objective", "test_nll": "test NLL"}
    _plot_columns(axes[0, 0], m, loss_columns, "losses", "loss")
    log_scale_if_spanning(axes[0, 0], *(m.get(c) for c in loss_columns))
    accuracy_axes(axes[0, 1], m)
    counts = run.summary.get("class_counts")
    if counts:
        axes[0, 1].axhline(1 / len(counts), color="0.4", lw=0.8, ls=":", label="chance (1/K)")
    for ax in axes[0, :2]:
        mark_diagnosis(ax, d)
        if ax.lines:
            ax.legend(fontsize="x-small")
    optimisation_axes(axes[0, 2], m)
    per_class_axes(axes[1, 0], run)
    reliability_axes(axes[1, 1], run)
    axes[1, 2].axis("off")
    axes[1, 2].text(0, 1, _run_caption(run), fontsize=8, va="top", family="monospace", wrap=True)
    fig.suptitle(f"{run.label}  [{run.status}]")
    fig.tight_layout()
    return fig


def accuracy_axes(ax, m: pd.DataFrame) -> None:
    """Train, test and balanced test accuracy. On balanced data the last two
    coincide, and one would hide the other: drawn as one line where they do."""
    if same_curve(m, "test_acc", "test_balanced_acc"):
        columns = {"train_acc": "train", "test_acc": f"test = test balanced (within {SAME_ACCURACY * 100:g} pts)"}
    else:
        columns = {"train_acc": "train", "test_acc": "test", "test_balanced_acc": "test balanced"}
    _plot_columns(ax, m, columns, "accuracy", "accuracy", {"test_balanced_acc": dict(ls="--", lw=1.2)})


def same_curve(m: pd.DataFrame, a: str, b: str, tolerance: float = SAME_ACCURACY) -> bool:
    """Whether two columns are recorded at the same epochs (some) and agree within ``tolerance`` there."""
    if a not in m or b not in m or not m[a].notna().any() or not (m[a].notna() == m[b].notna()).all():
        return False
    return bool((m[a] - m[b]).abs().max() <= tolerance)


def optimisation_axes(ax, m: pd.DataFrame) -> None:
    """The learning rate, and on a log axis beside it the steps' gradient norms."""
    _plot_columns(ax, m, {"lr": "learning rate"}, "learning rate and gradient norm", "lr")
    columns = {"grad_norm_mean": "grad norm, mean", "grad_norm_p90": "grad norm, 90th pct", "grad_norm_max": "grad norm, max"}
    if not any(c in m and m[c].notna().any() for c in columns):
        return
    twin = ax.twinx()
    for (column, label), color in zip(columns.items(), ("tab:orange", "tab:red", "tab:purple")):
        if column in m and m[column].notna().any():
            twin.plot(m["epoch"], m[column], label=label, color=color, lw=1)
    twin.set_ylabel("gradient norm")
    log_scale_if_spanning(twin, *(m.get(c) for c in columns))
    handles = ax.get_legend_handles_labels()
    twin_handles = twin.get_legend_handles_labels()
    ax.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1], fontsize="x-small")


def _run_caption(run: Run) -> str:
    d = run.diagnosis()
    lines = [f"status: {run.status}    epochs: {len(run.metrics)}", f"diagnosis: {d.label}", ""]
    lines += textwrap.wrap(d.advice, 70) + [""]
    for item in d.evidence + d.findings:
        lines += textwrap.wrap(item, 70, initial_indent="- ", subsequent_indent="  ")
    lines += [""] + [f"  {o}" for o in run.overrides[:8]]
    return "\n".join(lines)


BY_COUNT = "class (by training count, most first)"
SMALLER_NAMES_ABOVE = 30  # classes: more get a smaller font


def class_axis(ax, labels: list[str], xlabel: str) -> None:
    """A tick per class along x, the bars' order, named by ``labels``: set vertically where the names are long
    or many, smaller where there are many, and only one class in n named where even then they would overlap
    (100 classes on a panel a few inches wide); the axis label says so."""
    count = len(labels)
    vertical = count > 20 or max(map(len, labels), default=0) > 3
    points = 7.0 if count <= SMALLER_NAMES_ABOVE else 5.0
    # what one name takes along the axis: a line's height set vertically, its length lying
    each = 1.3 * points if vertical else 0.6 * points * max(map(len, labels), default=1) + 4
    room = ax.get_position().width * ax.figure.get_figwidth() * 72  # points
    step = max(1, math.ceil(count * each / room))
    ax.set_xticks(range(0, count, step), labels[::step], fontsize=points, rotation=90 if vertical else 0)
    ax.set_xticks(range(count), minor=True)
    ax.set_xlabel(xlabel + (f"; 1 in {step} named" if step > 1 else ""))


def per_class_axes(ax, run: Run) -> None:
    """Last-epoch test accuracy per class, classes ordered by training count (most first)."""
    ax.set_title("per-class test accuracy (last epoch)")
    pc = run.per_class
    if pc is None or "test_acc_last" not in pc or not pc["test_acc_last"].notna().any():
        ax.text(0.5, 0.5, "no per-class data", ha="center", va="center")
        return
    pc = pc.sort_values("train_count", ascending=False, kind="stable")
    groups = pd.Series([g if isinstance(g, str) else "" for g in pc["group"]] if "group" in pc else [""] * len(pc))
    accuracy = pc["test_acc_last"].to_numpy(dtype=float)
    ax.bar(range(len(pc)), accuracy, color=[GROUP_COLORS.get(g, "tab:gray") for g in groups])
    class_axis(ax, run.class_labels(pc["class"]), BY_COUNT)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    handles = [Patch(color=GROUP_COLORS[g], label=g) for g in ("head", "medium", "tail") if (groups == g).any()]
    # a bar of height 0 is not drawn at all: a class never predicted right would look absent
    zero = np.flatnonzero(accuracy == 0)
    if len(zero):
        (marker,) = ax.plot(zero, np.zeros(len(zero)), ls="none", marker="x", color="black", ms=7, mew=1.5,
                            clip_on=False, zorder=4, label="0% accuracy")
        for x in zero:
            ax.annotate("0", (x, 0), xytext=(0, 6), textcoords="offset points", ha="center", fontsize="x-small")
        handles.append(marker)
    if handles:
        ax.legend(handles=handles, fontsize="small", loc="lower left")


def reliability_axes(ax, run: Run) -> None:
    """Accuracy against confidence per bin (last epoch), with the ECE in the title."""
    cal = run.calibration
    ece = run.metrics["test_ece"].iloc[-1] if "test_ece" in run.metrics and len(run.metrics) else np.nan
    ax.set_title(f"reliability (last epoch), ECE = {ece:.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    if cal is not None and {"lower", "upper", "accuracy", "count"} <= set(cal.columns):
        filled = cal[cal["count"] > 0]
        counts = filled["count"].to_numpy(dtype=float)
        ax.bar(filled["lower"], filled["accuracy"], width=filled["upper"] - filled["lower"], align="edge",
               edgecolor="black", color=[to_rgba("tab:blue", a) for a in count_alpha(counts)],
               label="accuracy (paler: fewer images)")
        for x, y, n in zip((filled["lower"] + filled["upper"]) / 2, filled["accuracy"], counts):
            ax.annotate(f"{n:.0f}", (x, y), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                        fontsize=6, rotation=90 if n >= 1000 else 0)
    ax.set_xlabel("confidence (numbers: images per bin)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.12)
    ax.legend(fontsize="small", loc="upper left")


def count_alpha(counts: np.ndarray) -> np.ndarray:
    """A bin's opacity by its count, on a log scale so that a bin of a few
    images is faint beside one of thousands, but one of hundreds is not."""
    counts = np.asarray(counts, dtype=float)
    if not len(counts) or counts.max() <= 0:
        return np.zeros(len(counts))
    return 0.12 + 0.78 * np.log1p(counts) / np.log1p(counts.max())


def mean_curves_figure(runs: list[Run], key: str, columns=("test_acc", "test_nll")) -> plt.Figure:
    """Per group, the mean curve over its runs with a band of one standard
    deviation; a log axis where the means span more than a decade (a loss that
    starts far above the others would flatten them)."""
    fig, axes = plt.subplots(1, len(columns), figsize=(6 * len(columns), 4.5), squeeze=False)
    names, values = group_names(runs, key), numeric_values(runs, key)
    colors = {}
    if values is not None:  # in value order, shaded from the smallest value to the largest
        names = dict(sorted(names.items(), key=lambda item: values[item[0]]))
        colors = {label: plt.cm.viridis(i / max(len(names) - 1, 1) * 0.9) for i, label in enumerate(names)}
    for ax, column in zip(axes[0], columns):
        means = []
        for label in names:
            mean, std, epochs = mean_curve([r for r in runs if group_label(r, key) == label], column)
            if mean is None:
                continue
            (line,) = ax.plot(epochs, mean, label=f"{key}={names[label]}", color=colors.get(label))
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
            means.append(mean)
        if not column.endswith("_acc"):  # accuracy from chance on 100 classes to 0.6 spans a decade too
            log_scale_if_spanning(ax, *means)
        lengths = {len(r.metrics) for r in runs}
        # a group's mean stops where its shortest run stops: say so where lengths differ
        cut = f"\neach group's curve ends at the last epoch all its runs reached ({min(lengths)} to {max(lengths)})" \
            if len(lengths) > 1 else ""
        ax.set_title(f"{column}: mean over runs, band = 1 std{cut}", fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_ylabel(column + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small" if len(ax.lines) <= 8 else "x-small", ncols=1 if len(ax.lines) <= 8 else 2)
    fig.tight_layout()
    return fig


def mean_curve(runs: list[Run], column: str):
    """(mean, std, epochs) over the epochs every run has reached; std is 0 for one run."""
    series = [r.metrics.set_index("epoch")[column] for r in runs if column in r.metrics and len(r.metrics)]
    if not series:
        return None, None, None
    table = pd.concat(series, axis=1, join="inner")
    std = table.std(axis=1, ddof=1).fillna(0.0) if table.shape[1] > 1 else table.iloc[:, 0] * 0.0
    return table.mean(axis=1).to_numpy(), std.to_numpy(), table.index.to_numpy()


def numeric_values(runs: list[Run], key: str) -> dict[str, float] | None:
    """Each group's value of ``key`` where every run has a number there (``loss.gamma``), else None."""
    values = {}
    for run in runs:
        value = run.config_value(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            return None
        values[group_label(run, key)] = float(value)
    return values or None


def short_numbers(values) -> dict[float, str]:
    """Each value at the fewest significant digits, 3 or more, that keep distinct values distinct."""
    distinct = sorted(set(float(v) for v in values))
    for digits in range(3, 18):
        texts = [f"{v:.{digits}g}" for v in distinct]
        if len(set(texts)) == len(distinct):
            break
    return dict(zip(distinct, texts))


def group_names(runs: list[Run], key: str) -> dict[str, str]:
    """Each group's label as figures show it: a number shortened (``0.1 + 0.2`` is not 0.30000000000000004 there)."""
    labels = list(dict.fromkeys(group_label(r, key) for r in runs))
    values = numeric_values(runs, key)
    if values is None:
        return {label: label for label in labels}
    short = short_numbers(values.values())
    return {label: short[values[label]] for label in labels}


def _draw_groups(ax, positions: list[float], samples: list[np.ndarray], color, name: str | None, join: bool,
                 spread: float = 0.0) -> None:
    """Each value a dot (spread sideways over +-``spread`` where a position has several); each sample's
    mean a bar-shaped marker with its bootstrap interval; the means joined by a line where ``join``."""
    dots_x, dots_y, mean_x, means, interval_x, lows, highs, several = [], [], [], [], [], [], [], []
    for x, values in zip(positions, samples):
        values = np.asarray(values, dtype=float)
        values = values[np.isfinite(values)]
        if not len(values):
            continue
        dots_x += list(x + (np.linspace(-spread, spread, len(values)) if len(values) > 1 else np.zeros(1)))
        dots_y += list(values)
        if len(values) > 1:
            several.append(len(means))
        mean_x.append(x)
        means.append(float(values.mean()))
        low, high = bootstrap_interval(values)
        if np.isfinite(low):
            interval_x.append(x)
            lows.append(low)
            highs.append(high)
    ci = f"{CONFIDENCE:.0%} bootstrap interval of the mean"
    ax.scatter(dots_x, dots_y, s=18, color=color, alpha=0.5, zorder=3, linewidths=0,
               label=f"{name}: one run" if name else "one run")
    # a mean marker over a single run would hide its dot
    ax.plot(mean_x, means, ls="-" if join else "none", lw=1, marker="_", ms=16, mew=2.5, color=color, zorder=4,
            markevery=several, label=f"{name}: mean" if name else "mean")
    if interval_x:
        ax.vlines(interval_x, lows, highs, color=color, lw=1.5, zorder=4, label="_nolegend_" if name else ci)


def _intervals_drawn(ax) -> bool:
    return any(isinstance(c, LineCollection) for c in ax.collections)


def _zoom_to_data(ax, pad_fraction: float = 0.15, least: float = 0.01) -> None:
    """A y axis around what is drawn, not 0 to 1: a two-point gap between groups must show."""
    values = [np.asarray(c.get_offsets())[:, 1] for c in ax.collections if isinstance(c, PathCollection)]
    values += [np.asarray(s)[:, 1] for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    values += [np.asarray(line.get_ydata(), dtype=float) for line in ax.lines]
    values = np.concatenate(values) if values else np.array([])
    values = values[np.isfinite(values)]
    if not len(values):
        return
    low, high = values.min(), values.max()
    pad = max((high - low) * pad_fraction, least)
    ax.set_ylim(low - pad, high + pad)


def _group_axis(ax, runs: list[Run], key: str, order: list[str] | None) -> tuple[list[str], dict[str, float], bool]:
    """(groups in drawing order, each one's x position, whether x is the key's value). A numeric key
    puts each group at its value (log axis where they span more than a decade), in value order;
    any other key gives one column per group, in ``order``."""
    values = numeric_values(runs, key)
    labels = list(dict.fromkeys(group_label(r, key) for r in runs))
    if values is None:
        labels = [g for g in (order or []) if g in labels] + [g for g in labels if g not in (order or [])]
        ax.set_xticks(range(len(labels)), [f"{g}" for g in labels], rotation=30 if len(labels) > 6 else 0,
                      ha="right" if len(labels) > 6 else "center")
        ax.set_xlim(-0.6, len(labels) - 0.4)
        return labels, {g: float(i) for i, g in enumerate(labels)}, False
    labels = sorted(labels, key=lambda g: values[g])
    numbers = np.array([values[g] for g in labels])
    if numbers.min() > 0 and numbers.max() / numbers.min() > 10:
        ax.set_xscale("log")
    short = short_numbers(numbers)
    position = np.log10(numbers) if ax.get_xscale() == "log" else numbers
    span = np.ptp(position)
    # ticks at the values themselves only where no two would overlap
    if len(numbers) <= 8 and (span == 0 or np.diff(position).min() >= MIN_TICK_GAP * span):
        ax.set_xticks(numbers, [short[v] for v in numbers], rotation=30 if len(numbers) > 5 else 0)
        ax.minorticks_off()
    else:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.4g}"))
    return labels, values, True


def _width(runs: list[Run], key: str, per_group: float) -> float:
    """Inches: a column per group, or a fixed width for an axis of the key's values."""
    if numeric_values(runs, key) is not None:
        return 8.0
    return max(6.0, per_group * len(set(group_label(r, key) for r in runs)) + 3)


def group_points_figure(runs: list[Run], key: str, metric: str, ylabel: str, order: list[str] | None = None) -> plt.Figure:
    """``metric`` (a column of run_metrics) per group: each run a dot, the group's mean with its 95%
    bootstrap interval, on an axis zoomed to the data. A numeric key is plotted against its value, the
    means joined in value order; other keys one column per group, in ``order`` (the ranking)."""
    fig, ax = plt.subplots(figsize=(_width(runs, key, 0.9), 4.5))
    labels, positions, numeric = _group_axis(ax, runs, key, order)
    samples = [[run_metrics(r).get(metric, np.nan) for r in runs if group_label(r, key) == g] for g in labels]
    _draw_groups(ax, [positions[g] for g in labels], samples, "tab:blue", None, join=numeric,
                 spread=0 if numeric else 0.15)
    _zoom_to_data(ax)
    ax.set_xlabel(key)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize="small")
    shown = f"bars: mean with its {CONFIDENCE:.0%} bootstrap interval" if _intervals_drawn(ax) else "line: mean"
    ax.set_title(f"{ylabel} by {key}\ndots: runs; {shown}", fontsize="medium")
    fig.tight_layout()
    return fig


TAIL_COLUMNS = {"head": "test_head_acc", "medium": "test_medium_acc", "tail": "test_tail_acc"}


def tail_figure(runs: list[Run], key: str, epoch: str, order: list[str] | None = None,
                epoch_name: str | None = None) -> plt.Figure | None:
    """Head, medium and tail test accuracy per group at the compared epoch: each run a dot, the mean
    with its 95% bootstrap interval. None where no run has them (balanced data)."""
    rows = {id(r): r.epoch_index(epoch) for r in runs}

    def value(run: Run, column: str) -> float:
        row = rows[id(run)]
        return float(run.metrics[column].loc[row]) if row is not None and column in run.metrics else np.nan

    if not any(np.isfinite(value(r, c)) for r in runs for c in TAIL_COLUMNS.values()):
        return None
    fig, ax = plt.subplots(figsize=(_width(runs, key, 1.4), 4.5))
    labels, positions, numeric = _group_axis(ax, runs, key, order)
    # beside each other in a group's column; at the same value on a numeric axis, joined by lines
    offsets = {"head": -0.25, "medium": 0.0, "tail": 0.25} if not numeric else dict.fromkeys(TAIL_COLUMNS, 0.0)
    for part, column in TAIL_COLUMNS.items():
        samples = [[value(r, column) for r in runs if group_label(r, key) == g] for g in labels]
        _draw_groups(ax, [positions[g] + offsets[part] for g in labels], samples, GROUP_COLORS[part], part,
                     join=numeric, spread=0 if numeric else 0.08)
    _zoom_to_data(ax)
    ax.set_xlabel(key)
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3, axis="y")
    handles = [h for h in ax.get_legend_handles_labels()[0] if h.get_label().endswith(": mean")]
    ax.legend(handles, [h.get_label().removesuffix(": mean") for h in handles], fontsize="small", title="classes")
    ax.set_title(f"head, medium and tail test accuracy, {epoch_name or epoch} epoch\n"
                 f"dots: runs; bars: mean with its {CONFIDENCE:.0%} bootstrap interval", fontsize="medium")
    fig.tight_layout()
    return fig


VERDICT_COLORS = {"better than the baseline": "tab:green", "worse than the baseline": "tab:red"}


def forest_figure(paired: list[Comparison], key: str, xlabel: str) -> plt.Figure:
    """Each group's paired difference from the baseline, in points: the mean with its bootstrap
    interval, a line at 0. Largest difference on top; a comparison without pairs is left out."""
    rows = sorted((c for c in paired if c.n > 0), key=lambda c: c.mean)
    fig, ax = plt.subplots(figsize=(8, 2.0 + 0.45 * len(rows)))
    y = np.arange(len(rows), dtype=float)
    baseline = paired[0].baseline if paired else ""
    ax.axvline(0, color="0.3", lw=1, label=f"no difference from {key}={baseline}")
    colors = [VERDICT_COLORS.get(c.verdict, "0.4") for c in rows]
    means = np.array([c.mean for c in rows]) * 100
    lows, highs = np.array([c.low for c in rows]) * 100, np.array([c.high for c in rows]) * 100
    ax.hlines(y, lows, highs, colors=colors, lw=2.5)
    ax.scatter(means, y, c=colors, s=40, zorder=3)
    for yi, c, mean, low, high in zip(y, rows, means, lows, highs):
        interval = f" [{low:+.1f}, {high:+.1f}]" if np.isfinite(low) else " (one pair: no interval)"
        ax.annotate(f"{mean:+.1f}{interval}", (1.01, yi), xycoords=("axes fraction", "data"), va="center",
                    fontsize="small")
    ax.set_yticks(y, [f"{c.group} ({c.n} pair{'s' if c.n != 1 else ''})" for c in rows])
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(f"against {key}={baseline}, paired by seed\ndots: mean difference; lines: its {CONFIDENCE:.0%} "
                 "bootstrap interval (green: better, red: worse)", fontsize="medium")
    fig.tight_layout()
    return fig


def comparison_figures(runs: list[Run], groups: pd.DataFrame, paired: list[Comparison], key: str, epoch: str,
                       epoch_name: str, metric: str) -> list[tuple[str, str, plt.Figure]]:
    """(title, file name, figure) of each figure across runs, for a report of more than one run."""
    order = list(groups[key]) if key in groups else None
    out = [(CURVES_FIGURE, "comparison_curves.png", mean_curves_figure(runs, key)),
           (GROUPS_FIGURE, "comparison_groups.png",
            group_points_figure(runs, key, metric, f"{epoch_name} epoch's test balanced accuracy", order))]
    tail = tail_figure(runs, key, epoch, order, epoch_name)
    if tail is not None:
        out.append((TAIL_FIGURE, "comparison_tail.png", tail))
    if any(c.n > 0 for c in paired):
        out.append((PAIRED_FIGURE, "paired_differences.png",
                    forest_figure(paired, key, f"difference in the {epoch_name} epoch's test balanced accuracy (points)")))
    return out


def save(fig: plt.Figure, path: Path, dpi: int = PRINT_DPI) -> Path:
    """A PNG at print resolution. Reduced to a palette of 256 colours, which lines,
    text and light fills need no more than: a third of the bytes, and the HTML
    report embeds every figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    image = Image.open(buffer).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    image.save(path, format="png", dpi=(dpi, dpi))
    return path


def critical_difference_figure(ranking) -> plt.Figure:
    """Demsar's critical-difference diagram: each loss at its average rank (1 =
    best, left); losses whose ranks differ by less than the Nemenyi critical
    difference are joined by a bar (not distinguishable at the 5% level)."""
    ranks = ranking.average_rank
    k = len(ranks)
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * k))
    ax.hlines(0, 1, k, color="black")
    ax.set_xlim(0.5, k + 0.5)
    ax.set_xticks(range(1, k + 1))
    for i, (name, rank) in enumerate(ranks.items()):
        y = -0.3 - 0.25 * i
        ax.plot([rank, rank], [0, y], color="black", linewidth=0.8)
        ax.text(rank, y - 0.05, f"{name} ({rank:.2f})", ha="center", va="top", fontsize="small")
    cd = ranking.critical_difference
    if cd is not None:
        ax.plot([1, 1 + cd], [0.35, 0.35], color="tab:red", linewidth=2)
        ax.text(1 + cd / 2, 0.42, f"CD = {cd:.2f}", ha="center", fontsize="small", color="tab:red")
        values = ranks.to_numpy()
        level, cliques = 0.15, []
        for start in range(k):
            end = max(j for j in range(start, k) if values[j] - values[start] < cd)
            if end > start and not any(s <= start and e >= end for s, e in cliques):
                ax.plot([values[start], values[end]], [level, level], color="tab:blue", linewidth=3)
                cliques.append((start, end))
                level += 0.08
    ax.set_ylim(-0.6 - 0.25 * k, 0.6)
    ax.set_yticks([])
    ax.set_xlabel("average rank across settings (1 = best)")
    p = f", Friedman p = {ranking.p_value:.3g}" if ranking.p_value is not None else ""
    ax.set_title(f"{ranking.settings} settings{p}")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def posthoc_figure(run: Run) -> plt.Figure | None:
    """The selected epoch's post-hoc steps, redone from its saved logits: the
    test reliability before and after temperature scaling (bin counts written
    on the points), and per-class test accuracy before and after logit
    adjustment. None for a run without saved validation logits."""
    saved = run.saved_logits()
    counts = run.summary.get("class_counts")
    if saved is None or "val_logits" not in saved or not counts:
        return None
    test = (saved["test_logits"], saved["test_labels"])
    results = run.posthoc()
    if "temperature" not in results:  # logits the steps could not be fitted to
        return None
    fig, (reliability, per_class) = plt.subplots(1, 2, figsize=(13, 4.5))
    reliability.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    curves = [(1.0, f"raw, ECE {results['test_ece']:.4f}")]
    if results["temperature"] is not None:
        curves.append((results["temperature"], f"T = {results['temperature']:.2f}, ECE {results['test_ece_scaled']:.4f}"))
    else:
        reliability.text(0.98, 0.02, "no temperature fitted:\nno validation error", ha="right", va="bottom",
                         fontsize="small", transform=reliability.transAxes)
    for temperature, label in curves:
        count, confidence, hits = reliability_bins(*test, temperature)
        filled = count > 0
        x, y = confidence[filled] / count[filled], hits[filled] / count[filled]
        (line,) = reliability.plot(x, y, marker="o", label=label)
        for xi, yi, n in zip(x, y, count[filled]):
            reliability.annotate(str(int(n)), (xi, yi), textcoords="offset points", xytext=(0, 5), fontsize="x-small",
                                 color=line.get_color(), ha="center")
    reliability.set(title=f"test reliability, epoch {saved['epoch']} (numbers: images per bin)", xlabel="confidence",
                    ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.05))
    reliability.legend(fontsize="small", loc="upper left")
    order = np.argsort(-np.asarray(counts), kind="stable")
    log_prior = np.log(np.asarray(counts, dtype=float) / sum(counts))
    raw = balanced_accuracy(test[0].argmax(axis=1), test[1], len(counts))[1]
    adjusted = balanced_accuracy(adjusted_predictions(test[0], log_prior, results["tau"]), test[1], len(counts))[1]
    x = np.arange(len(counts))
    per_class.bar(x - 0.2, raw[order], width=0.4, label=f"raw, balanced {results['test_balanced_acc']:.4f}")
    per_class.bar(x + 0.2, adjusted[order], width=0.4,
                  label=f"tau = {results['tau']:g}, balanced {results['test_balanced_acc_adjusted']:.4f}")
    class_axis(per_class, run.class_labels(order), BY_COUNT)
    per_class.set(title="per-class test accuracy, logit adjustment fitted on validation", ylabel="accuracy",
                  ylim=(0, 1.05))
    per_class.legend(fontsize="small", loc="lower left")
    fig.suptitle(f"post-hoc: {run.label}")
    fig.tight_layout()
    return fig
