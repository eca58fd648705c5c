"""One training run, from a composed config to a finished run directory:
metrics.csv, per_class.csv, summary.json and last.pt beside Hydra's .hydra/."""

import importlib.metadata
import json
import logging
from dataclasses import asdict
import math
import platform
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import lossbench
from lossbench.data import DeviceBatches, load_dataset
from lossbench.data.augment import Normalize
from lossbench.errors import UserError
from lossbench.formatting import format_number
from lossbench.losses import build_loss
from lossbench.losses.class_weights import class_weights
from lossbench.models import build_model
from lossbench.diagnosis import diagnose
from lossbench.training.device import (
    device_name,
    prepare_compile,
    resolve_channels_last,
    resolve_device,
    resolve_precision,
)
from lossbench.training.checkpoint import (
    check_resumable,
    load_training_state,
    restore_rng,
    rng_state,
    save_training_state,
)
from lossbench.training.folder_lock import claim
from lossbench.training.metrics import METRIC_COLUMNS, RELIABILITY_COLUMNS, class_groups
from lossbench.training.optim import build_optimizer, build_scheduler
from lossbench.training.run_files import MetricsCSV, format_value, write_csv, write_json, write_text
from lossbench.training.trainer import Trainer
from lossbench.training.validate import compile_mode, loss_knobs, validate_config

log = logging.getLogger("lossbench")

# Shown in the table printed at the end of a run.
SUMMARY_METRICS = ("train_loss", "train_acc", "test_loss", "test_nll", "test_acc", "test_balanced_acc", "test_tail_acc", "test_ece")


def _sample_weights(sampler: str, data) -> torch.Tensor | None:
    """Per-image draw probabilities: each class equally likely under class_balanced."""
    if sampler == "random":
        return None
    counts = torch.as_tensor(data.class_counts, dtype=torch.float32, device=data.train.labels.device)
    return (1.0 / counts)[data.train.labels]


def class_weight_schedule(loss_fn, trainer_cfg, class_counts):
    """The class weights of each epoch: the loss's own, until deferred
    re-weighting (trainer.drw_epoch) switches effective-number weights on."""
    own, drw_epoch = loss_fn.class_weight.clone(), trainer_cfg.drw_epoch
    if drw_epoch is None:
        return lambda epoch: own
    deferred = class_weights(class_counts, "effective", float(trainer_cfg.drw_beta))
    return lambda epoch: deferred if epoch > drw_epoch else own


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # both ways: the runs of an in-process sweep share these settings
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic


def _versions() -> dict:
    return {
        "lossbench": lossbench.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        # read from the installed distribution: importing torchvision costs seconds at every start
        "torchvision": importlib.metadata.version("torchvision"),
    }


def format_summary_table(summary: dict) -> str:
    final, best = summary["final"], summary["best"]
    names = [m for m in SUMMARY_METRICS if final.get(m) is not None]
    width = max(len(m) for m in names)
    lines = [f"{'metric':<{width}}  {'final':>8}  {'best (epoch ' + str(summary['best_epoch']) + ')':>16}"]
    lines += [f"{m:<{width}}  {format_number(final.get(m)):>8}  {format_number(best.get(m)):>16}" for m in names]
    return "\n".join(lines)


PER_CLASS_COLUMNS = ("class", "train_count", "group", "test_acc_last", "test_acc_best")


def _per_class_rows(counts, groups, last, best) -> list[dict]:
    return [
        {
            "class": c,
            "train_count": counts[c],
            "group": groups[c] if groups else "",
            "test_acc_last": "" if last is None else f"{last[c]:.6g}",
            "test_acc_best": "" if best is None else f"{best[c]:.6g}",
        }
        for c in range(len(counts))
    ]


def diagnose_rows(rows: list[dict]):
    return diagnose(
        [r["epoch"] for r in rows], [r["train_loss"] for r in rows], [r["test_loss"] for r in rows],
        [r["test_acc"] for r in rows],
    )


def _truncate_metrics(path: Path, epochs: int) -> list[dict]:
    """Keep the header and the rows of the first ``epochs`` epochs (a row cut
    short by a kill goes too); return those rows."""
    import csv

    with open(path, newline="") as f:
        lines = f.read().split("\n")
    header = lines[0]
    body = [line for line in lines[1:] if line.count(",") == header.count(",")]
    kept = [line for line in body if line.split(",", 1)[0].isdigit() and int(line.split(",", 1)[0]) <= epochs]
    write_text(path, "\n".join([header, *kept]) + "\n")
    return [{k: (float(v) if v not in ("", "nan") else (math.nan if v == "nan" else None)) for k, v in row.items()}
            for row in csv.DictReader([header, *kept])]


def refuse_existing_run(run_dir: Path) -> None:
    if (run_dir / "metrics.csv").exists():
        raise UserError(f"{run_dir} already holds a run (metrics.csv): resume it with trainer.resume={run_dir}, "
                        f"or choose another output directory")


def run_training(cfg: DictConfig, run_dir: Path, resume: bool = False, stop=None) -> dict:
    """Train as ``cfg`` says, writing into ``run_dir``; returns the summary.

    ``resume``: continue the run in ``run_dir`` from its last.pt. ``stop``: a
    flag (``stop_signals.StopRequest``) that ends the run cleanly when raised.
    """
    validate_config(cfg)
    run_dir = Path(run_dir)
    # a folder made here goes again if the run stops before writing into it
    with claim(run_dir, remove_if_empty=not run_dir.exists()):
        return _train(cfg, run_dir, resume, stop)


def _train(cfg: DictConfig, run_dir: Path, resume: bool, stop) -> dict:
    started = time.perf_counter()
    epochs = int(cfg.trainer.epochs)
    if resume:
        check_resumable(run_dir, OmegaConf.to_container(cfg, resolve=True))
        state = load_training_state(run_dir / "last.pt")
    else:
        refuse_existing_run(run_dir)
    device = resolve_device(str(cfg.trainer.device))
    precision = resolve_precision(str(cfg.trainer.precision), device)
    compiling = compile_mode(cfg.trainer.compile)
    prepare_compile(compiling, device)
    if float(cfg.sched.warmup_epochs) >= epochs:
        log.warning("sched.warmup_epochs=%s covers the whole run of %d epochs: the learning rate never leaves the warm-up",
                    cfg.sched.warmup_epochs, epochs)
    seed_everything(int(cfg.seed), bool(cfg.trainer.deterministic))
    if int(cfg.loss.get("warmup_epochs") or 0) >= epochs:
        log.warning("loss.warmup_epochs=%s covers the whole run of %d epochs: it trains with plain cross entropy "
                    "throughout; lower loss.warmup_epochs", cfg.loss.warmup_epochs, epochs)

    data_dir = Path(str(cfg.paths.data_dir)).expanduser()
    data = load_dataset(cfg.dataset, data_dir, device)
    if cfg.trainer.batch_size > len(data.train):
        raise UserError(
            f"trainer.batch_size={cfg.trainer.batch_size} is larger than the training set "
            f"({len(data.train)} images): use at most {len(data.train)}"
        )
    log.info("%s: %d train / %d test images; training images per class: %s", data.name, len(data.train), len(data.test), data.class_counts)

    channels_last = resolve_channels_last(cfg.trainer.channels_last, device)
    model = build_model(str(cfg.model.name), data.channels, data.num_classes)
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    loss_fn = build_loss(
        str(cfg.loss.name),
        num_classes=data.num_classes,
        embedding_dim=model.embedding_dim,
        class_counts=data.class_counts,
        **loss_knobs(cfg),
    ).to(device)
    if loss_fn.inputs == "embeddings":
        # the loss owns the class weights: the model ends at its embedding
        model.head = torch.nn.Identity()
    class_weight_at = class_weight_schedule(loss_fn, cfg.trainer, data.class_counts)
    optimizer = build_optimizer(list(model.parameters()) + list(loss_fn.parameters()), cfg.optim, device)

    generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
    normalize = Normalize(data.mean, data.std, channels_last)
    train_batches = DeviceBatches(
        data.train,
        int(cfg.trainer.batch_size),
        normalize,
        generator,
        shuffle=True,
        crop_padding=int(cfg.dataset.augment.crop_padding),
        flip=bool(cfg.dataset.augment.flip),
        views=loss_fn.views,
        sample_weights=_sample_weights(str(cfg.trainer.sampler), data),
    )
    test_batches = DeviceBatches(data.test, int(cfg.trainer.eval_batch_size), normalize)
    scheduler = build_scheduler(optimizer, cfg.sched, len(train_batches), epochs)
    groups = class_groups(data.class_counts) if data.long_tailed else None
    trainer = Trainer(
        model, loss_fn, data, train_batches, test_batches, optimizer, scheduler, precision, device, groups,
        progress=bool(cfg.trainer.progress), skip_nonfinite=cfg.trainer.on_nonfinite == "skip_step",
        compile_mode=compiling,
    )

    if resume:
        start_epoch = int(state["epoch"]) + 1
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        trainer.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"], generator)
        best_acc, best_per_class = state["best_acc"], state["best_per_class"]
        summary = json.loads((run_dir / "summary.json").read_text())
        summary.update(status="running", resumed_from_epoch=start_epoch - 1, epochs_planned=epochs, compile=compiling)
        rows = _truncate_metrics(run_dir / "metrics.csv", start_epoch - 1)
        log.info("resuming %s at epoch %d", run_dir, start_epoch)
    else:
        start_epoch, best_acc, best_per_class, rows = 1, -1.0, None, []
        summary = {
            "status": "running",
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "epochs_planned": epochs,
            "epochs_completed": 0,
            "dataset": data.name,
            "model": str(cfg.model.name),
            "loss": str(cfg.loss.name),
            "seed": int(cfg.seed),
            "data_dir": str(data_dir) if data.name.startswith("cifar") else None,
            "device": str(device),
            "device_name": device_name(device),
            "precision": precision.name,
            "compile": compiling,
            "versions": _versions(),
            "class_counts": data.class_counts,
            "final": {},
            "best": {},
            "best_epoch": None,
            "wall_time_s": 0.0,
        }
        # Hydra's .hydra/config.yaml keeps interpolations such as ${oc.env:...}; this is what ran
        write_text(run_dir / "resolved_config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        write_csv(run_dir / "per_class.csv", PER_CLASS_COLUMNS, _per_class_rows(data.class_counts, groups, None, None))
    write_json(run_dir / "summary.json", summary)
    metrics = MetricsCSV(run_dir / "metrics.csv", METRIC_COLUMNS, append=resume)
    wall_before = float(summary.get("wall_time_s") or 0.0)
    try:
        from tqdm.auto import tqdm

        bar = tqdm(range(start_epoch, epochs + 1), desc=f"{data.name} {cfg.model.name} {cfg.loss.name}", unit="epoch",
                   disable=not cfg.trainer.progress, dynamic_ncols=True, initial=start_epoch - 1, total=epochs)
        for epoch in bar:
            loss_fn.start_epoch(epoch)
            if epoch == start_epoch or (cfg.trainer.drw_epoch is not None and epoch == cfg.trainer.drw_epoch + 1):
                # set when the schedule changes, not every epoch: one copy to the device per switch
                loss_fn.set_class_weight(class_weight_at(epoch))
                if epoch > start_epoch:
                    log.info("deferred re-weighting from epoch %d: class weights %s", epoch, class_weight_at(epoch).tolist())
            trained = trainer.train_epoch(epoch, stop)
            if trained is None:
                break
            first_bad = trained.pop("first_nonfinite_step")
            row = {"epoch": epoch, **trained}
            test_row, per_class, reliability = trainer.evaluate()
            row.update(test_row)
            metrics.append(row)
            rows.append(row)
            diverged = trained["nonfinite_steps"] > 0 and not trainer.skip_nonfinite
            diverged |= not math.isfinite(row["train_loss"])
            if diverged:
                # last.pt keeps the last good epoch
                summary["status"] = "diverged"
                summary["error"] = (f"the loss became non-finite at epoch {epoch}, step {first_bad} "
                                    f"(lower optim.lr, or trainer.on_nonfinite=skip_step to skip such steps)")
                log.error("%s", summary["error"])
                summary.update(final=row, epochs_completed=epoch)
                break
            if row["test_acc"] > best_acc:
                best_acc, best_per_class = row["test_acc"], per_class
                summary["best"], summary["best_epoch"] = row, epoch
            summary.update(final=row, epochs_completed=epoch, wall_time_s=wall_before + time.perf_counter() - started)
            write_csv(run_dir / "calibration.csv", RELIABILITY_COLUMNS, [
                {k: format_value(v) for k, v in r.items()} for r in reliability
            ])
            write_csv(run_dir / "per_class.csv", PER_CLASS_COLUMNS,
                      _per_class_rows(data.class_counts, groups, per_class, best_per_class))
            save_training_state(
                run_dir / "last.pt",
                epoch=epoch, model=model.state_dict(), loss=loss_fn.state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), scaler=trainer.scaler.state_dict(), rng=rng_state(generator),
                best_acc=best_acc, best_per_class=best_per_class, config=OmegaConf.to_container(cfg, resolve=True),
            )
            write_json(run_dir / "summary.json", summary)
            bar.set_postfix(train_loss=f"{row['train_loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")
            if stop:
                break
        if stop and summary["status"] == "running":
            summary["status"] = "interrupted"
            summary["stopped_by"] = stop.name
        elif summary["status"] == "running":
            summary["status"] = "finished"
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        raise
    except BaseException:
        summary["status"] = "failed"
        raise
    finally:
        metrics.close()
        summary["diagnosis"] = asdict(diagnose_rows(rows))
        summary["wall_time_s"] = wall_before + time.perf_counter() - started
        summary["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        write_json(run_dir / "summary.json", summary)
    return summary
