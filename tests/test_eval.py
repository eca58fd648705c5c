"""best.pt and `lossbench eval`, on a real digits run trained once in this
process: the checkpoint of the selected epoch, its evaluation again (on the
run's own data it gives the numbers the run logged), on other data, the
command's one-line errors, and best.pt across a kill and a resume."""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers.training import compose_train, read_rows
from lossbench.cli import main
from lossbench.evaluation.config import eval_config
from lossbench.report.runs import find_run_dirs
from lossbench.training import run as run_module
from lossbench.training.run import run_training
from lossbench.training.run_dir import RunDir

pytestmark = pytest.mark.slow  # trains networks

# The learning rate jumps twentyfold for the last of four epochs, which wrecks
# it: the selected epoch comes before the last, so best.pt and last.pt differ.
RUN = ("trainer.epochs=4", "sched=multistep", "sched.warmup_epochs=0", "sched.milestones=[3]", "sched.gamma=20")
EXACT = ("test_acc", "test_balanced_acc", "val_acc", "val_balanced_acc")
CLOSE = ("test_nll", "test_ece", "test_loss", "val_nll", "val_ece", "val_loss")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The finished run, trained once: tests only read it or evaluate it (which writes under its eval/)."""
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    summary = run_training(compose_train(*RUN), run_dir)
    assert summary["status"] == "finished" and summary["selected_epoch"] < 4
    return run_dir


def _summary(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _eval(capsys, *args):
    """`lossbench eval ARGS` in this process: the folder it says it wrote."""
    assert main(["eval", *map(str, args)]) == 0
    out = capsys.readouterr().out
    return Path(out.strip().splitlines()[-1].removeprefix("written to ")), out


def _csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _files(run_dir) -> dict:
    """Every file of the run but its evaluations, by content."""
    return {p.relative_to(run_dir): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and "eval" not in p.relative_to(run_dir).parts}


def test_best_pt_holds_the_selected_epoch(run):
    best, summary = torch.load(run / "best.pt", weights_only=True), _summary(run)
    assert best["epoch"] == summary["selected_epoch"] == summary["best_checkpoint"]["epoch"]
    assert best["selection"] == summary["selection"]
    assert summary["best_checkpoint"]["selected_by"] == summary["selection"]["by"]
    assert {"model", "loss", "data", "config"} <= best.keys() and "optimizer" not in best
    assert (run / "best.pt").stat().st_size < (run / "last.pt").stat().st_size
    last = torch.load(run / "last.pt", weights_only=False)
    assert last["epoch"] == 4 and last["progress"]["selected_epoch"] == best["epoch"]
    assert any(not torch.equal(best["model"][k], last["model"][k]) for k in best["model"])


@pytest.mark.parametrize("checkpoint", ["best", "last"])
def test_eval_on_the_runs_own_data_gives_the_numbers_it_logged(run, capsys, checkpoint):
    summary = _summary(run)
    logged, epoch = (summary["selected"], summary["selected_epoch"]) if checkpoint == "best" else (summary["final"], 4)
    folder, printed = _eval(capsys, run, "--checkpoint", checkpoint)
    assert folder.parent == run / "eval" and folder.name.startswith(f"{checkpoint}-digits")
    record = json.loads((folder / "eval.json").read_text())
    assert (record["checkpoint"], record["epoch"], record["dataset"]["name"]) == (checkpoint, epoch, "digits")
    assert record["selected_epoch"] == summary["selected_epoch"]
    assert record["selected_by"] == (f"the selected epoch: {summary['selection']['by']}" if checkpoint == "best"
                                     else "the last completed epoch")
    numbers = record["metrics"]
    for column in EXACT:
        assert numbers[column] == logged[column], column
    for column in CLOSE:
        assert numbers[column] == pytest.approx(logged[column], rel=1e-6), column
    # metrics.csv: training's evaluation columns, one row, as metrics.csv wrote them that epoch
    (row,) = _csv(folder / "metrics.csv")
    (trained,) = [r for r in read_rows(run) if int(r["epoch"]) == epoch]
    assert row["epoch"] == str(epoch) and {"test_acc", "test_nll", "test_ece", "val_balanced_acc"} <= row.keys()
    assert all(row[c] == trained[c] for c in row if c != "epoch")
    # per_class.csv in the training format; calibration.csv as training wrote it for its last epoch
    per_class, trained_per_class = _csv(folder / "per_class.csv"), _csv(run / "per_class.csv")
    column = "test_acc_selected" if checkpoint == "best" else "test_acc_last"
    assert list(per_class[0]) == list(trained_per_class[0])
    assert [r[column] for r in per_class] == [r[column] for r in trained_per_class]
    if checkpoint == "last":
        assert (folder / "calibration.csv").read_bytes() == (run / "calibration.csv").read_bytes()
    assert len(_csv(folder / "calibration.csv")) == 15
    assert f"epoch {epoch}" in printed and "balanced_acc" in printed


def test_eval_on_other_data_writes_its_own_folder_and_leaves_the_run_as_it_was(run, capsys, tmp_path):
    before = _files(run)
    long_tail, _ = _eval(capsys, run, "dataset=digits_lt", "dataset.imbalance_ratio=5")
    again, _ = _eval(capsys, run, "dataset=digits_lt", "dataset.imbalance_ratio=5")
    assert (long_tail.parent, long_tail.name, again.name) == (run / "eval", "best-digits_lt", "best-digits_lt-2")
    record = json.loads((long_tail / "eval.json").read_text())
    assert record["dataset"] == {"name": "digits_lt", "overrides": ["dataset=digits_lt", "dataset.imbalance_ratio=5"],
                                 "val_images": record["dataset"]["val_images"], "test_images": 360}
    assert record["dataset"]["val_images"] < sum(_summary(run)["val_counts"])  # held out of a smaller training set
    other_split, _ = _eval(capsys, run, "dataset.split_seed=1", "--out", tmp_path / "split1")
    assert other_split == tmp_path / "split1"
    record = json.loads((other_split / "eval.json").read_text())
    assert record["dataset"]["overrides"] == ["dataset.split_seed=1"] and record["trained_on"] == "digits"
    assert _files(run) == before
    # an evaluation's folder is not a run to report
    assert find_run_dirs([str(run)]) == [run]


def test_an_evaluation_logs_to_no_tracker(run):
    """A run that logged to trackers is evaluated where none of them is installed."""
    made_with = RunDir(run).config()
    made_with["trainer"]["loggers"] = ["tensorboard", "mlflow", "wandb"]
    assert list(eval_config(made_with, []).trainer.loggers) == []


def _copy(run, tmp_path):
    """The run as a run of another version, or damaged, would leave it: a copy to change."""
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("eval"))
    return copy


def _no_best(copy):
    (copy / "best.pt").unlink()


def _truncated_best(copy):
    (copy / "best.pt").write_bytes((copy / "best.pt").read_bytes()[:1000])


def _garbage_last(copy):
    (copy / "last.pt").write_bytes(b"not a checkpoint")


@pytest.mark.parametrize("damage, args, message", [
    (None, ["--checkpoint", "best", "loss=focal"], "loss=focal cannot be changed for an evaluation: it takes dataset=NAME"),
    (None, ["model=resnet20"], "model=resnet20 cannot be changed for an evaluation"),
    (None, ["dataset.split_seed=1,2"], "an evaluation takes one value of each setting"),
    (None, ["dataset.nope=1"], "dataset.nope is not a setting: the keys of dataset are name, split_seed"),
    (None, ["dataset=null"], "dataset=null names no dataset: give one, e.g. dataset=digits"),
    (None, ["dataset.split_seed=abc"], "dataset.split_seed='abc' is invalid: it must be an integer in [0, inf)"),
    (None, ["dataset=cifar100"], "dataset cifar100 has 100 classes, the run's model was trained on 10 (digits)"),
    (_no_best, [], "has no best.pt (a run made before lossbench kept the selected epoch's model, or one that "
                   "selected no epoch): use --checkpoint last"),
    (_truncated_best, [], "best.pt cannot be read ("),
    (_garbage_last, ["--checkpoint", "last"], "last.pt cannot be read ("),
])
def test_eval_errors_are_one_line(run, tmp_path, capsys, damage, args, message):
    target = run
    if damage is not None:
        target = _copy(run, tmp_path)
        damage(target)
    before, evaluations = _files(target), set((target / "eval").glob("*"))
    assert main(["eval", str(target), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lossbench eval: error: ") and message in err[0], err
    assert _files(target) == before and set((target / "eval").glob("*")) == evaluations  # nothing written


def test_eval_of_what_is_no_run_is_one_line(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "absent")]) == 2
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0] == f"lossbench eval: error: {tmp_path / 'absent'} does not exist: give the folder of a run " \
                     f"(lossbench train writes them under results/runs/)"
    assert f"{tmp_path} is not a lossbench run directory (no resolved_config.yaml)" in err[1]


def test_eval_on_images_of_other_channels_is_one_line(run, cifar_dir, capsys):
    # a synthetic CIFAR-10 in the real format: ten classes, as digits, but in colour
    assert main(["eval", str(run), "dataset=cifar10", f"paths.data_dir={cifar_dir}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("dataset cifar10 has 3-channel images, the run's model was trained on 1-channel ones "
                              "(digits)") in err[0], err
    assert not list((run / "eval").glob("best-cifar10*"))


def test_a_kill_between_last_pt_and_best_pt_is_repaired_on_resume(run, tmp_path, monkeypatch):
    """Killed once last.pt holds the newly selected epoch, before best.pt does:
    the resumed run ends with the uninterrupted run's best.pt."""
    selected = _summary(run)["selected_epoch"]
    run_dir = tmp_path / "run"
    real_save_best = run_module.save_best

    def killed_at_the_selected_epoch(folder, epoch, *args):
        if epoch == selected:
            (tmp_path / "summary.json").write_bytes((run_dir / "summary.json").read_bytes())
            raise KeyboardInterrupt
        return real_save_best(folder, epoch, *args)

    monkeypatch.setattr(run_module, "save_best", killed_at_the_selected_epoch)
    with pytest.raises(KeyboardInterrupt):
        run_training(compose_train(*RUN), run_dir)
    monkeypatch.setattr(run_module, "save_best", real_save_best)
    # as kill -9 leaves it: summary.json of the epoch before
    shutil.copy(tmp_path / "summary.json", run_dir / "summary.json")
    assert torch.load(run_dir / "last.pt", weights_only=False)["epoch"] == selected
    assert not (run_dir / "best.pt").exists() or torch.load(run_dir / "best.pt")["epoch"] < selected

    summary = run_training(compose_train(*RUN), run_dir, resume=True)
    assert summary["status"] == "finished" and summary["resumed_from_epoch"] == selected
    assert summary["selected_epoch"] == summary["best_checkpoint"]["epoch"] == selected
    assert _summary(run_dir)["best_checkpoint"] == _summary(run)["best_checkpoint"]
    resumed, reference = torch.load(run_dir / "best.pt"), torch.load(run / "best.pt")
    assert resumed["epoch"] == reference["epoch"] == selected
    assert all(torch.equal(resumed["model"][k], reference["model"][k]) for k in reference["model"])
