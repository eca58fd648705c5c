"""lossbench report on runs written with known numbers."""

import csv
import json
import math
from html.parser import HTMLParser

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from lossbench.errors import UserError
from lossbench.report import figures
from lossbench.report.aggregate import summarize_groups
from lossbench.report.statistics import compare
from lossbench.report.build import build_report
from lossbench.report.runs import load_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# best test accuracy per (loss, seed); epochs: 12, test accuracy peaks at epoch 8,
# validation balanced accuracy at epoch 6: the selected epoch, 0.02 below the best test one
BEST = {("ce", 0): 0.80, ("ce", 1): 0.82, ("ce", 2): 0.78, ("focal", 0): 0.85, ("focal", 1): 0.86, ("focal", 2): 0.81}


def write_run(path, loss, seed, best, status="finished", epochs=12, **dataset):
    """``dataset``: its config values besides the name (they define the run's setting)."""
    (path / ".hydra").mkdir(parents=True)
    config = {"loss": {"name": loss}, "seed": seed, "dataset": {"name": "digits", **dataset}}
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    overrides = [f"loss={loss}", f"seed={seed}", *(f"dataset.{k}={v}" for k, v in dataset.items())]
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    e = np.arange(1, epochs + 1)
    acc = best - 0.01 * np.abs(e - 8)
    rows = {
        "epoch": e, "lr": 0.1 / e, "train_loss": 2.0 * np.exp(-e / 4), "train_acc": np.minimum(1, acc + 0.1),
        "val_loss": 1.0 + 0.04 * e, "val_nll": 1.0 + 0.04 * e, "val_acc": acc - 0.01 * np.abs(e - 6),
        "val_balanced_acc": best - 0.03 - 0.01 * np.abs(e - 6), "val_ece": 0.04 + 0 * e,
        "test_loss": 1.0 + 0.05 * e, "test_nll": 1.1 + 0.05 * e, "test_acc": acc, "test_balanced_acc": acc - 0.01,
        "test_head_acc": acc, "test_medium_acc": acc, "test_tail_acc": acc - 0.1, "test_ece": 0.05 + 0 * e,
        "epoch_time_s": 1 + 0 * e, "images_per_s": 100 + 0 * e,
    }
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(rows)
        writer.writerows(zip(*rows.values()))
    (path / "summary.json").write_text(json.dumps({"status": status}))
    with open(path / "per_class.csv", "w") as f:
        f.write("class,train_count,group,test_acc_last,test_acc_best\n0,100,head,0.9,0.9\n1,50,medium,0.7,0.8\n2,10,tail,0.2,0.3\n")
    with open(path / "calibration.csv", "w") as f:
        f.write("bin,lower,upper,count,confidence,accuracy\n")
        for b in range(15):
            f.write(f"{b},{b / 15},{(b + 1) / 15},{b},{(b + 0.5) / 15},{min(1, b / 14)}\n")


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for job, ((loss, seed), best) in enumerate(BEST.items()):
        write_run(root / str(job), loss, seed, best)
    return root


def test_aggregation_on_known_numbers(sweep):
    groups = summarize_groups(load_runs([str(sweep)]), "loss")
    assert list(groups["loss"]) == ["focal", "ce"] and list(groups["rank"]) == [1, 2]
    focal, ce = groups.iloc[0], groups.iloc[1]
    # selected on validation (epoch 6), never on test (epoch 8, 0.02 higher)
    assert focal["selected_test_acc_mean"] == pytest.approx(np.mean([0.85, 0.86, 0.81]) - 0.02, abs=1e-12)
    assert focal["selected_test_acc_std"] == pytest.approx(np.std([0.85, 0.86, 0.81], ddof=1), abs=1e-12)
    assert ce["selected_test_acc_mean"] == pytest.approx(0.78, abs=1e-12)
    assert ce["selected_test_acc_std"] == pytest.approx(0.02, abs=1e-12)
    # final (epoch 12) is 0.04 below the best test epoch; ECE is 0.05 everywhere; tail is acc - 0.1
    assert ce["final_test_acc_mean"] == pytest.approx(0.76, abs=1e-12)
    assert ce["selected_test_ece_mean"] == pytest.approx(0.05) and ce["selected_test_ece_std"] == pytest.approx(0.0)
    assert ce["selected_test_tail_acc_mean"] == pytest.approx(0.68, abs=1e-12)
    assert not any(column.startswith("oracle") for column in groups.columns)  # only where asked for


@pytest.mark.slow
def test_paired_comparison_and_headline(sweep):
    report = build_report([str(sweep)], None)
    (paired,) = report.paired
    # selected (epoch 6) balanced accuracy: focal 0.82, 0.83, 0.78; ce 0.77, 0.79, 0.75
    assert paired.group == "focal" and paired.n == 3 and paired.metric == "selected_test_balanced_acc"
    assert paired.mean == pytest.approx(0.04, abs=1e-12)
    # the 27 equally likely resamples of (0.05, 0.04, 0.03): each extreme has probability 1/27 > 2.5%
    assert (paired.low, paired.high) == pytest.approx((0.03, 0.05), abs=1e-12)
    assert paired.p_improvement == pytest.approx(8 / 9)  # 0.78 loses to 0.79 only
    assert paired.verdict == "better than the baseline"
    assert report.headline == ("On digits, focal is best by validation-selected balanced accuracy: +4.0 pts over ce "
                               "(95% CI [3.0, 5.0]), P(improvement) = 0.89, 3 seeds.")


def test_verdicts():
    def verdict(*diffs):
        return compare("g", "b", "m", [(d, 0.0) for d in diffs]).verdict

    assert verdict(0.01, -0.02, 0.005) == "not distinguishable"
    assert verdict(0.01).startswith("too few seeds to tell")
    assert verdict(-0.05, -0.04, -0.06) == "worse than the baseline"


def test_run_figure_plots_the_csv_data(sweep):
    run = load_runs([str(sweep / "0")])[0]
    fig = figures.run_figure(run)
    losses, accuracy, lr, per_class, reliability = fig.axes[:5]
    by_label = {line.get_label(): line for line in losses.lines}
    np.testing.assert_allclose(by_label["train objective"].get_ydata(), run.metrics["train_loss"])
    np.testing.assert_allclose(by_label["test NLL"].get_ydata(), run.metrics["test_nll"])
    np.testing.assert_allclose({l.get_label(): l for l in accuracy.lines}["test balanced"].get_ydata(),
                               run.metrics["test_balanced_acc"])
    np.testing.assert_allclose(lr.lines[0].get_ydata(), run.metrics["lr"])
    assert [p.get_height() for p in per_class.patches] == pytest.approx([0.9, 0.7, 0.2])
    assert "ECE = 0.0500" in reliability.get_title()
    heights = [p.get_height() for p in reliability.patches]
    assert heights == pytest.approx([min(1, b / 14) for b in range(1, 15)])  # bins with a count


def test_mean_curves_have_the_group_mean_and_band(sweep):
    runs = load_runs([str(sweep)])
    fig = figures.mean_curves_figure(runs, "loss")
    lines = {l.get_label(): l for l in fig.axes[0].lines}
    e = np.arange(1, 13)
    expected = np.mean([[b - 0.01 * abs(x - 8) for x in e] for (loss, _), b in BEST.items() if loss == "ce"], axis=0)
    np.testing.assert_allclose(lines["loss=ce"].get_ydata(), expected)
    band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.max() == pytest.approx(expected.max() + 0.02)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self.tables += 1


@pytest.mark.slow
def test_report_files(sweep, capsys):
    from lossbench.report.build import report_main

    report = report_main([str(sweep)], None)
    out = sweep / "report"
    assert report.out_dir == out
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 6 + 4  # a figure per run; curves, runs by group, head/medium/tail, paired differences
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC and imread(png).ndim == 3
    page = _Page()
    page.feed((out / "report.html").read_text())
    assert page.tables == 3  # comparison, paired differences, diagnosis
    assert len(page.images) == 10 and sorted(page.images) == [png.name for png in pngs]  # the PNGs beside it
    markdown = (out / "report.md").read_text()
    for png in pngs:
        assert f"]({png.name})" in markdown
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["loss"], r["seed"]) for r in rows] == [(l, str(s)) for l, s in BEST]
    assert rows[0]["selected_test_acc"] == "0.78" and rows[0]["selected_epoch"] == "6" and rows[0]["final_test_acc"] == "0.76"
    # the best test epoch, named as what it is
    assert rows[0]["oracle_test_acc"] == "0.8" and rows[0]["oracle_epoch"] == "8"
    assert all(r["diagnosis"] == "overfitting_diverging" for r in rows)
    assert all(r["diagnosis_onset_epoch"] == "1" for r in rows)
    printed = capsys.readouterr().out
    assert "1. focal" in printed and "better than the baseline" in printed


def test_failed_and_running_runs_are_shown(tmp_path):
    write_run(tmp_path / "a", "ce", 0, 0.8)
    write_run(tmp_path / "b", "ce", 1, 0.8, status="running", epochs=3)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "metrics.csv").write_text("")  # died before its first row
    (tmp_path / "c" / "summary.json").write_text(json.dumps({"status": "failed"}))
    report = build_report([str(tmp_path)], str(tmp_path / "out"))
    table = report.runs_table.set_index(report.runs_table["run"].map(lambda p: p.rsplit("/", 1)[-1]))
    # says running, but no process holds it: killed without a chance to say so
    assert table.loc["b", "status"] == "killed" and table.loc["b", "diagnosis"] == "too_early"
    assert table.loc["c", "status"] == "failed" and table.loc["c", "epochs"] == 0
    assert len(report.runs) == 3


def test_empty_or_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="no runs under"):
        build_report([str(tmp_path)], None)
    with pytest.raises(UserError, match="does not exist"):
        build_report([str(tmp_path / "missing")], None)


@pytest.mark.slow  # builds whole reports, figures included
def test_the_oracle_epoch_only_when_asked_and_marked(sweep, tmp_path):
    report = build_report([str(sweep)], str(tmp_path / "oracle"), epoch="oracle")
    (paired,) = report.paired
    # the best test epoch (8): focal 0.84, 0.85, 0.80; ce 0.79, 0.81, 0.77 (balanced = acc - 0.01)
    assert paired.metric == "oracle_test_balanced_acc" and paired.mean == pytest.approx(0.04, abs=1e-12)
    assert "oracle: chosen on the test set, optimistic" in report.headline
    markdown = (tmp_path / "oracle" / "report.md").read_text()
    assert "oracle (best test epoch: optimistic) acc" in markdown
    assert report.groups.iloc[0]["oracle_test_acc_mean"] == pytest.approx(np.mean([0.85, 0.86, 0.81]), abs=1e-12)
    default = build_report([str(sweep)], str(tmp_path / "default"))
    assert "oracle" not in (tmp_path / "default" / "report.md").read_text() and "oracle" not in default.headline


@pytest.mark.slow  # builds whole reports, figures included
def test_ranking_across_settings(tmp_path):
    # three losses on two imbalance ratios; ldam first on both, focal and ce trade places
    cells = {("ce", 10): 0.80, ("focal", 10): 0.82, ("ldam", 10): 0.85,
             ("ce", 50): 0.72, ("focal", 50): 0.70, ("ldam", 50): 0.78}
    for job, ((loss, ratio), best) in enumerate(cells.items()):
        for seed in (0, 1):
            path = tmp_path / "runs" / f"{job}_{seed}"
            write_run(path, loss, seed, best + 0.001 * seed, imbalance_ratio=ratio)
    report = build_report([str(tmp_path / "runs")], str(tmp_path / "report"))
    assert report.ranking.settings == 2
    assert report.ranking.average_rank.to_dict() == {"ldam": 1.0, "focal": 2.5, "ce": 2.5}
    assert report.ranking.critical_difference == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 2)), abs=1e-3)
    assert "average rank across settings" in report.images
    assert "Friedman test" in (tmp_path / "report" / "report.md").read_text()
