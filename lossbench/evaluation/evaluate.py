"""``lossbench eval RUN_DIR``: a trained run's best.pt (or last.pt) evaluated
again with the training's own evaluation pass, on the run's data or on
another dataset with the same classes and channels. What it writes goes to a
new folder, RUN_DIR/eval/<checkpoint>-<dataset>[-N] by default; the run's own
files are only read."""

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lossbench.data import load_dataset
from lossbench.data.augment import Normalize
from lossbench.data.sources import num_classes_in, reports_groups
from lossbench.data.placement import loader_workers
from lossbench.errors import UserError, one_line
from lossbench.evaluation.config import eval_config
from lossbench.formatting import format_number
from lossbench.training.compose import resolved
from lossbench.training.device import resolve_device, resolve_precision
from lossbench.training.columns import METRIC_COLUMNS
from lossbench.training.metrics import RELIABILITY_COLUMNS, class_groups
from lossbench.training.run import (PER_CLASS_COLUMNS, _per_class_rows, build_network, evaluation_batches,
                                    seed_everything)
from lossbench.training.run_dir import RunDir
from lossbench.training.run_files import format_value, write_csv, write_json
from lossbench.training.trainer import Trainer
from lossbench.training.validate import validate_config

CHECKPOINTS = {"best": RunDir.BEST, "last": RunDir.CHECKPOINT}
EVAL_FOLDER = "eval"
RECORD = "eval.json"  # beside metrics.csv, per_class.csv and calibration.csv: what marks an evaluation's folder
# metrics.csv: the training's evaluation columns, one row
COLUMNS = ("epoch", *(c for c in METRIC_COLUMNS if c.startswith(("val_", "test_"))))
TABLE = ("acc", "balanced_acc", "head_acc", "medium_acc", "tail_acc", "nll", "ece", "loss")


@dataclass
class Evaluated:
    out: Path  # the folder written
    record: dict  # eval.json's content


def open_run(path) -> RunDir:
    run_dir = RunDir(Path(path).expanduser())
    if not run_dir.path.exists():
        raise UserError(f"{run_dir.path} does not exist: give the folder of a run (lossbench train writes them under "
                        f"results/runs/)")
    if not run_dir.path.is_dir() or run_dir.config() is None:
        raise UserError(f"{run_dir.path} is not a lossbench run directory (no {RunDir.CONFIG}): give the folder of "
                        f"one run, as lossbench train prints it at its end")
    return run_dir


def load_checkpoint(run_dir: RunDir, checkpoint: str) -> dict:
    """The checkpoint's content, with its model, loss and epoch; one line where it cannot be had."""
    path = run_dir / CHECKPOINTS[checkpoint]
    if not path.is_file():
        if checkpoint == "best":
            raise UserError(f"{run_dir.path} has no {RunDir.BEST} (a run made before lossbench kept the selected "
                            f"epoch's model, or one that selected no epoch): use --checkpoint last")
        raise UserError(f"{run_dir.path} has no {RunDir.CHECKPOINT}: the run completed no epoch")
    try:
        content = torch.load(path, map_location="cpu", weights_only=checkpoint == "best")
    except Exception as e:  # truncated, overwritten, foreign
        raise UserError(f"{path} cannot be read ({type(e).__name__}: {one_line(e, 200)}): the checkpoint is "
                        f"damaged") from None
    if not isinstance(content, dict) or not {"epoch", "model", "loss"} <= content.keys() \
            or not isinstance(content["epoch"], int):
        raise UserError(f"{path} is not a lossbench checkpoint (it holds no epoch, model and loss): the checkpoint is "
                        f"damaged")
    return content


def _run_classes(trained_on: dict, summary: dict, made_with: dict) -> int | None:
    if trained_on.get("num_classes"):
        return int(trained_on["num_classes"])
    if summary.get("class_counts"):
        return len(summary["class_counts"])
    try:
        return num_classes_in(OmegaConf.create(made_with["dataset"]))
    except Exception:  # the files of a dataset of one's own, moved since
        return None


def _describe(record: dict) -> str:
    return f"{record.get('channels')}-channel {record.get('image_size')}x{record.get('image_size')} images"


def check_compatible(cfg: DictConfig, data, trained_on: dict, run_classes: int | None) -> None:
    """The classes and the images the model takes must be those it was trained on."""
    trained = trained_on.get("dataset", "its training data")
    if run_classes is not None and data.num_classes != run_classes:
        raise UserError(f"dataset {data.name} has {data.num_classes} classes, the run's model was trained on "
                        f"{run_classes} ({trained}): evaluate it on a dataset with the same classes")
    if trained_on.get("channels") is not None and data.channels != trained_on["channels"]:
        raise UserError(f"dataset {data.name} has {data.channels}-channel images, the run's model was trained on "
                        f"{trained_on['channels']}-channel ones ({trained}): evaluate it on a dataset with the same "
                        f"channels")


def _load_weights(model, loss_fn, content: dict, path: Path, data, trained_on: dict, cfg: DictConfig) -> None:
    try:
        model.load_state_dict(content["model"])
        loss_fn.load_state_dict(content["loss"])
    except RuntimeError as e:  # tensors whose shapes differ, or missing
        if trained_on.get("image_size") not in (None, data.image_size):
            raise UserError(f"{cfg.model.name} is built for the size of its images: dataset {data.name} has "
                            f"{_describe({'channels': data.channels, 'image_size': data.image_size})}, the run's "
                            f"model was trained on {_describe(trained_on)}") from None
        raise UserError(f"{path} does not fit {cfg.model.name} with loss {cfg.loss.name} built for dataset "
                        f"{data.name} ({data.num_classes} classes, "
                        f"{_describe({'channels': data.channels, 'image_size': data.image_size})}): "
                        f"{one_line(e, 200)}") from None


def _trained_long_tailed(made_with: dict) -> bool:
    """As training decides where the head, medium and tail groups are reported."""
    dataset = made_with.get("dataset") or {}
    try:
        return reports_groups(str(dataset.get("name")), float(dataset.get("imbalance_ratio", 1)))
    except (TypeError, ValueError):
        return False


def _out_folder(run_dir: RunDir, checkpoint: str, dataset: str, out) -> Path:
    """Where the evaluation is written: never a folder holding anything but an earlier evaluation."""
    if out is None:
        base = run_dir / EVAL_FOLDER / f"{checkpoint}-{dataset}"
        folder, n = base, 2
        while folder.exists():
            folder, n = base.with_name(f"{base.name}-{n}"), n + 1
        return folder
    folder = Path(out).expanduser()
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / RECORD).is_file())):
        raise UserError(f"--out {folder} is not an empty folder: give a new one (or an earlier evaluation's, which "
                        f"is replaced)")
    return folder


def _selection_of(checkpoint: str, content: dict, summary: dict) -> tuple[str, int | None]:
    """(how the checkpoint's epoch was chosen, the run's selected epoch)."""
    selected = summary.get("selected_epoch")
    if checkpoint == "best":
        by = (content.get("selection") or {}).get("by") or (summary.get("selection") or {}).get("by") or "-"
        return f"the selected epoch: {by}", content["epoch"]
    if selected is not None and selected == content["epoch"]:
        return f"the last completed epoch, also the selected one: {(summary.get('selection') or {}).get('by', '-')}", \
            selected
    return "the last completed epoch", selected


def _last_epoch(summary: dict) -> int | None:
    """The epoch last.pt holds (a diverged run keeps its last good one)."""
    done = summary.get("epochs_completed")
    if not isinstance(done, int):
        return None
    return done - 1 if summary.get("status") == "diverged" else done


def evaluate_run(run_path, checkpoint: str = "best", out=None, overrides=()) -> Evaluated:
    """Evaluate the run at ``run_path`` and write the folder; the UserErrors are one line each."""
    if checkpoint not in CHECKPOINTS:
        raise UserError(f"--checkpoint {checkpoint} is invalid: use best or last")
    run_dir = open_run(run_path)
    made_with, summary = run_dir.config(), run_dir.summary() or {}
    cfg = eval_config(made_with, list(overrides))
    content = load_checkpoint(run_dir, checkpoint)
    trained_on = content.get("data") or {}
    run_classes = _run_classes(trained_on, summary, made_with)
    resolved(cfg)
    wanted = num_classes_in(cfg.dataset)  # known before any image is read
    if run_classes is not None and wanted != run_classes:
        raise UserError(f"dataset {cfg.dataset.name} has {wanted} classes, the run's model was trained on "
                        f"{run_classes} ({trained_on.get('dataset') or made_with['dataset'].get('name')}): evaluate it "
                        f"on a dataset with the same classes")
    validate_config(cfg)
    folder = _out_folder(run_dir, checkpoint, str(cfg.dataset.name), out)

    device = resolve_device(str(cfg.trainer.device))
    precision = resolve_precision(str(cfg.trainer.precision), device)
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    data = load_dataset(cfg.dataset, Path(str(cfg.paths.data_dir)).expanduser(), device)
    check_compatible(cfg, data, trained_on, run_classes)
    # the loss is built with the class counts of the run's training set (a
    # logit adjustment's prior, LDAM's margins), as in training
    class_counts = trained_on.get("class_counts") or summary.get("class_counts")
    if not class_counts or len(class_counts) != data.num_classes:
        class_counts = data.class_counts
    model, loss_fn, fast = build_network(cfg, data, device, class_counts)
    _load_weights(model, loss_fn, content, run_dir / CHECKPOINTS[checkpoint], data, trained_on, cfg)
    epoch = int(content["epoch"])
    loss_fn.start_epoch(epoch)  # a loss's warm-up, as the epoch's evaluation saw it
    # the images standardised as the model was trained: by its training images' statistics
    if trained_on.get("mean") and trained_on.get("std"):
        mean, std = (torch.tensor(trained_on[k], dtype=torch.float32, device=device) for k in ("mean", "std"))
        normalization = f"the run's training images ({trained_on.get('dataset')})"
    else:
        mean, std = data.mean, data.std
        normalization = f"the training images of {data.name} (the checkpoint does not record the run's)"
    # head, medium and tail: the run's training classes by count
    groups = class_groups(class_counts) if _trained_long_tailed(made_with) else None
    workers = loader_workers(cfg.dataset.loader_workers)
    batches = evaluation_batches(data, fast.eval_batch_size.value, Normalize(mean, std, fast.channels_last.value), workers)
    trainer = Trainer(model, loss_fn, data, None, batches, None, None, precision, device, groups, progress=False)
    evaluated, _ = trainer.evaluate_all()
    row = {"epoch": epoch, **{k: v for e in evaluated.values() for k, v in e.row.items()}}

    how, selected_epoch = _selection_of(checkpoint, content, summary)
    last_epoch = epoch if checkpoint == "last" else _last_epoch(summary)
    test = evaluated["test"]
    record = {
        "run": str(run_dir.path.resolve()),
        "checkpoint": checkpoint,
        "file": CHECKPOINTS[checkpoint],
        "epoch": epoch,
        "selected_by": how,
        "selected_epoch": selected_epoch,
        "trained_on": trained_on.get("dataset") or made_with["dataset"].get("name"),
        "dataset": {
            "name": data.name,
            "overrides": [o for o in overrides if o.split("=", 1)[0].startswith("dataset")],
            "val_images": len(data.val) if data.val is not None else 0,
            "test_images": len(data.test),
        },
        "normalization": normalization,
        "groups": "head/medium/tail: the run's training classes by count" if groups else None,
        "device": str(device),
        "precision": precision.name,
        **fast.record(),
        "evaluated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": {c: row.get(c) for c in COLUMNS},
    }
    folder_dir = RunDir(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {folder}: {e.strerror or e}") from None
    write_csv(folder_dir / RunDir.METRICS, COLUMNS, [{c: format_value(row.get(c)) for c in COLUMNS}])
    folder_dir.write_per_class(PER_CLASS_COLUMNS, _per_class_rows(
        class_counts, data.class_names, groups,
        test.per_class if epoch == last_epoch else None, test.per_class if epoch == selected_epoch else None))
    folder_dir.write_calibration(RELIABILITY_COLUMNS,
                                 [{k: format_value(v) for k, v in r.items()} for r in test.reliability])
    write_json(folder_dir / RECORD, record)
    return Evaluated(folder, record)


def format_evaluation(result: Evaluated) -> str:
    record, row = result.record, result.record["metrics"]
    splits = [s for s in ("val", "test") if row.get(f"{s}_acc") is not None]
    names = [m for m in TABLE if any(_present(row.get(f"{s}_{m}")) for s in splits)]
    width = max(len(m) for m in names)
    dataset = record["dataset"]
    images = " / ".join(f"{dataset[f'{s}_images']} {'validation' if s == 'val' else 'test'}" for s in splits)
    lines = [f"{record['file']} of {record['run']}: epoch {record['epoch']}, {record['selected_by']}",
             f"evaluated on {dataset['name']} ({images} images), {record['device']}, {record['precision']}", "",
             f"{'metric':<{width}}  " + "  ".join(f"{s:>8}" for s in splits)]
    lines += [f"{m:<{width}}  " + "  ".join(f"{format_number(row.get(f'{s}_{m}')):>8}" for s in splits) for m in names]
    lines += ["", f"written to {result.out}"]
    return "\n".join(lines)


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def eval_main(run_path, checkpoint: str = "best", out=None, overrides=()) -> Path:
    result = evaluate_run(run_path, checkpoint, out, overrides)
    print(format_evaluation(result))
    return result.out
