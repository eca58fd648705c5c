"""The report's figures, read back: scales, plotted values against the CSV files, tick labels, resolution."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.collections import LineCollection, PathCollection
from PIL import Image

from lossbench.report import figures
from lossbench.report.aggregate import paired_differences, summarize_groups
from lossbench.report.build import Report, build_report, console_summary, runs_table
from lossbench.report.render import render_markdown
from lossbench.report.runs import load_runs
from lossbench.report.statistics import bootstrap_interval

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


def loss_run(root, loss, seed, accuracy, **columns):
    e = np.arange(1, EPOCHS + 1)
    acc = accuracy + 0.002 * e
    write_run(root / f"{loss}_{seed}", {"loss": {"name": loss}, "seed": seed, "dataset": {"name": "digits_lt"}},
              [f"loss={loss}", f"seed={seed}"],
              {"test_acc": acc, "test_balanced_acc": acc - 0.05, **columns})


# the selected epoch's test balanced accuracy (0.002 * 6 above the base, minus 0.05) per (loss, seed)
BASE = {("ce", 0): 0.80, ("ce", 1): 0.81, ("ce", 2): 0.79,
        ("focal", 0): 0.82, ("focal", 1): 0.83, ("focal", 2): 0.825,
        ("ldam", 0): 0.78, ("ldam", 1): 0.775, ("ldam", 2): 0.79}


def selected_balanced(loss, seed):
    return BASE[(loss, seed)] + 0.002 * SELECTED - 0.05


def long_tail_columns(loss, seed):
    e = np.arange(1, EPOCHS + 1)
    head = 0.9 + 0 * e + 0.001 * seed
    tail = {"ce": 0.30, "focal": 0.40, "ldam": 0.55}[loss] + 0.01 * seed + 0.01 * e
    return {"test_head_acc": head, "test_medium_acc": (head + tail) / 2, "test_tail_acc": tail}


@pytest.fixture
def losses(tmp_path):
    root = tmp_path / "losses"
    for (loss, seed), base in BASE.items():
        e = np.arange(1, EPOCHS + 1)
        # ldam's NLL starts an order of magnitude above the others'
        nll = 13.0 * np.exp(-(e - 1)) + 0.6 if loss == "ldam" else 1.1 - 0.05 * e
        loss_run(root, loss, seed, base, test_nll=nll, **long_tail_columns(loss, seed))
    return root


def test_loss_axis_is_logarithmic_where_the_curves_span_decades(losses):
    runs = load_runs([str(losses)])
    accuracy, nll = figures.mean_curves_figure(runs, "loss").axes
    assert nll.get_yscale() == "log" and accuracy.get_yscale() == "linear"
    lines = {line.get_label(): line for line in nll.lines}
    expected = np.mean([r.metrics["test_nll"] for r in runs if r.config_value("loss") == "ldam"], axis=0)
    np.testing.assert_allclose(lines["loss=ldam"].get_ydata(), expected)
    assert lines["loss=ldam"].get_ydata()[0] == pytest.approx(13.6)
    ce_only = [r for r in runs if r.config_value("loss") == "ce"]
    assert figures.mean_curves_figure(ce_only, "loss").axes[1].get_yscale() == "linear"
    for run in ce_only:
        run.metrics["test_acc"] = np.linspace(0.01, 0.6, EPOCHS)
    assert figures.mean_curves_figure(ce_only, "loss").axes[0].get_yscale() == "linear"


def _points(ax):
    (dots,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    return np.asarray(dots.get_offsets())


def _intervals(ax):
    return [np.asarray(s) for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]


def test_group_points_show_each_run_and_the_mean_with_its_interval(losses):
    runs = load_runs([str(losses)])
    groups = summarize_groups(runs, "loss")
    fig = figures.group_points_figure(runs, "loss", "selected_test_balanced_acc", "test balanced accuracy",
                                      list(groups["loss"]))
    ax = fig.axes[0]
    order = ["focal", "ce", "ldam"]  # the ranking
    assert [t.get_text() for t in ax.get_xticklabels()] == order
    points = _points(ax)
    expected = [selected_balanced(loss, seed) for loss in order for seed in range(3)]
    np.testing.assert_allclose(points[:, 1], expected, atol=1e-12)
    # each run in its group's column
    np.testing.assert_array_equal(np.round(points[:, 0]), np.repeat([0, 1, 2], 3))
    (means,) = [line for line in ax.lines if line.get_label() == "mean"]
    np.testing.assert_allclose(means.get_ydata(), [np.mean(expected[3 * i:3 * i + 3]) for i in range(3)], atol=1e-12)
    for i, segment in enumerate(_intervals(ax)):
        low, high = bootstrap_interval(np.array(expected[3 * i:3 * i + 3]))
        np.testing.assert_allclose(segment, [[i, low], [i, high]], atol=1e-12)
    # zoomed to the data, not 0 to 1: the 4-point spread fills most of the axis
    bottom, top = ax.get_ylim()
    assert bottom < min(expected) and top > max(expected) and top - bottom < 0.1


def test_forest_plot_of_the_paired_differences(losses):
    runs = load_runs([str(losses)])
    paired = paired_differences(runs, "loss", "ce")
    ax = figures.forest_figure(paired, "loss", "difference (points)").axes[0]
    by_group = {c.group: c for c in paired}
    # largest difference on top: focal (+2.2 pts) above ldam (-1.2)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["ldam (3 pairs)", "focal (3 pairs)"]
    assert by_group["focal"].mean == pytest.approx(0.025) and by_group["ldam"].mean == pytest.approx(-0.055 / 3)
    np.testing.assert_allclose(_points(ax)[:, 0], [by_group["ldam"].mean * 100, by_group["focal"].mean * 100])
    for segment, group in zip(_intervals(ax), ("ldam", "focal")):
        np.testing.assert_allclose(segment[:, 0], [by_group[group].low * 100, by_group[group].high * 100])
    (zero,) = [line for line in ax.lines if line.get_label().startswith("no difference")]
    assert list(zero.get_xdata()) == [0, 0]


def test_head_medium_and_tail_accuracy_at_the_compared_epoch(losses):
    runs = load_runs([str(losses)])
    order = ["focal", "ce", "ldam"]
    for epoch, epoch_number in (("selected", SELECTED), ("final", EPOCHS)):
        ax = figures.tail_figure(runs, "loss", epoch, order).axes[0]
        dots = {c.get_label(): np.asarray(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)}
        assert set(dots) == {"head: one run", "medium: one run", "tail: one run"}
        for part in ("head", "medium", "tail"):
            expected = [long_tail_columns(loss, seed)[f"test_{part}_acc"][epoch_number - 1] for loss in order
                        for seed in range(3)]
            np.testing.assert_allclose(dots[f"{part}: one run"][:, 1], expected, atol=1e-12)
        assert [t.get_text() for t in ax.get_xticklabels()] == order
    balanced = [r for r in runs]
    for r in balanced:
        r.metrics[["test_head_acc", "test_medium_acc", "test_tail_acc"]] = np.nan
    assert figures.tail_figure(balanced, "loss", "selected") is None


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


def test_figures_are_saved_at_print_resolution(losses, tmp_path):
    runs = load_runs([str(losses)])
    fig = figures.run_figure(runs[0])
    width, height = fig.get_size_inches()
    path = figures.save(fig, tmp_path / "run.png")
    with Image.open(path) as image:
        assert image.info["dpi"] == pytest.approx((200, 200), abs=0.01)
        assert image.size == (round(width * 200), round(height * 200))
        assert image.mode == "P"  # a palette: what keeps the embedding report small


GAMMAS = [0.1234567890123456, 2.718281828459045, 1.4142135623730951, 4.999999999999999, 0.5772156649015329]


@pytest.fixture
def search(tmp_path):
    """A search over focal's gamma: one run per trial, the trials in the order they were tried."""
    root = tmp_path / "search"
    for trial, gamma in enumerate(GAMMAS):
        e = np.arange(1, EPOCHS + 1)
        acc = 0.8 - 0.01 * (gamma - 2) ** 2 + 0 * e
        write_run(root / f"trial_{trial:03d}", {"loss": {"name": "focal", "gamma": gamma}, "seed": 0},
                  ["hparams_search=focal_gamma", f"++loss.gamma={gamma!r}"],
                  {"test_acc": acc, "test_balanced_acc": acc - 0.02})
    return root


def search_metric(gamma):
    return 0.8 - 0.01 * (gamma - 2) ** 2 - 0.02


def test_search_metric_against_the_searched_value(search):
    runs = load_runs([str(search)])
    groups = summarize_groups(runs, "loss.gamma")
    ax = figures.group_points_figure(runs, "loss.gamma", "selected_test_balanced_acc", "test balanced accuracy",
                                     list(groups["loss.gamma"])).axes[0]
    ordered = sorted(GAMMAS)
    points = _points(ax)
    np.testing.assert_allclose(points[:, 0], ordered)
    np.testing.assert_allclose(points[:, 1], [search_metric(g) for g in ordered], atol=1e-12)
    (means,) = [line for line in ax.lines if line.get_label() == "mean"]
    assert means.get_linestyle() == "-" and means.get_markevery() == []  # joined in value order; the dots alone
    np.testing.assert_allclose(means.get_xdata(), ordered)
    assert not _intervals(ax)  # one run per value: no interval to draw
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.123", "0.577", "1.41", "2.72", "5"]
    np.testing.assert_allclose(ax.get_xticks(), ordered)
    curves = figures.mean_curves_figure(runs, "loss.gamma").axes[0]
    assert [line.get_label() for line in curves.lines] == [f"loss.gamma={v}" for v in ("0.123", "0.577", "1.41", "2.72", "5")]


def test_search_ticks_are_rounded_where_there_are_many_values(tmp_path):
    root = tmp_path / "search"
    rng = np.random.default_rng(0)
    for trial, gamma in enumerate(rng.uniform(0, 5, 20)):
        acc = 0.8 + 0 * np.arange(EPOCHS)
        write_run(root / f"trial_{trial:03d}", {"loss": {"name": "focal", "gamma": float(gamma)}, "seed": 0},
                  [f"++loss.gamma={gamma!r}"], {"test_acc": acc, "test_balanced_acc": acc})
    runs = load_runs([str(root)])
    fig = figures.group_points_figure(runs, "loss.gamma", "selected_test_balanced_acc", "test balanced accuracy")
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert 3 <= len(labels) <= 12 and all(len(label.lstrip("−-").replace(".", "")) <= 4 for label in labels)


def test_search_report_lists_the_trials_by_value(search):
    runs = load_runs([str(search)])
    groups = summarize_groups(runs, "loss.gamma")
    report = Report(runs, runs_table(runs), groups, [], "loss.gamma", None, {}, search / "report")
    markdown = render_markdown(report)
    assert "± -" not in markdown and "± -" not in console_summary(report)
    section = markdown.split("## By loss.gamma")[1].split("##")[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("|")][2:]
    assert [r[0].strip() for r in rows] == ["0.123", "0.577", "1.41", "2.72", "5"]
    trials = {g: f"trial_{t:03d}" for t, g in enumerate(GAMMAS)}
    assert [r[1].strip() for r in rows] == [trials[g] for g in sorted(GAMMAS)]
    assert [float(r[4]) for r in rows] == pytest.approx([search_metric(g) for g in sorted(GAMMAS)], abs=1e-4)
    # a group of one run: its value, alone
    comparison = markdown.split("## Comparison")[1].split("##")[0]
    assert f"| {search_metric(GAMMAS[3]):.4f} |" in comparison


def test_short_numbers_keep_distinct_values_distinct():
    assert figures.short_numbers([0.1 + 0.2, 1.0, 2.5]) == {0.30000000000000004: "0.3", 1.0: "1", 2.5: "2.5"}
    assert figures.short_numbers([1.23451, 1.23452]) == {1.23451: "1.23451", 1.23452: "1.23452"}


@pytest.mark.slow  # twelve whole run figures
def test_the_html_report_of_twelve_runs_stays_small(losses, tmp_path):
    for seed in (3, 4, 5):
        loss_run(losses, "focal", seed, 0.82, **long_tail_columns("focal", 0))
    report = build_report([str(losses)], str(tmp_path / "report"))
    assert len(report.runs) == 12
    size = (tmp_path / "report" / "report.html").stat().st_size
    assert size < 3_000_000, f"{size / 1e6:.1f} MB"
    with Image.open(report.images["ce_0"]) as image:
        assert image.info["dpi"] == pytest.approx((200, 200), abs=0.01)



def test_search_values_too_close_for_a_tick_each_get_automatic_ticks(tmp_path):
    root = tmp_path / "search"
    for trial, gamma in enumerate((2.12, 2.19, 2.72, 2.74, 3.01, 4.46)):
        acc = 0.8 + 0 * np.arange(EPOCHS)
        write_run(root / f"trial_{trial:03d}", {"loss": {"name": "focal", "gamma": gamma}, "seed": 0},
                  [f"++loss.gamma={gamma!r}"], {"test_acc": acc, "test_balanced_acc": acc})
    runs = load_runs([str(root)])
    fig = figures.group_points_figure(runs, "loss.gamma", "selected_test_balanced_acc", "test balanced accuracy")
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 2.12 <= t <= 4.46]
    # 2.72 and 2.74 are 0.9% of the span apart: round ticks instead of one per value
    assert ticks and all(round(t * 2) == t * 2 for t in ticks)


def test_per_class_bars_are_labelled_by_class_name(tmp_path):
    import matplotlib.pyplot as plt

    from lossbench.report.runs import Run

    per_class = pd.DataFrame({"class": [0, 1, 2], "name": ["cat", "dog", "bird"], "train_count": [5, 50, 20],
                              "group": ["tail", "head", "medium"], "test_acc_last": [0.2, 0.9, 0.5]})
    run = Run(path=tmp_path, name="r", metrics=pd.DataFrame(), per_class=per_class)
    fig, ax = plt.subplots()
    figures.per_class_axes(ax, run)
    # by training count, most first
    assert [t.get_text() for t in ax.get_xticklabels()] == ["dog", "bird", "cat"]
    assert [p.get_height() for p in ax.patches] == pytest.approx([0.9, 0.5, 0.2])
    plt.close(fig)
