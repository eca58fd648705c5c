"""``lossbench report``: one row per run with its final and best metrics, printed
and written to runs.csv."""

from pathlib import Path

import pandas as pd

from lossbench.errors import UserError
from lossbench.report.runs import Run, find_run_dirs, load_run

FINAL_METRICS = ("test_acc", "test_balanced_acc", "test_tail_acc", "test_nll", "test_ece")


def run_row(run: Run, root: Path | None) -> dict:
    row = {
        "run": str(run.path.relative_to(root)) if root and run.path.is_relative_to(root) else str(run.path),
        "status": run.status,
        "overrides": " ".join(run.overrides),
        "epochs": len(run.metrics),
    }
    for metric in FINAL_METRICS:
        if metric in run.metrics and run.metrics[metric].notna().any():
            row[f"final_{metric}"] = run.metrics[metric].iloc[-1]
    if "test_acc" in run.metrics and run.metrics["test_acc"].notna().any():
        best = run.metrics["test_acc"].idxmax()
        row["best_test_acc"] = run.metrics["test_acc"].loc[best]
        row["best_epoch"] = int(run.metrics["epoch"].loc[best])
    return row


def runs_table(paths: list[str]) -> pd.DataFrame:
    root = Path(paths[0]).resolve() if len(paths) == 1 else None
    runs = [load_run(p.resolve()) for p in find_run_dirs(paths)]
    return pd.DataFrame([run_row(r, root) for r in runs])


def report_main(paths: list[str], out: str | None) -> Path:
    table = runs_table(paths)
    out_dir = Path(out) if out else Path(paths[0]) / "report"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_dir / "runs.csv", index=False)
    except OSError as e:
        raise UserError(f"cannot write the report into {out_dir}: {e.strerror or e}; choose another with --out DIR") from None
    with pd.option_context("display.max_columns", None, "display.width", 200, "display.float_format", "{:.4f}".format):
        print(table.drop(columns=["overrides"]).to_string(index=False))
    print(f"\nwrote {out_dir / 'runs.csv'}")
    return out_dir
