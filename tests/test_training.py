"""Training runs in-process on digits: determinism, precisions, run files."""

import csv
import json
import math

import pytest

from helpers.training import compose_train, read_rows
from lossbench.errors import UserError
from lossbench.training.columns import METRIC_COLUMNS, TIME_COLUMNS
from lossbench.training.run import run_training

pytestmark = pytest.mark.slow  # processes or training: left out by pytest -m "not slow"



def test_cpu_runs_are_deterministic(tmp_path):
    cfg = compose_train("trainer.epochs=3", "seed=7")
    run_training(cfg, tmp_path / "a")
    run_training(cfg, tmp_path / "b")
    a, b = read_rows(tmp_path / "a"), read_rows(tmp_path / "b")
    assert len(a) == 3
    for row_a, row_b in zip(a, b):
        assert {k: v for k, v in row_a.items() if k not in TIME_COLUMNS} == {
            k: v for k, v in row_b.items() if k not in TIME_COLUMNS
        }
    run_training(compose_train("trainer.epochs=3", "seed=8"), tmp_path / "c")
    assert read_rows(tmp_path / "c")[0]["train_loss"] != a[0]["train_loss"]


def test_bf16_autocast_trains(tmp_path):
    # CPU autocast runs the same code as CUDA's
    summary = run_training(compose_train("trainer.epochs=4", "trainer.precision=bf16"), tmp_path)
    rows = read_rows(tmp_path)
    assert summary["status"] == "finished" and summary["precision"] == "bf16"
    assert all(math.isfinite(float(r["train_loss"])) for r in rows)
    assert float(rows[-1]["test_acc"]) > 0.8


def test_fp16_with_grad_scaler_trains():
    # fp16 convolutions have no fast CPU kernels, so this drives the trainer's
    # fp16 path (autocast + GradScaler) with a linear model on digits instead.
    import torch

    from lossbench.data import DeviceBatches, load_dataset
    from lossbench.data.augment import Normalize
    from lossbench.losses.registry import build_loss
    from lossbench.models.classifier import Classifier
    from lossbench.training.device import resolve_precision
    from lossbench.training.optim import build_optimizer, build_scheduler
    from lossbench.training.trainer import Trainer

    cfg = compose_train("trainer.precision=fp16", "sched.warmup_epochs=0")
    device = torch.device("cpu")
    torch.manual_seed(0)
    data = load_dataset(cfg.dataset, None, device)
    model = Classifier(torch.nn.Flatten(), 64, 10)
    normalize = Normalize(data.mean, data.std)
    train = DeviceBatches(data.train, 64, normalize, torch.Generator().manual_seed(0), shuffle=True)
    optimizer = build_optimizer(model.parameters(), cfg.optim, device)
    trainer = Trainer(
        model, build_loss("ce"), data, train, {"test": DeviceBatches(data.test, 512, normalize)}, optimizer,
        build_scheduler(optimizer, cfg.sched, len(train), 3), resolve_precision("fp16", device), device, None, progress=False,
    )
    assert trainer.scaler.is_enabled()
    rows = [trainer.train_epoch(e) for e in range(1, 4)]
    test_row = trainer.evaluate("test").row
    assert all(math.isfinite(r["train_loss"]) for r in rows)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert test_row["test_acc"] > 0.85
    assert trainer.scaler.get_scale() > 0


def test_run_files(tmp_path):
    summary = run_training(compose_train("trainer.epochs=3", "dataset=digits_lt"), tmp_path)
    rows = read_rows(tmp_path)
    with open(tmp_path / "metrics.csv") as f:
        assert f.readline().strip().split(",") == list(METRIC_COLUMNS)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for r in rows:
        for key in ("train_acc", "test_acc", "test_balanced_acc", "test_ece", "test_head_acc", "test_tail_acc"):
            assert 0.0 <= float(r[key]) <= 1.0
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["epochs_completed"] == 3
    # digits_lt: ratio 10 on the smallest training class (139 images)
    long_tail = [int(math.floor(139 * 10 ** (-c / 9) + 1e-9)) for c in range(10)]
    # a tenth of each class held out for validation, at least one
    held = [max(1, round(0.1 * n)) for n in long_tail]
    assert on_disk["val_counts"] == held == [14, 11, 8, 6, 5, 4, 3, 2, 2, 1]
    assert on_disk["class_counts"] == [n - v for n, v in zip(long_tail, held)] == summary["class_counts"]
    # selected: the epoch of best validation balanced accuracy (ties to the lower validation NLL); oracle: of best
    # test accuracy
    selected = max(rows, key=lambda r: (float(r["val_balanced_acc"]), -float(r["val_nll"])))
    assert on_disk["selected_epoch"] == int(selected["epoch"])
    assert math.isclose(on_disk["selected"]["test_acc"], float(selected["test_acc"]), rel_tol=1e-5)
    oracle = max(rows, key=lambda r: float(r["test_acc"]))
    assert on_disk["oracle_epoch"] == int(oracle["epoch"])
    assert on_disk["selection"] == {"metric": "val_balanced_acc",
                                    "by": "the epoch of best val_balanced_acc (validation split; ties to the lower val_nll)"}
    assert math.isclose(on_disk["final"]["test_acc"], float(rows[-1]["test_acc"]), rel_tol=1e-5)
    for key in ("device", "device_name", "versions", "wall_time_s"):
        assert on_disk[key]
    with open(tmp_path / "per_class.csv", newline="") as f:
        per_class = list(csv.DictReader(f))
    assert [int(r["train_count"]) for r in per_class] == summary["class_counts"]
    # the selected epoch's per-class accuracy: its balanced mean is the selected test_balanced_acc
    selected_per_class = [float(r["test_acc_selected"]) for r in per_class]
    assert math.isclose(sum(selected_per_class) / 10, on_disk["selected"]["test_balanced_acc"], rel_tol=1e-5)
    assert [r["group"] for r in per_class] == ["head"] * 4 + ["medium"] * 3 + ["tail"] * 3
    assert (tmp_path / "last.pt").stat().st_size > 0


def test_existing_run_is_not_overwritten(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch\n1\n")
    with pytest.raises(UserError, match="already holds a run"):
        run_training(compose_train("trainer.epochs=1"), tmp_path)
    assert (tmp_path / "metrics.csv").read_text() == "epoch\n1\n"


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.epochs=0", "trainer.epochs=0 is invalid"),
        ("trainer.batch_size=5000", "trainer.batch_size=5000 is larger than the training set (1295 images)"),
        ("optim.lr=-1", "optim.lr=-1 is invalid: it must be in (0, inf)"),
        ("trainer.precision=fp8", "trainer.precision='fp8' is invalid: valid values are auto, fp32, bf16, fp16"),
        ("optim.lr=abc", "optim.lr='abc' is invalid: it must be a number in (0, inf)"),
        ("seed=abc", "seed='abc' is invalid: it must be an integer in [0, inf)"),
        ("sched=multistep sched.milestones=[1,abc]", "sched.milestones='abc' is invalid: it must be an integer"),
        ("sched=multistep sched.milestones=[9,3]", "sched.milestones=[9, 3] is invalid: the epochs must increase"),
        ("trainer.epochs=true", "trainer.epochs=True is invalid: it must be an integer in [1, inf)"),
        ("loss=focal loss.gamma=abc", "loss.gamma='abc' is invalid: it must be a number in [0, inf)"),
        ("loss=focal loss.gamma=null", "loss.gamma=None is invalid: it must be a number in [0, inf)"),
        ("loss=sparse_softmax loss.k=2.5", "loss.k=2.5 is invalid: it must be an integer in [1, 10]"),
        ("dataset.imbalance_ratio=0.5", "dataset.imbalance_ratio=0.5 is invalid: it must be in [1, inf)"),
        ("trainer.drw_epoch=30", "trainer.drw_epoch=30 is invalid: it must be in [0, 29] (trainer.epochs=30)"),
        ("trainer.sampler=uniform", "trainer.sampler='uniform' is invalid: valid values are random, class_balanced"),
        ("trainer.compile=fast", "trainer.compile='fast' is invalid: valid values are false, true, default, reduce-overhead"),
        ("trainer.compile=1", "trainer.compile=1 is invalid: valid values are false, true"),
        ("trainer.compile=0", "trainer.compile=0 is invalid: valid values are false, true"),
    ],
)
def test_bad_values_stop_before_any_file(tmp_path, override, message):
    with pytest.raises(UserError) as info:
        run_training(compose_train(*override.split()), tmp_path / "run")
    assert message in str(info.value)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_compiled_forward_matches_eager(tmp_path):
    # inductor on the CPU; reduce-overhead also drives the CUDA-graph step marks
    eager = run_training(compose_train("trainer.epochs=2"), tmp_path / "eager")
    compiled = run_training(compose_train("trainer.epochs=2", "trainer.compile=reduce-overhead"), tmp_path / "compiled")
    assert eager["compile"] is None and compiled["compile"] == "reduce-overhead"
    for row_e, row_c in zip(read_rows(tmp_path / "eager"), read_rows(tmp_path / "compiled")):
        # fused kernels round differently; the trajectory stays the same
        assert float(row_c["train_loss"]) == pytest.approx(float(row_e["train_loss"]), rel=1e-2)
        assert float(row_c["test_acc"]) == pytest.approx(float(row_e["test_acc"]), abs=0.02)
    import torch

    state = torch.load(tmp_path / "compiled" / "last.pt", weights_only=False)
    assert state["model"].keys() == torch.load(tmp_path / "eager" / "last.pt", weights_only=False)["model"].keys()


@pytest.mark.parametrize("value, mode", [(False, None), (True, "default"), ("max-autotune", "max-autotune")])
def test_compile_choices(value, mode):
    from lossbench.training.validate import compile_mode

    assert compile_mode(value) == mode


def test_compile_without_a_compiler_fails_before_any_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="trainer.compile on the CPU needs a C\\+\\+ compiler"):
        run_training(compose_train("trainer.compile=true"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_in_process_runs_each_compile_their_own_step(tmp_path, monkeypatch):
    # Hydra's basic launcher and the search run jobs in one process; each must
    # compile (dynamo's eager backend: the tracing without inductor's build)
    import torch
    from torch._dynamo.utils import counters

    compile_with_inductor = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_with_inductor(fn, backend="eager", dynamic=False))
    for loss in ("ce", "focal", "label_smoothing", "poly1", "ldam"):
        counters.clear()
        run_training(compose_train("trainer.epochs=1", "trainer.compile=true", f"loss={loss}"), tmp_path / loss)
        # train (full and last batch) and evaluation (full and last batch)
        assert counters["stats"]["unique_graphs"] >= 3, loss
