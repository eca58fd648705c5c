"""Numbers as tables show them: a fixed number of decimals, "-" where a value is missing."""

import math


def format_number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_mean_std(mean, std, digits: int = 4) -> str:
    """``mean ± std``; the mean alone where there is no spread to show (a group of one run)."""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return format_number(mean, digits)
    return f"{format_number(mean, digits)} ± {format_number(std, digits)}"


# Shown in the table printed at the end of a run.
SUMMARY_METRICS = ("train_loss", "train_acc", "val_acc", "val_balanced_acc", "test_loss", "test_nll", "test_acc",
                   "test_balanced_acc", "test_tail_acc", "test_ece")


def format_summary_table(summary: dict) -> str:
    """A run's final metrics and those of its selected epoch, one per line, and how that epoch was chosen."""
    final, selected = summary["final"], summary.get("selected") or {}
    names = [m for m in SUMMARY_METRICS if final.get(m) is not None]
    width = max(len(m) for m in names)
    heading = f"selected (epoch {summary.get('selected_epoch')})"
    lines = [f"{'metric':<{width}}  {'final':>8}  {heading:>20}"]
    lines += [f"{m:<{width}}  {format_number(final.get(m)):>8}  {format_number(selected.get(m)):>20}" for m in names]
    selection = summary.get("selection") or {}
    lines.append(f"selected: {selection.get('by', '-')}")
    return "\n".join(lines)
