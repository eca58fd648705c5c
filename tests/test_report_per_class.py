"""The class names on the figures' class axes, on run folders written in the trainer's own formats."""

import csv

import matplotlib.pyplot as plt
import numpy as np
import torch

from lossbench.report import figures
from lossbench.report.runs import load_runs
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
    write_run(path, {"loss": {"name": loss}, "seed": seed, "dataset": {"name": dataset}}, [f"loss={loss}", f"seed={seed}"],
              {"test_acc": acc, "test_balanced_acc": acc - 0.05})
    k = len(counts)
    last = rng.uniform(0, 1, k) if bias is None else np.clip(0.5 + bias + rng.uniform(-0.01, 0.01, k), 0, 1)
    selected = rng.uniform(0, 1, k) if bias is None else np.clip(0.5 + bias + rng.uniform(-0.01, 0.01, k), 0, 1)
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
