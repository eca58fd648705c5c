"""A comparison judged on real training runs: a digits_lt sweep of ce and
balanced_softmax over three seeds, trained here, then reported."""

import json

import numpy as np
import pytest

from helpers.training import compose_train
from lossbench.report.build import build_report
from lossbench.training.run import run_training

pytestmark = pytest.mark.slow  # trains networks


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    for job, (loss, seed) in enumerate((loss, seed) for loss in ("ce", "balanced_softmax") for seed in (0, 1, 2)):
        run_training(compose_train("dataset=digits_lt", f"loss={loss}", f"seed={seed}", "trainer.epochs=6"),
                     root / f"{job}_loss={loss},seed={seed}")
    return root


def _selected(run_dir, metric="test_balanced_acc"):
    return json.loads((run_dir / "summary.json").read_text())["selected"][metric]


def test_the_headline_and_the_paired_table_agree_with_the_runs(sweep, tmp_path):
    report = build_report([str(sweep)], str(tmp_path / "report"))
    (paired,) = report.paired
    by_seed = {seed: {loss: _selected(next(sweep.glob(f"*_loss={loss},seed={seed}"))) for loss in ("ce", "balanced_softmax")}
               for seed in (0, 1, 2)}
    diffs = np.array([v["balanced_softmax"] - v["ce"] for v in by_seed.values()])
    # the report reads metrics.csv, written to 6 significant digits
    assert paired.n == 3 and paired.mean == pytest.approx(diffs.mean(), abs=1e-5)
    assert paired.low <= diffs.mean() <= paired.high
    # on digits_lt (imbalance 10), the balanced softmax lifts the rare classes far above CE's
    assert paired.verdict == "better than the baseline" and paired.p_improvement == 1.0
    assert report.headline.startswith(
        f"On digits_lt (r=10), balanced_softmax is best by validation-selected balanced accuracy: "
        f"{diffs.mean() * 100:+.1f} pts over ce (95% CI [{paired.low * 100:.1f}, {paired.high * 100:.1f}])")
    assert report.headline in (tmp_path / "report" / "report.md").read_text()
    # each run's post-hoc figure, redone from its saved logits
    assert sum(name.startswith("post-hoc: ") for name in report.images) == 6


def test_the_per_class_table_averages_each_runs_per_class_file(sweep):
    import csv

    from lossbench.report.aggregate import group_label, summarize_groups
    from lossbench.report.per_class import per_class_tables
    from lossbench.report.runs import load_runs
    from lossbench.report.settings import pool

    settings = pool(load_runs([str(sweep)]), "loss", group_label).settings
    groups = summarize_groups(settings[""], "loss").assign(setting="")
    per_class = per_class_tables(settings, "loss", "ce", "selected", groups)
    # the groups in the comparison's order: its ranking
    assert per_class.groups == list(groups["loss"]) == ["balanced_softmax", "ce"]
    files = {}
    for loss in ("ce", "balanced_softmax"):
        for seed in (0, 1, 2):
            with open(next(sweep.glob(f"*_loss={loss},seed={seed}")) / "per_class.csv", newline="") as f:
                files[loss, seed] = list(csv.DictReader(f))
    counts = [int(r["train_count"]) for r in files["ce", 0]]
    # digits_lt is long-tailed: head first; its classes are named by their digit
    order = sorted(range(10), key=lambda c: -counts[c])
    table = per_class.table
    assert list(table["class"]) == order and list(table["name"]) == [str(c) for c in order]
    assert list(table["train_count"]) == [counts[c] for c in order]
    means = {loss: np.mean([[float(r["test_acc_selected"]) for r in files[loss, seed]] for seed in (0, 1, 2)], axis=0)
             for loss in ("ce", "balanced_softmax")}
    for loss, mean in means.items():
        np.testing.assert_allclose(table[loss], mean[order], rtol=1e-12)
    np.testing.assert_allclose(table["balanced_softmax - ce"], (means["balanced_softmax"] - means["ce"])[order],
                               rtol=1e-9, atol=1e-12)
    # the rare classes are where the balanced softmax helps
    assert table["balanced_softmax - ce"].iloc[-3:].mean() > 0
