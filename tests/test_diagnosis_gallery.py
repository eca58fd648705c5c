"""The diagnosis on real training runs on digits and digits_lt, each made with a
condition induced on purpose and the label a practitioner gives its curves."""

import re

import numpy as np
import pytest

from helpers.training import compose_train
from lossbench.diagnosis import Diagnosis
from lossbench.report import figures
from lossbench.report.runs import load_runs
from lossbench.training.run import run_training

pytestmark = pytest.mark.slow

NO_REGULARISATION = ("optim.weight_decay=0", "dataset.augment.crop_padding=0")
# name: (overrides, the label its curves deserve)
GALLERY = {
    # the quick start: 99% test accuracy, both losses flat at their minimum, the learning rate annealed to 0
    "quick_start": ((), "converged"),
    "quick_start_long_tail": (("dataset=digits_lt",), "converged"),
    # 99% with a 1-point gap: not overfitting in any way that matters
    "no_regularisation": (NO_REGULARISATION, "converged"),
    "label_smoothing": (("loss=label_smoothing",), "converged"),
    "focal": (("loss=focal",), "converged"),
    "learning_rate_too_low": (("optim.lr=1e-6",), "not_learning"),
    "learning_rate_too_high": (("optim.lr=20",), "exploding"),
    # a small, steeply long-tailed training set without regularisation: train 99%, test 72%
    "heavy_overfitting": (("dataset=digits_lt", "dataset.imbalance_ratio=100", *NO_REGULARISATION), "overfitting"),
    # a constant learning rate of 1: test accuracy jumps between 35% and 93% from epoch to epoch
    "unstable": (("optim.lr=1.0", "sched=multistep", "sched.warmup_epochs=0"), "unstable"),
    # a small constant learning rate, stopped after 12 epochs
    "still_learning": (("trainer.epochs=12", "optim.lr=0.003", "sched=multistep", "sched.warmup_epochs=0"),
                       "still_learning"),
}


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    root = tmp_path_factory.mktemp("gallery")
    summaries = {name: run_training(compose_train(*overrides), root / name) for name, (overrides, _) in GALLERY.items()}
    return root, summaries


@pytest.mark.parametrize("name", GALLERY)
def test_each_run_gets_the_label_its_curves_deserve(gallery, name):
    root, summaries = gallery
    d = Diagnosis.from_record(summaries[name]["diagnosis"])
    assert d.label == GALLERY[name][1], d.sentence()
    # the report, reading the run back, says the same
    assert load_runs([str(root / name)])[0].diagnosis() == d


@pytest.mark.parametrize("name", GALLERY)
def test_slopes_are_described_by_their_sign(gallery, name):
    d = Diagnosis.from_record(gallery[1][name]["diagnosis"])
    described = re.findall(r"(falling|flat|rising) at \S+ \(slope ([+-][\d.e+-]+)/epoch", d.sentence())
    assert len(described) == 2, d.sentence()  # the train and the test loss
    for direction, slope in described:
        assert {"falling": float(slope) < 0, "rising": float(slope) > 0, "flat": True}[direction], d.sentence()


def test_advice_follows_the_evidence(gallery):
    summaries = gallery[1]
    too_low = Diagnosis.from_record(summaries["learning_rate_too_low"]["diagnosis"])
    assert "raise the learning rate" in too_low.advice and "lower the learning rate" not in too_low.advice
    assert "barely move" in too_low.advice and "chance 0.100" in too_low.sentence()
    too_high = Diagnosis.from_record(summaries["learning_rate_too_high"]["diagnosis"])
    assert "lower the learning rate" in too_high.advice
    assert re.search(r"the training loss reached \S+ at epoch \d+", too_high.sentence())
    quick = Diagnosis.from_record(summaries["quick_start"]["diagnosis"])
    assert "more epochs will not help" in quick.advice and "learning rate 6.22e-07 at the end" in quick.sentence()
    assert "raise the learning rate" not in quick.advice and "lower the learning rate" not in quick.advice
    overfit = Diagnosis.from_record(summaries["heavy_overfitting"]["diagnosis"])
    gap = float(re.search(r"a gap of ([\d.]+) points", overfit.sentence()).group(1))
    final = summaries["heavy_overfitting"]["final"]
    assert gap > 15 and "regularise" in overfit.advice
    assert final["train_acc"] - final["test_acc"] == pytest.approx(gap / 100, abs=0.03)


def test_label_smoothing_is_judged_above_its_floor(gallery):
    summary = gallery[1]["label_smoothing"]
    # -sum q log q of the target 0.91 / 0.01 (K = 10, e = 0.1)
    q = np.array([0.91] + [0.01] * 9)
    assert summary["loss_floor"] == pytest.approx(float(-(q * np.log(q)).sum()), rel=1e-9)
    assert summary["final"]["train_loss"] > summary["loss_floor"] and "0.5 being its floor" in \
        Diagnosis.from_record(summary["diagnosis"]).sentence()


def test_the_signals_are_recorded_per_epoch(gallery):
    root, summaries = gallery
    for name in ("learning_rate_too_low", "quick_start"):
        m = load_runs([str(root / name)])[0].metrics
        assert (m["grad_norm_p90"] <= m["grad_norm_max"]).all() and (m["grad_norm_mean"] <= m["grad_norm_max"]).all()
    too_low = load_runs([str(root / "learning_rate_too_low")])[0].metrics
    quick = load_runs([str(root / "quick_start")])[0].metrics
    assert too_low["update_ratio"].max() < 1e-4 < quick["update_ratio"].iloc[:5].min()
    test_counts = summaries["quick_start"]["test_counts"]  # a stratified 20% of 1,797
    assert sum(test_counts) == 360 and all(35 <= n <= 37 for n in test_counts)


def test_the_run_figure_marks_the_diagnosis(gallery):
    root, summaries = gallery
    run = load_runs([str(root / "learning_rate_too_high")])[0]
    d = run.diagnosis()
    losses, accuracy = figures.run_figure(run).axes[:2]
    assert losses.get_yscale() == "log"  # the loss spans many decades
    labels = {line.get_label(): line for line in losses.lines}
    assert labels[f"exploding from (epoch {d.onset_epoch})"].get_xdata()[0] == d.onset_epoch
    assert labels[f"best test (epoch {d.best_epoch})"].get_xdata()[0] == d.best_epoch
    assert labels[f"selected (epoch {d.selected_epoch})"].get_xdata()[0] == summaries["learning_rate_too_high"]["selected_epoch"]
    (window,) = [p for p in losses.patches if p.get_label() == "judged window"]
    assert (window.get_x(), window.get_x() + window.get_width()) == d.window == (23, 30)
    quick = figures.run_figure(load_runs([str(root / "quick_start")])[0]).axes[0]
    assert quick.get_yscale() == "log"  # 1.8 down to 0.006
