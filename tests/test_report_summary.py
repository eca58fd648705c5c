import csv
import json

import pytest

from lossbench.errors import UserError
from lossbench.report.summary import report_main


def _write_run(path, accuracies, status):
    path.mkdir(parents=True)
    (path / ".hydra").mkdir()
    (path / ".hydra" / "overrides.yaml").write_text("- loss=ce\n- seed=1\n")
    lines = ["epoch,test_acc,test_balanced_acc"] + [f"{i + 1},{a},{a}" for i, a in enumerate(accuracies)]
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    (path / "summary.json").write_text(json.dumps({"status": status}))


def test_runs_table_from_a_sweep(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _write_run(sweep / "0", [0.5, 0.7, 0.6], "finished")
    _write_run(sweep / "1", [0.2], "running")
    out = report_main([str(sweep)], None)
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["0", "1"]
    assert [r["status"] for r in rows] == ["finished", "running"]
    assert rows[0]["final_test_acc"] == "0.6" and rows[0]["best_test_acc"] == "0.7" and rows[0]["best_epoch"] == "2"
    assert rows[0]["overrides"] == "loss=ce seed=1" and rows[1]["epochs"] == "1"
    assert "finished" in capsys.readouterr().out


def test_folder_without_runs_is_refused(tmp_path):
    with pytest.raises(UserError, match="no runs under"):
        report_main([str(tmp_path)], None)
