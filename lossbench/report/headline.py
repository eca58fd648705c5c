"""The one sentence that answers "which loss should I train with?", computed
from the same comparisons as the report's tables."""

from lossbench.report.runs import Run
from lossbench.report.statistics import Comparison


def setting_label(runs: list[Run]) -> str:
    """The data the runs trained on: ``digits_lt (r=10)``, or several joined."""
    labels = []
    for run in runs:
        name = run.config_value("dataset.name") or run.summary.get("dataset") or "?"
        ratio = run.config_value("dataset.imbalance_ratio")
        labels.append(f"{name} (r={ratio:g})" if isinstance(ratio, (int, float)) and ratio > 1 else str(name))
    return ", ".join(dict.fromkeys(labels))


def selected_by(runs: list[Run], epoch: str = "selected") -> str:
    """How the compared numbers were selected, as an adjective."""
    if epoch == "oracle":
        return "best-test-epoch (oracle: chosen on the test set, optimistic)"
    if epoch == "final":
        return "last-epoch"
    metrics = {run.selection.get("metric") for run in runs}
    if all(m is not None and m.startswith("val_") for m in metrics):
        return "validation-selected"
    if metrics == {None}:
        return "last-epoch"
    if all(m is not None and m.startswith("test_") for m in metrics):
        return "test-selected (optimistic)"
    return "selected (by different rules: see each run)"


def _points(value: float) -> str:
    return f"{value * 100:+.1f} pts"


def headline(comparisons: list[Comparison], runs: list[Run], epoch: str = "selected",
             metric_name: str = "balanced accuracy", where: str = "") -> str:
    """``where``: what sets these runs apart from others compared beside them."""
    if not comparisons:
        return ""
    baseline = comparisons[0].baseline
    seeds = max(c.n for c in comparisons)
    where = f"On {setting_label(runs)}" + (f" with {where}" if where else "")
    better = sorted((c for c in comparisons if c.verdict == "better than the baseline"), key=lambda c: -c.mean)
    if better:
        c = better[0]
        # others whose gain lies inside the leader's interval: not shown to be behind it
        close = [f"{o.group} ({_points(o.mean)})" for o in better[1:] if o.mean >= c.low]
        also = f"; {' and '.join(close)} {'is' if len(close) == 1 else 'are'} within its interval" if close else ""
        return (f"{where}, {c.group} is best by {selected_by(runs, epoch)} {metric_name}: {_points(c.mean)} over {baseline} "
                f"(95% CI [{c.low * 100:.1f}, {c.high * 100:.1f}]), P(improvement) = {c.p_improvement:.2f}, "
                f"{c.n} seeds{also}.")
    worse = [c.group for c in comparisons if c.verdict == "worse than the baseline"]
    if worse:
        return (f"{where}, no loss beats {baseline} by {selected_by(runs, epoch)} {metric_name} with {seeds} seeds; "
                f"worse than {baseline}: {', '.join(worse)}.")
    return (f"{where}, no loss is distinguishable from {baseline} by {selected_by(runs, epoch)} {metric_name} "
            f"with {seeds} seeds.")
