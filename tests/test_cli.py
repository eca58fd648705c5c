"""The installed `lossbench` command, run as a user would, from a fresh directory."""

import csv
import json

import pytest
import yaml

from helpers.cli import assert_one_line_error, epoch_lines, expected_epoch_lines, lossbench
from lossbench.posthoc import UNFITTED
from lossbench.training.columns import METRIC_COLUMNS

pytestmark = pytest.mark.slow  # processes or training: left out by pytest -m "not slow"


def test_help_lists_the_subcommands(tmp_path):
    result = lossbench("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("train", "report", "export", "losses"):
        assert f"  {command} " in result.stdout


def test_train_help_shows_the_config_groups(tmp_path):
    result = lossbench("train", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "lossbench train" in result.stdout
    (datasets,) = [line.split(": ", 1)[1] for line in result.stdout.splitlines() if line.startswith("dataset: ")]
    assert {"cifar10", "cifar100", "cifar100_lt", "cifar10_lt", "digits", "digits_lt", "mnist", "mnist_lt",
            "fashion_mnist", "fashion_mnist_lt", "svhn", "svhn_lt", "image_folder", "csv", "imagenet_lt",
            "places_lt"} <= set(datasets.split(", "))
    assert "experiment: cifar10_fast, ldam_drw_cifar10_lt" in result.stdout
    for group in ("model:", "loss:", "optim:", "sched:", "trainer:", "paths:"):
        assert group in result.stdout


def test_quick_start_on_digits(tmp_path):
    result = lossbench("train", "dataset=digits", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "results" / "runs").glob("*/*_digits_ce"))
    assert len(runs) == 1
    run = runs[0]
    assert f"run directory: {run}" in result.stdout
    assert "test_acc" in result.stdout and "selected (epoch" in result.stdout
    assert "diagnosis: converged" in result.stdout
    assert "epoch" in result.stderr  # the tqdm bar
    with open(run / "metrics.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == METRIC_COLUMNS
        rows = list(reader)
    assert len(rows) == 30
    accuracy = [float(r["test_acc"]) for r in rows]
    assert accuracy[-1] >= 0.9 and accuracy[-1] > accuracy[0]
    summary = json.loads((run / "summary.json").read_text())
    # digits' 1,437 training images: 142 held out for validation (a tenth of each class), the rest trained on
    assert summary["status"] == "finished" and sum(summary["class_counts"]) + sum(summary["val_counts"]) == 1437
    assert sum(summary["val_counts"]) == 142 and summary["selection"]["metric"] == "val_balanced_acc"
    assert (run / "logits_selected.pt").is_file()
    # a temperature is fitted where the selected epoch errs on validation; where it does not, none can be
    if summary["selected"]["val_acc"] < 1.0:
        assert summary["posthoc"]["temperature"] > 0
    else:
        assert summary["posthoc"]["temperature"] is None and summary["posthoc"]["temperature_note"] == UNFITTED
    assert (run / ".hydra" / "config.yaml").is_file() and (run / "per_class.csv").is_file()
    assert (run / "train.log").is_file() and (run / "last.pt").is_file()
    # train.log: one line per epoch with the values of metrics.csv; the progress bar keeps them off the terminal
    assert epoch_lines((run / "train.log").read_text()) == expected_epoch_lines(rows, 30)
    assert not epoch_lines(result.stdout)


def test_multirun_of_two_jobs(tmp_path):
    result = lossbench("train", "-m", "dataset=digits", "loss=ce,label_smoothing", "trainer.epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((tmp_path / "results" / "multirun").glob("*/*"))
    assert len(sweeps) == 1
    sweep = sweeps[0]
    assert (sweep / "multirun.yaml").is_file()
    losses = []
    for job in ("0_loss=ce", "1_loss=label_smoothing"):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["epochs_completed"] == 2
        losses.append(summary["loss"])
        with open(sweep / job / "metrics.csv") as f:
            assert len(f.read().strip().splitlines()) == 3
    assert losses == ["ce", "label_smoothing"]
    report = lossbench("report", str(sweep), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "diagnosis:" in report.stdout and "too_early" in report.stdout
    assert (sweep / "report" / "report.html").is_file() and (sweep / "report" / "runs.csv").is_file()


def test_report_of_an_empty_folder_fails_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(lossbench("report", str(tmp_path / "empty"), cwd=tmp_path), "no runs under", "metrics.csv")


def test_long_tailed_cifar_through_the_cli(tmp_path, cifar_dir):
    result = lossbench(
        "train", "dataset=cifar10_lt", "dataset.imbalance_ratio=10", "model=resnet20", "trainer.epochs=1",
        "trainer.batch_size=32", f"paths.data_dir={cifar_dir}", "dataset.val_fraction=0", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = next((tmp_path / "results" / "runs").glob("*/*_cifar10_lt_ce"))
    expected = [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]
    assert json.loads((run / "summary.json").read_text())["class_counts"] == expected
    assert str(expected) in (run / "train.log").read_text()
    with open(run / "per_class.csv", newline="") as f:
        assert [int(r["train_count"]) for r in csv.DictReader(f)] == expected


def test_fast_recipe_keeps_the_loss_free(tmp_path, cifar_dir):
    result = lossbench("train", "+experiment=cifar10_fast", "loss=focal", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["model"]["name"] == "fastnet" and cfg["dataset"]["name"] == "cifar10" and cfg["loss"]["name"] == "focal"
    assert cfg["optim"] == {"name": "sgd", "lr": 0.4, "momentum": 0.9, "weight_decay": 5.0e-4, "nesterov": True}
    assert cfg["sched"] == {"name": "cosine", "warmup_epochs": 2, "min_lr_ratio": 0.0}
    assert cfg["trainer"]["epochs"] == 10 and cfg["trainer"]["batch_size"] == 512
    # the recipe trains (on the small synthetic CIFAR: smaller batches, lr scaled down)
    result = lossbench("train", "experiment=cifar10_fast", "loss=label_smoothing", "trainer.epochs=6",
                       "trainer.batch_size=50", "optim.lr=0.1", f"paths.data_dir={cifar_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = next((tmp_path / "results" / "runs").glob("*/*_cifar10_label_smoothing"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["model"] == "fastnet" and summary["epochs_completed"] == 6
    # chance is 0.1; on 100 test images a change in the last bit of the
    # normalisation moves this run's accuracy between 0.8 and 0.9
    assert summary["selected"]["test_acc"] >= 0.6


def test_cifar_offline_without_files_fails_in_one_line(tmp_path):
    empty = tmp_path / "nothing-here"
    # an address that refuses at once stands for "offline"
    result = lossbench(
        "train", "trainer.epochs=1", "dataset.url=http://127.0.0.1:9/cifar-10-python.tar.gz",
        cwd=tmp_path, env={"LOSSBENCH_DATA": str(empty)},
    )
    assert_one_line_error(result, str(empty / "cifar-10-batches-py"), "paths.data_dir")


def test_corrupt_cifar_file_is_named(tmp_path, cifar_dir):
    batch = cifar_dir / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:1000])
    result = lossbench("train", "trainer.epochs=1", f"paths.data_dir={cifar_dir}", cwd=tmp_path)
    assert_one_line_error(result, str(batch), "truncated")


@pytest.mark.parametrize(
    "override, fragment",
    [("trainer.epochs=0", "trainer.epochs=0 is invalid"), ("loss.smoothing=1.5", "loss.smoothing=1.5 is invalid")],
)
def test_bad_values_fail_in_one_line(tmp_path, override, fragment):
    args = ["train", "dataset=digits", override] + (["loss=label_smoothing"] if "smoothing" in override else [])
    assert_one_line_error(lossbench(*args, cwd=tmp_path), fragment)


def test_reference_recipe_is_pinned(tmp_path):
    result = lossbench("train", "experiment=ldam_drw_cifar10_lt", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = yaml.safe_load(result.stdout)
    assert cfg["dataset"]["name"] == "cifar10_lt" and cfg["dataset"]["imbalance_ratio"] == 100
    assert cfg["model"]["name"] == "resnet32"
    assert cfg["optim"] == {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 2.0e-4, "nesterov": False}
    assert cfg["sched"] == {"name": "multistep", "warmup_epochs": 5, "milestones": [160, 180], "gamma": 0.01}
    assert cfg["trainer"]["epochs"] == 200 and cfg["trainer"]["batch_size"] == 128
    assert cfg["dataset"]["augment"] == {"crop_padding": 4, "flip": True}
    assert cfg["loss"] == {"name": "ldam", "s": 30.0, "max_m": 0.5, "weight": None, "ignore_index": -100, "reduction": "mean"}
    assert cfg["trainer"]["drw_epoch"] == 160 and cfg["trainer"]["drw_beta"] == 0.9999
    other = yaml.safe_load(lossbench("train", "experiment=ldam_drw_cifar10_lt", "loss=ce", "trainer.drw_epoch=null",
                                     "--cfg", "job", cwd=tmp_path).stdout)
    assert cfg["dataset"]["val_fraction"] == 0  # the paper's protocol: no validation split
    assert other["loss"]["name"] == "ce" and other["trainer"]["drw_epoch"] is None and other["model"]["name"] == "resnet32"


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["loss=focall"], ["loss='focall' is unknown", "valid losses are", "focal", "label_smoothing"]),
        (["-m", "loss=ce,focall"], ["loss='focall' is unknown"]),
        (["dataset=cifar11"], ["dataset='cifar11' is unknown", "cifar10_lt, csv, digits, digits_lt, fashion_mnist"]),
        (["experiment=nope"], ["experiment='nope' is unknown: valid experiments are cifar10_fast, ldam_drw_cifar10_lt"]),
    ],
)
def test_unknown_group_options_fail_in_one_line(tmp_path, args, fragments):
    result = lossbench("train", *args, cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "results").exists()


def test_unwritable_output_directory_fails_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = lossbench("train", "dataset=digits", f"paths.output_dir={blocker / 'runs'}", cwd=tmp_path)
    assert_one_line_error(result, f"cannot write runs under {blocker / 'runs'}", "paths.output_dir")
    assert blocker.read_text() == "not a directory"


def test_misspelled_loss_knob_lists_the_knobs(tmp_path):
    result = lossbench("train", "dataset=digits", "loss=focal", "loss.gama=2", cwd=tmp_path)
    assert_one_line_error(result, "loss.gama is not a knob of focal: its knobs are gamma, alpha")


def test_knob_missing_from_the_config_file_can_still_be_set(tmp_path):
    result = lossbench("train", "dataset=digits", "loss=focal", "loss.reduction=sum", "trainer.epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = next((tmp_path / "results" / "runs").glob("*/*_digits_focal"))
    assert yaml.safe_load((run / "resolved_config.yaml").read_text())["loss"]["reduction"] == "sum"


def test_diverged_run_exits_non_zero(diverged_run):
    result, run = diverged_run
    assert result.returncode == 1
    summary = json.loads((run / "summary.json").read_text())  # strict JSON: no NaN
    assert summary["status"] == "diverged" and summary["diagnosis"]["label"] == "diverged"
    # no epoch was selected: the table has only the final column and says so
    assert "epoch None" not in result.stdout and "selected (epoch" not in result.stdout
    table = ("metric" + result.stdout.split("\nmetric", 1)[1]).split("\n\ndiagnosis:")[0].splitlines()
    assert table[0].split() == ["metric", "final"]
    assert "selected: none (the loss became non-finite in epoch 1, before any epoch could be selected)" in table


def test_a_bad_knob_of_a_long_tail_loss_fails_in_one_line(tmp_path):
    # every loss's checks are unit-tested (test_losses.py); this is the path from the command line
    result = lossbench("train", "dataset=digits_lt", "loss=seesaw", "loss.p=-1", cwd=tmp_path)
    assert_one_line_error(result, "loss.p=-1 is invalid: it must be in [0, inf)")
    assert not list((tmp_path / "results").rglob("metrics.csv"))


@pytest.mark.parametrize("args, fragment", [
    (["trainer.epoch=2"], "trainer.epoch is not a setting: the keys of trainer are epochs, batch_size"),
    (["trainer.epochs=1=2"], "cannot read the override 'trainer.epochs=1=2'"),
])
def test_keys_hydra_refuses_fail_in_one_line_naming_the_valid_keys(tmp_path, args, fragment):
    result = lossbench("train", "dataset=digits", *args, cwd=tmp_path)
    assert_one_line_error(result, fragment)
    assert "+trainer" not in result.stderr and not (tmp_path / "results").exists()


def test_losses_lists_every_loss_and_shows_where_defaults_come_from(tmp_path):
    from lossbench.losses.registry import LOSSES

    listing = lossbench("losses", cwd=tmp_path).stdout
    assert [line.split()[0] for line in listing.splitlines()[:len(LOSSES)]] == list(LOSSES)
    shown = lossbench("losses", "seesaw", "vs", "cdt", cwd=tmp_path).stdout
    seesaw, others = shown.split("\n\nvs: ", 1)
    assert seesaw.startswith("seesaw: ") and "p = 0.8" in seesaw and "conventions:" in seesaw
    assert "mmpretrain/models/losses/seesaw_loss.py" in seesaw
    assert "\n\ncdt: " in others
