"""The report's per-class table and the class names on the figures' class axes, on run folders written in the
trainer's own formats: the expected numbers are read back from the runs' per_class.csv files."""

import csv

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from lossbench.report import figures
from lossbench.report.aggregate import group_label, summarize_groups
from lossbench.report.build import Report, build_report, runs_table
from lossbench.report.per_class import PER_CLASS_CSV, SHOWN_CLASSES, per_class_tables
from lossbench.report.render import render_html, render_markdown
from lossbench.report.runs import load_runs
from lossbench.report.settings import pool
from lossbench.training.metrics import class_groups
from lossbench.training.run import PER_CLASS_COLUMNS, _per_class_rows
from lossbench.training.run_dir import RunDir
from test_report_figures import EPOCHS, write_run

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# long-tailed, but not in class order: the table must sort by count, not keep the classes' order
CIFAR10_LT = [50, 500, 12, 280, 90, 160, 5, 28, 16, 8]


def write_classes(path, loss: str, seed: int, names: list[str] | None, counts: list[int], long_tailed: bool,
                  rng, dataset: str = "cifar10_lt", bias: np.ndarray | None = None) -> None:
    """A finished run folder as the trainer writes it: metrics.csv over EPOCHS epochs (validation peaking at
    SELECTED), per_class.csv with each class's test accuracy at the last and the selected epochs, and
    summary.json with the class counts and, where given, names."""
    e = np.arange(1, EPOCHS + 1)
    acc = 0.6 + 0.01 * e
    write_run(path, {"loss": {"name": loss}, "seed": seed, "dataset": {"name": dataset}},
              [f"loss={loss}", f"seed={seed}"], {"test_acc": acc, "test_balanced_acc": acc - 0.05})
    k = len(counts)

    def accuracies():  # at random, or around 0.5 + bias
        return rng.uniform(0, 1, k) if bias is None else np.clip(0.5 + bias + rng.uniform(-0.01, 0.01, k), 0, 1)

    last, selected = accuracies(), accuracies()
    run_dir = RunDir(path)
    run_dir.write_per_class(PER_CLASS_COLUMNS, _per_class_rows(
        counts, names or [str(c) for c in range(k)], class_groups(counts) if long_tailed else None, last, selected))
    summary = {"status": "finished", "class_counts": counts}
    if names is not None:
        summary["class_names"] = names
    else:  # a run from before names were recorded
        with open(path / "per_class.csv", newline="") as f:
            rows = [{c: v for c, v in row.items() if c != "name"} for row in csv.DictReader(f)]
        with open(path / "per_class.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, [c for c in PER_CLASS_COLUMNS if c != "name"])
            writer.writeheader()
            writer.writerows(rows)
    run_dir.write_summary(summary)


def read_per_class(path) -> list[dict]:
    with open(path / "per_class.csv", newline="") as f:
        return list(csv.DictReader(f))


def expected_means(root, losses, seeds, column: str) -> dict[str, np.ndarray]:
    """Each loss's mean over its seeds of the runs' per_class.csv ``column``, in class order."""
    return {loss: np.mean([[float(r[column]) for r in read_per_class(root / f"{loss}_{seed}")] for seed in seeds],
                          axis=0)
            for loss in losses}


def markdown_section(markdown: str, title: str) -> tuple[str, list[list[str]]]:
    """A section's intro and its table's rows, cells stripped (header included)."""
    section = markdown.split(f"## {title}\n")[1].split("\n## ")[0]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("|")]
    intro = section.strip().split("\n")[0]
    return intro, [rows[0]] + rows[2:]


def report_without_figures(root, epoch: str = "selected", baseline: str | None = "ce") -> Report:
    """What build_report assembles, less its figures: quick to make."""
    runs = load_runs([str(root)])
    pooled = pool(runs, "loss", group_label)
    groups = pd.concat([summarize_groups(members, "loss", epoch).assign(setting=label)
                        for label, members in pooled.settings.items()], ignore_index=True)
    per_class = per_class_tables(pooled.settings, "loss", baseline, epoch, groups)
    return Report(runs, runs_table(runs), groups, [], "loss", baseline, {}, root / "report", epoch=epoch,
                  settings=list(pooled.settings), per_class=per_class)


LOSSES, SEEDS = ("ce", "focal", "ldam"), (0, 1, 2)


@pytest.fixture
def cifar10_lt(tmp_path):
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    for loss in LOSSES:
        for seed in SEEDS:
            write_classes(root / f"{loss}_{seed}", loss, seed, CIFAR10, CIFAR10_LT, True, rng)
    return root


@pytest.mark.parametrize("epoch, column, words", [("selected", "test_acc_selected", "validation-selected epoch"),
                                                  ("final", "test_acc_last", "final epoch")])
def test_each_groups_mean_per_class_at_the_compared_epoch(cifar10_lt, epoch, column, words):
    report = report_without_figures(cifar10_lt, epoch)
    intro, rows = markdown_section(render_markdown(report), "Per class")
    assert intro.startswith(f"Test accuracy per class at the {words}:")
    assert "Classes by training count, most first." in intro and f"`{PER_CLASS_CSV}`" in intro
    order = list(report.groups["loss"])  # the comparison's ranking
    assert rows[0] == ["class", "training images", *order, *(f"{g} - ce" for g in order if g != "ce")]
    # head first: by training count, not in class order
    by_count = sorted(range(10), key=lambda c: -CIFAR10_LT[c])
    assert [r[0] for r in rows[1:]] == [CIFAR10[c] for c in by_count]
    assert [r[1] for r in rows[1:]] == [str(CIFAR10_LT[c]) for c in by_count]
    means = expected_means(cifar10_lt, LOSSES, SEEDS, column)
    for i, loss in enumerate(order):
        assert [r[2 + i] for r in rows[1:]] == [f"{means[loss][c]:.4f}" for c in by_count]
    for i, loss in enumerate(g for g in order if g != "ce"):
        cells = [float(r[2 + len(order) + i]) for r in rows[1:]]
        assert cells == pytest.approx([means[loss][c] - means["ce"][c] for c in by_count], abs=5e-5)
    # the numbers behind the cells, unrounded
    table = report.per_class.table.set_index("class")
    for loss in LOSSES:
        np.testing.assert_allclose(table.loc[range(10), loss], means[loss], rtol=1e-12)
    np.testing.assert_allclose(table.loc[range(10), "focal - ce"], means["focal"] - means["ce"], rtol=1e-12)


def test_the_same_section_in_html_with_its_entry_in_the_contents(cifar10_lt):
    page = render_html(report_without_figures(cifar10_lt))
    assert '<li><a href="#per-class">Per class</a></li>' in page
    section = page.split('<section id="per-class">')[1].split("</section>")[0]
    assert "<code>per_class_accuracy.csv</code>" in section
    assert [name for name in CIFAR10 if f'<td class="text">{name}</td>' in section] == CIFAR10
    assert '<th class="num" scope="col">focal - ce</th>' in section  # numbers, right-aligned


def test_balanced_data_keeps_the_class_order_and_old_runs_their_indices(tmp_path):
    root = tmp_path / "runs"
    rng = np.random.default_rng(1)
    for loss in ("ce", "focal"):
        for seed in (0, 1):
            write_classes(root / f"{loss}_{seed}", loss, seed, None, [180] * 10, False, rng, dataset="digits")
    report = report_without_figures(root)
    intro, rows = markdown_section(render_markdown(report), "Per class")
    assert "Classes in class order." in intro
    assert [r[0] for r in rows[1:]] == [str(c) for c in range(10)]
    means = expected_means(root, ("ce", "focal"), (0, 1), "test_acc_selected")
    column = rows[0].index("focal")
    assert [r[column] for r in rows[1:]] == [f"{v:.4f}" for v in means["focal"]]


def test_no_baseline_no_differences(cifar10_lt):
    report = report_without_figures(cifar10_lt, baseline=None)
    _, rows = markdown_section(render_markdown(report), "Per class")
    assert rows[0] == ["class", "training images", *report.groups["loss"]]
    assert not report.per_class.differences and list(report.per_class.table.columns[3:]) == list(report.groups["loss"])


def test_runs_without_numbers_or_with_other_classes_are_said_and_left_out(cifar10_lt):
    (cifar10_lt / "ldam_2" / "per_class.csv").unlink()
    rng = np.random.default_rng(2)
    # the same setting (config), but five classes: not pooled with the ten
    other = cifar10_lt / "other"
    write_classes(other, "focal", 3, CIFAR10[:5], CIFAR10_LT[:5], True, rng)
    report = report_without_figures(cifar10_lt)
    intro, rows = markdown_section(render_markdown(report), "Per class")
    assert ("1 of 10 runs holds no per-class test accuracy for that epoch and is left out of this table "
            "(ldam_2).") in intro
    assert "1 run trained on other classes than the rest is not pooled with them here (other)." in intro
    assert len(rows) == 1 + 10
    means = expected_means(cifar10_lt, ("ldam",), (0, 1), "test_acc_selected")
    np.testing.assert_allclose(report.per_class.table.set_index("class").loc[range(10), "ldam"], means["ldam"])
    focal = expected_means(cifar10_lt, ("focal",), SEEDS, "test_acc_selected")["focal"]
    np.testing.assert_allclose(report.per_class.table.set_index("class").loc[range(10), "focal"], focal)


def test_no_section_where_no_run_holds_the_compared_epochs_numbers(cifar10_lt):
    for run in cifar10_lt.iterdir():
        pc = pd.read_csv(run / "per_class.csv")
        pc.drop(columns=["test_acc_selected"]).to_csv(run / "per_class.csv", index=False)
    report = report_without_figures(cifar10_lt)
    assert report.per_class is None and "## Per class" not in render_markdown(report)


CIFAR100_LT = [int(500 * 0.01 ** (i / 99)) for i in range(100)]
# named by number, as a folder of images might be: "007" read back from per_class.csv would be 7
NUMBERED = [f"{c:03d}" for c in range(100)]


@pytest.fixture
def hundred_classes(tmp_path):
    """ce and focal, two seeds each, on 100 classes; focal ahead of ce by a known amount per class."""
    root = tmp_path / "runs"
    rng = np.random.default_rng(3)
    gain = np.linspace(-0.2, 0.3, 100)[rng.permutation(100)]
    for loss in ("ce", "focal"):
        for seed in (0, 1):
            write_classes(root / f"{loss}_{seed}", loss, seed, NUMBERED, CIFAR100_LT, True, rng,
                          dataset="cifar100_lt", bias=gain if loss == "focal" else np.zeros(100))
    return root


@pytest.mark.slow  # draws a whole report, figures included
def test_many_classes_show_where_the_groups_differ_most_and_the_csv_holds_all(hundred_classes, tmp_path):
    report = build_report([str(hundred_classes)], str(tmp_path / "report"))
    markdown = (tmp_path / "report" / "report.md").read_text()
    intro, rows = markdown_section(markdown, "Per class")
    assert (f"{SHOWN_CLASSES} of 100 classes are shown: those where the groups' mean accuracies lie furthest apart "
            "(largest minus smallest).") in intro
    means = expected_means(hundred_classes, ("ce", "focal"), (0, 1), "test_acc_selected")
    difference = means["focal"] - means["ce"]
    furthest = set(np.argsort(-np.abs(difference), kind="stable")[:SHOWN_CLASSES])
    # those classes, head first (CIFAR100_LT falls with the class index; ties keep class order)
    shown = [c for c in sorted(range(100), key=lambda c: -CIFAR100_LT[c]) if c in furthest]
    assert [r[0] for r in rows[1:]] == [NUMBERED[c] for c in shown]
    assert [float(r[rows[0].index("focal - ce")]) for r in rows[1:]] == pytest.approx(difference[shown], abs=5e-5)
    # the CSV: every class, head first, the means and differences to the 6 digits the runs wrote
    with open(tmp_path / "report" / PER_CLASS_CSV, newline="") as f:
        written = list(csv.DictReader(f))
    order = sorted(range(100), key=lambda c: -CIFAR100_LT[c])
    ranking = list(report.groups["loss"])  # the comparison's order
    assert sorted(ranking) == ["ce", "focal"]
    assert list(written[0]) == ["class", "name", "train_count", *ranking, "focal - ce"]
    assert [int(r["class"]) for r in written] == order
    assert [r["name"] for r in written] == [NUMBERED[c] for c in order]
    assert [int(r["train_count"]) for r in written] == [CIFAR100_LT[c] for c in order]
    for column, expected in (("ce", means["ce"]), ("focal", means["focal"]), ("focal - ce", difference)):
        np.testing.assert_allclose([float(r[column]) for r in written], expected[order], rtol=1e-5, atol=1e-6)
    assert report.per_class is not None and len(report.per_class.table) == 100


def _posthoc_run(path, names: list[str] | None, counts: list[int], seed: int = 0):
    """A run with the selected epoch's validation and test logits saved, as the trainer saves them."""
    rng = np.random.default_rng(seed)
    k = len(counts)

    def split(n):
        labels = rng.integers(0, k, n)
        return torch.tensor(rng.normal(0, 1, (n, k)) + 3 * np.eye(k)[labels]), torch.tensor(labels)

    run_dir = RunDir(path)
    path.mkdir(parents=True)
    run_dir.save_logits("selected", 3, {"val": split(20 * k), "test": split(20 * k)})
    (path / "metrics.csv").write_text("epoch,test_acc\n3,0.5\n")
    summary = {"status": "finished", "class_counts": counts}
    if names is not None:
        summary["class_names"] = names
    run_dir.write_summary(summary)
    (run,) = load_runs([str(path)])
    return run


def _class_axis(fig):
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith("per-class test accuracy")]
    return ax


def test_posthoc_figure_names_the_classes_by_training_count(tmp_path):
    fig = figures.posthoc_figure(_posthoc_run(tmp_path / "named", CIFAR10, CIFAR10_LT))
    ax = _class_axis(fig)
    by_count = sorted(range(10), key=lambda c: -CIFAR10_LT[c])
    assert [t.get_text() for t in ax.get_xticklabels()] == [CIFAR10[c] for c in by_count]
    assert ax.get_xlabel() == "class (by training count, most first)"
    assert all(t.get_rotation() == 90 for t in ax.get_xticklabels())  # names longer than a digit or two
    plt.close(fig)
    # a run from before names were recorded: the classes' indices
    fig = figures.posthoc_figure(_posthoc_run(tmp_path / "old", None, CIFAR10_LT))
    assert [t.get_text() for t in _class_axis(fig).get_xticklabels()] == [str(c) for c in by_count]
    plt.close(fig)


def test_a_hundred_class_names_are_thinned_to_what_the_axis_holds(tmp_path):
    names = [f"class_{c}" for c in range(100)]
    counts = [int(500 * 0.01 ** (((c * 37) % 100) / 99)) for c in range(100)]  # by count, not in class order
    run = _posthoc_run(tmp_path / "run", names, counts)
    fig = figures.posthoc_figure(run)
    ax = _class_axis(fig)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    step = int(ax.get_xlabel().split("; 1 in ")[1].split()[0])
    assert 1 < step <= 4 and ax.get_xlabel().endswith(f"; 1 in {step} named")
    by_count = np.argsort(-np.asarray(counts), kind="stable")
    assert labels == [names[c] for c in by_count[::step]]
    np.testing.assert_array_equal(ax.get_xticks(), np.arange(0, 100, step))
    # a tick still marks every class (a minor one where no name is)
    np.testing.assert_array_equal(np.union1d(ax.get_xticks(), ax.get_xticks(minor=True)), np.arange(100))
    # drawn, neighbouring names do not overlap
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels()]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))
    plt.close(fig)


def test_the_run_figures_class_axis_is_the_same_helper(tmp_path):
    names = [f"class_{c}" for c in range(100)]
    counts = list(range(200, 100, -1))
    write_classes(tmp_path / "run", "ce", 0, names, counts, True, np.random.default_rng(4), dataset="cifar100_lt")
    (run,) = load_runs([str(tmp_path / "run")])
    fig = figures.run_figure(run)
    ax = _class_axis(fig)
    step = int(ax.get_xlabel().split("; 1 in ")[1].split()[0])
    assert [t.get_text() for t in ax.get_xticklabels()] == names[::step]
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels()]
    assert all(a.x1 <= b.x0 for a, b in zip(boxes, boxes[1:]))
    plt.close(fig)


def test_each_setting_its_own_classes(cifar10_lt):
    rng = np.random.default_rng(5)
    names = [f"class_{c}" for c in range(40)]
    for loss in ("ce", "focal"):
        write_classes(cifar10_lt / f"{loss}_40", loss, 0, names, list(range(400, 0, -10)), True, rng,
                      dataset="forty_classes")
    report = report_without_figures(cifar10_lt)
    assert report.settings == ["dataset.name=cifar10_lt", "dataset.name=forty_classes"]
    intro, rows = markdown_section(render_markdown(report), "Per class")
    assert (f"With dataset.name=forty_classes: {SHOWN_CLASSES} of 40 classes are shown: those where the groups' "
            "mean accuracies lie furthest apart (largest minus smallest).") in intro
    assert rows[0][:3] == ["setting", "class", "training images"]
    assert [r[0] for r in rows[1:]] == ["dataset.name=cifar10_lt"] * 10 + ["dataset.name=forty_classes"] * SHOWN_CLASSES
    forty = [r for r in rows[1:] if r[0] == "dataset.name=forty_classes"]
    assert {r[1] for r in forty} <= set(names) and all(r[rows[0].index("ldam")] == "-" for r in forty)
    # each setting's means from its own runs: ce's one run on forty classes is its per_class.csv
    ce = {r["name"]: float(r["test_acc_selected"]) for r in read_per_class(cifar10_lt / "ce_40")}
    assert [r[rows[0].index("ce")] for r in forty] == [f"{ce[r[1]]:.4f}" for r in forty]
    assert len(report.per_class.table) == 50


def test_the_oracle_epoch_where_per_class_csv_holds_it(cifar10_lt):
    # test accuracy rises to the last epoch in every run: the best test epoch is the last one
    report = report_without_figures(cifar10_lt, "oracle")
    intro, _ = markdown_section(render_markdown(report), "Per class")
    assert intro.startswith("Test accuracy per class at the oracle (best test epoch: optimistic) epoch:")
    last = expected_means(cifar10_lt, LOSSES, SEEDS, "test_acc_last")
    np.testing.assert_allclose(report.per_class.table.set_index("class").loc[range(10), "ce"], last["ce"])
    # one whose test accuracy peaks at epoch 8, neither its selected nor its last: per_class.csv has no numbers
    metrics = pd.read_csv(cifar10_lt / "ce_1" / "metrics.csv")
    metrics.loc[metrics["epoch"] == 8, "test_acc"] = 0.99
    metrics.to_csv(cifar10_lt / "ce_1" / "metrics.csv", index=False)
    report = report_without_figures(cifar10_lt, "oracle")
    intro, _ = markdown_section(render_markdown(report), "Per class")
    assert "1 of 9 runs holds no per-class test accuracy for that epoch and is left out of this table (ce_1)." in intro
    ce = expected_means(cifar10_lt, ("ce",), (0, 2), "test_acc_last")["ce"]
    np.testing.assert_allclose(report.per_class.table.set_index("class").loc[range(10), "ce"], ce)
