"""trainer.channels_last=auto and trainer.eval_batch_size=auto: what each
comes to on a CPU, that the run records it, and that neither changes what is
predicted; and the evaluation time column of metrics.csv."""

import csv
import json

import pytest
import torch

from helpers.cli import assert_one_line_error, lossbench
from lossbench.models import build_model
from lossbench.training import fast_defaults
from lossbench.training.compose import compose_train
from lossbench.training.fast_defaults import channels_last_choice, eval_batch_choice, largest_activation_bytes
from lossbench.training.columns import METRIC_COLUMNS, TIME_COLUMNS
from lossbench.training.run import run_training
from lossbench.training.run_dir import RunDir

CPU = torch.device("cpu")
MB = 2**20


def test_channels_last_auto_is_on_where_nhwc_kernels_exist():
    assert channels_last_choice("auto", CPU).value is torch.backends.mkldnn.is_available()
    assert channels_last_choice("auto", torch.device("cuda")).value is True
    assert channels_last_choice(False, CPU).value is False
    assert channels_last_choice(True, CPU).reason == "trainer.channels_last=true"


def test_the_largest_activation_of_resnet32_is_its_first_stage():
    # 16 channels at 32x32 in float32 (the stem and the first stage's blocks)
    assert largest_activation_bytes(build_model("resnet32", 3, 10), 3, 32, CPU) == 16 * 32 * 32 * 4
    # resnet18 for CIFAR: 64 channels at 32x32
    assert largest_activation_bytes(build_model("resnet18", 3, 10), 3, 32, CPU) == 64 * 32 * 32 * 4


@pytest.mark.parametrize("cache_mb, batch", [(32, 256), (8, 64), (1, 32), (1024, 1024)])
def test_auto_evaluation_batch_fits_half_the_cache(monkeypatch, cache_mb, batch):
    monkeypatch.setattr(fast_defaults, "last_level_cache_bytes", lambda: (cache_mb * MB, ""))
    chosen = eval_batch_choice("auto", CPU, build_model("resnet32", 3, 10), 3, 32)
    assert chosen.value == batch
    assert f"within half of the {cache_mb} MB last-level cache" in chosen.reason
    assert f"({batch * 64 / 1024:.1f} MB)" in chosen.reason


def test_auto_evaluation_batch_without_a_known_cache_assumes_8_mb(monkeypatch):
    monkeypatch.setattr(fast_defaults, "last_level_cache_bytes", lambda: (None, "the cache size is not reported"))
    chosen = eval_batch_choice("auto", CPU, build_model("resnet32", 3, 10), 3, 32)
    assert chosen.value == 64 and "the cache size is not reported" in chosen.reason


def test_evaluation_batch_on_cuda_and_given_values_are_kept():
    model = build_model("small_cnn", 1, 10)
    assert eval_batch_choice("auto", torch.device("cuda"), model, 1, 8).value == 1024
    assert eval_batch_choice(100, CPU, model, 1, 8).value == 100


def test_this_machines_cache_is_read_from_the_operating_system():
    size, note = fast_defaults.last_level_cache_bytes()
    listed = []
    from pathlib import Path

    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = entry.read_text().strip()
        listed.append(int(text[:-1]) * {"K": 2**10, "M": 2**20, "G": 2**30}[text[-1]])
    if listed:
        assert size == max(listed) and note == ""
    else:
        assert note or size


def _digits_run(tmp_path, name, *overrides):
    cfg = compose_train(["dataset=digits", "trainer.epochs=2", "trainer.progress=false", *overrides])
    summary = run_training(cfg, tmp_path / name)
    with open(tmp_path / name / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f)), summary


@pytest.mark.slow
def test_a_run_records_the_choices_and_they_change_no_prediction(tmp_path):
    auto_rows, auto = _digits_run(tmp_path, "auto")
    given_rows, given = _digits_run(tmp_path, "given", "trainer.eval_batch_size=7")
    assert auto["channels_last"] is torch.backends.mkldnn.is_available()
    assert auto["channels_last_reason"] == channels_last_choice("auto", CPU).reason
    assert auto["eval_batch_size"] >= 32 and auto["eval_batch_size_reason"].startswith("auto on cpu: ")
    assert given["eval_batch_size"] == 7 and given["eval_batch_size_reason"] == "trainer.eval_batch_size=7"
    for a, b in zip(auto_rows, given_rows, strict=True):
        assert float(a["eval_time_s"]) > 0
        # the same training, and every image predicted alike in batches of 7 as in one batch
        for column in METRIC_COLUMNS:
            if column in TIME_COLUMNS:
                continue
            if column.endswith(("_loss", "_nll", "_ece")):
                assert float(a[column]) == pytest.approx(float(b[column]), rel=1e-5), column
            else:
                assert a[column] == b[column], column


def test_bad_auto_settings_are_refused_in_one_line(tmp_path):
    result = lossbench("train", "dataset=digits", "trainer.eval_batch_size=fast", cwd=tmp_path)
    assert_one_line_error(result, "trainer.eval_batch_size='fast' is invalid", "or auto")
    result = lossbench("train", "dataset=digits", "trainer.channels_last=sometimes", cwd=tmp_path)
    assert_one_line_error(result, "trainer.channels_last='sometimes'", "auto")


def test_a_metrics_file_of_an_older_version_takes_the_new_columns_on_resume(tmp_path):
    """A run started before metrics.csv had eval_time_s: its rows are kept, the column left empty."""
    old_columns = [c for c in METRIC_COLUMNS if c != "eval_time_s"]
    rows = [{c: str(epoch if c == "epoch" else 0.5) for c in old_columns} for epoch in (1, 2, 3)]
    path = tmp_path / "metrics.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old_columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    kept = RunDir(tmp_path).truncate_metrics(2, METRIC_COLUMNS)
    assert [r["epoch"] for r in kept] == [1.0, 2.0]
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        written = list(reader)
    assert reader.fieldnames == list(METRIC_COLUMNS)
    assert [r["epoch"] for r in written] == ["1", "2"]
    assert all(r["eval_time_s"] == "" and r["train_loss"] == "0.5" for r in written)
    json.dumps(kept)  # plain numbers, as the resumed run's rows are
