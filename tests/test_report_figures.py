"""The report's figures, read back: scales, plotted values against the CSV files, tick labels, resolution."""

import csv
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from lossbench.report import figures
from lossbench.report.runs import load_runs

EPOCHS = 10
SELECTED = 6  # the epoch of best validation balanced accuracy in every run below


def write_run(path, config: dict, overrides: list[str], columns: dict, per_class: str | None = None,
              calibration: list[int] | None = None):
    """A finished run folder: ``columns`` of metrics.csv over EPOCHS epochs (validation peaking at SELECTED)."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    e = np.arange(1, EPOCHS + 1)
    rows = {"epoch": e, "lr": 0.1 + 0 * e, "train_loss": 2.0 * np.exp(-e / 4), "train_acc": 0.5 + 0.04 * e,
            "val_balanced_acc": 0.7 - 0.01 * np.abs(e - SELECTED), "test_loss": 1.0 + 0 * e,
            "test_nll": 1.0 + 0 * e, "test_ece": 0.05 + 0 * e, **columns}
    with open(path / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(rows)
        writer.writerows(zip(*(np.broadcast_to(np.asarray(v, dtype=float), e.shape) for v in rows.values())))
    (path / "summary.json").write_text(json.dumps({"status": "finished"}))
    if per_class is not None:
        (path / "per_class.csv").write_text(per_class)
    if calibration is not None:
        with open(path / "calibration.csv", "w") as f:
            f.write("bin,lower,upper,count,confidence,accuracy\n")
            for b, n in enumerate(calibration):
                f.write(f"{b},{b / 15},{(b + 1) / 15},{n},{(b + 0.5) / 15},{(b + 0.5) / 15 if n else ''}\n")


def test_reliability_diagram_shows_how_many_images_each_bin_holds(tmp_path):
    counts = [0, 0, 0, 0, 1, 3, 0, 10, 0, 40, 0, 200, 0, 900, 4000]
    e = np.arange(1, EPOCHS + 1)
    write_run(tmp_path / "run", {"loss": {"name": "ce"}, "seed": 0}, ["loss=ce"],
              {"test_acc": 0.5 + 0 * e, "test_balanced_acc": 0.5 + 0 * e}, calibration=counts)
    run = load_runs([str(tmp_path / "run")])[0]
    ax = figures.run_figure(run).axes[4]
    filled = [n for n in counts if n]
    assert [t.get_text() for t in ax.texts] == [str(n) for n in filled]
    alphas = [p.get_facecolor()[3] for p in ax.patches]
    assert alphas == sorted(alphas) and len(set(alphas)) == len(filled)  # paler where fewer
    assert alphas[0] < 0.25 and alphas[-1] == pytest.approx(0.9)
    assert [p.get_height() for p in ax.patches] == pytest.approx([(b + 0.5) / 15 for b, n in enumerate(counts) if n])


def test_a_class_never_right_is_marked_at_zero(tmp_path):
    e = np.arange(1, EPOCHS + 1)
    write_run(tmp_path / "run", {"loss": {"name": "ce"}, "seed": 0}, ["loss=ce"],
              {"test_acc": 0.5 + 0 * e, "test_balanced_acc": 0.4 + 0 * e},
              per_class="class,train_count,group,test_acc_last,test_acc_best\n"
                        "0,100,head,0.9,0.9\n1,5,tail,0.0,0.1\n2,50,medium,0.6,0.7\n3,4,tail,0.0,0.0\n")
    ax = figures.run_figure(load_runs([str(tmp_path / "run")])[0]).axes[3]
    (zero,) = [line for line in ax.lines if line.get_label() == "0% accuracy"]
    # classes by training count: 0, 2, 1, 3; the last two never right
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "1", "3"]
    assert list(zero.get_xdata()) == [2, 3] and list(zero.get_ydata()) == [0, 0]
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.9, 0.6, 0.0, 0.0])


@pytest.mark.parametrize("gap, expected", [(0.001, ["train", "test = test balanced (within 0.5 pts)"]),
                                           (0.03, ["train", "test", "test balanced"])])
def test_test_and_balanced_accuracy_never_hide_each_other(tmp_path, gap, expected):
    e = np.arange(1, EPOCHS + 1)
    acc = 0.5 + 0.03 * e
    write_run(tmp_path / "run", {"loss": {"name": "ce"}, "seed": 0}, ["loss=ce"],
              {"test_acc": acc, "test_balanced_acc": acc - gap})
    run = load_runs([str(tmp_path / "run")])[0]
    ax = figures.run_figure(run).axes[1]
    curves = [line for line in ax.lines if line.get_label() in expected]
    assert [line.get_label() for line in curves] == expected
    np.testing.assert_allclose(curves[1].get_ydata(), run.metrics["test_acc"])
    if len(curves) == 3:
        np.testing.assert_allclose(curves[2].get_ydata(), run.metrics["test_balanced_acc"])
        assert curves[1].get_linestyle() == "-" and curves[2].get_linestyle() == "--"


def test_figures_are_saved_at_print_resolution(tmp_path):
    e = np.arange(1, EPOCHS + 1)
    write_run(tmp_path / "run", {"loss": {"name": "ce"}, "seed": 0}, ["loss=ce"],
              {"test_acc": 0.5 + 0 * e, "test_balanced_acc": 0.4 + 0 * e})
    fig = figures.run_figure(load_runs([str(tmp_path / "run")])[0])
    width, height = fig.get_size_inches()
    path = figures.save(fig, tmp_path / "run.png")
    with Image.open(path) as image:
        assert image.info["dpi"] == pytest.approx((200, 200), abs=0.01)
        assert image.size == (round(width * 200), round(height * 200))
        assert image.mode == "P"  # a palette: what keeps the embedding report small
