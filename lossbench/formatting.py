"""Numbers as tables show them: a fixed number of decimals, "-" where a value is missing."""

import math


def format_number(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# Shown in the table printed at the end of a run.
SUMMARY_METRICS = ("train_loss", "train_acc", "test_loss", "test_nll", "test_acc", "test_balanced_acc", "test_tail_acc", "test_ece")


def format_summary_table(summary: dict) -> str:
    """A run's final and best metrics, one per line."""
    final, best = summary["final"], summary["best"]
    names = [m for m in SUMMARY_METRICS if final.get(m) is not None]
    width = max(len(m) for m in names)
    lines = [f"{'metric':<{width}}  {'final':>8}  {'best (epoch ' + str(summary['best_epoch']) + ')':>16}"]
    lines += [f"{m:<{width}}  {format_number(final.get(m)):>8}  {format_number(best.get(m)):>16}" for m in names]
    return "\n".join(lines)
