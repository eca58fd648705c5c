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
    """A run's final metrics and those of its selected epoch, one per line, and how that epoch was chosen.

    A run that selected no epoch (it diverged in its first) has no selected
    column, and the line below the table says why."""
    final, selected, epoch = summary["final"], summary.get("selected") or {}, summary.get("selected_epoch")
    names = [m for m in SUMMARY_METRICS if final.get(m) is not None]
    width = max((len(m) for m in names), default=len("metric"))
    if epoch is None:
        lines = [f"{'metric':<{width}}  {'final':>8}"]
        lines += [f"{m:<{width}}  {format_number(final.get(m)):>8}" for m in names]
        lines.append(f"selected: none ({_why_none_selected(summary)})")
        return "\n".join(lines)
    heading = f"selected (epoch {epoch})"
    lines = [f"{'metric':<{width}}  {'final':>8}  {heading:>20}"]
    lines += [f"{m:<{width}}  {format_number(final.get(m)):>8}  {format_number(selected.get(m)):>20}" for m in names]
    selection = summary.get("selection") or {}
    lines.append(f"selected: {selection.get('by', '-')}")
    return "\n".join(lines)


def _why_none_selected(summary: dict) -> str:
    completed = summary.get("epochs_completed") or 0
    if summary.get("status") == "diverged":
        return f"the loss became non-finite in epoch {completed}, before any epoch could be selected"
    return "no epoch completed" if completed == 0 else f"none of the {completed} epochs could be selected"
