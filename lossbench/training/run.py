"""One training run, from a composed config to a finished run directory:
metrics.csv, per_class.csv, summary.json and last.pt beside Hydra's .hydra/."""

import importlib.metadata
import logging
from dataclasses import dataclass, field
import math
import os
import platform
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

import lossbench
from lossbench.data import batches_of, load_dataset
from lossbench.data.placement import loader_workers
from lossbench.data.augment import Normalize
from lossbench.data.sources import source_of
from lossbench.errors import UserError
from lossbench.losses.registry import build_loss
from lossbench.losses.class_weights import class_weights
from lossbench.models import build_model
from lossbench.diagnosis import RunFacts, diagnose
from lossbench.posthoc import posthoc_results
from lossbench.tracking import Trackers, start_tracking
from lossbench.training.device import (
    device_name,
    prepare_compile,
    resolve_device,
    resolve_precision,
)
from lossbench.training.best_checkpoint import data_record, resume_best, save_best
from lossbench.training.checkpoint import check_resumable, restore_rng, rng_state
from lossbench.training.epoch_log import epoch_lines_in_files_only, log_epoch
from lossbench.training.fast_defaults import FastSettings, fast_settings
from lossbench.training.folder_lock import claim
from lossbench.training.columns import METRIC_COLUMNS
from lossbench.training.metrics import RELIABILITY_COLUMNS, class_groups
from lossbench.training.optim import build_optimizer, build_scheduler
from lossbench.training.run_dir import RunDir
from lossbench.training.run_files import format_value
from lossbench.training.selection import ORACLE_METRIC, Selection, selection_for
from lossbench.training.trainer import Trainer
from lossbench.training.validate import compile_mode, loss_knobs, validate_config

log = logging.getLogger("lossbench")


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


PER_CLASS_COLUMNS = ("class", "name", "train_count", "group", "test_acc_last", "test_acc_selected")


def _per_class_rows(counts, names, groups, last, selected) -> list[dict]:
    return [
        {
            "class": c,
            "name": names[c],
            "train_count": counts[c],
            "group": groups[c] if groups else "",
            "test_acc_last": "" if last is None else f"{last[c]:.6g}",
            "test_acc_selected": "" if selected is None else f"{selected[c]:.6g}",
        }
        for c in range(len(counts))
    ]


@dataclass
class Setup:
    """Everything a run trains with, built from its config."""

    cfg: DictConfig
    data: object
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    generator: torch.Generator
    trainer: Trainer
    groups: list[str] | None
    class_weight_at: object  # epoch -> the class weights of that epoch
    selection: Selection
    fast: FastSettings


@dataclass
class Progress:
    """Where a run stands: what a checkpoint restores."""

    start_epoch: int
    summary: dict
    rows: list[dict] = field(default_factory=list)
    selected_key: tuple | None = None  # Selection.key of the selected epoch
    selected_epoch: int | None = None
    selected_per_class: list | None = None
    oracle_acc: float = -1.0

    def checkpoint_state(self) -> dict:
        return {"selected_key": self.selected_key, "selected_epoch": self.selected_epoch,
                "selected_per_class": self.selected_per_class, "oracle_acc": self.oracle_acc}


def run_training(cfg: DictConfig, run_dir: Path, resume: bool = False, stop=None) -> dict:
    """Train as ``cfg`` says, writing into ``run_dir``; returns the summary.

    ``resume``: continue the run in ``run_dir`` from its last.pt. ``stop``: a
    flag (``stop_signals.StopRequest``) that ends the run cleanly when raised.
    """
    validate_config(cfg)
    run_dir = RunDir(run_dir)
    # a folder made here goes again if the run stops before writing into it
    with claim(run_dir.path, remove_if_empty=not run_dir.path.exists()):
        started = time.perf_counter()
        if resume:
            check_resumable(run_dir.path, OmegaConf.to_container(cfg, resolve=True))
            state = run_dir.load_checkpoint()
        else:
            run_dir.refuse_existing_run()
        setup = build(cfg)
        progress = restore(setup, run_dir, state) if resume else start(setup, run_dir)
        trackers = start_tracking(cfg, run_dir.path, progress.summary, progress.rows)
        with epoch_lines_in_files_only(progress_bar=bool(cfg.trainer.progress)):
            return fit(setup, progress, run_dir, stop, started, trackers)


def build(cfg: DictConfig) -> Setup:
    epochs = int(cfg.trainer.epochs)
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

    data = load_dataset(cfg.dataset, Path(str(cfg.paths.data_dir)).expanduser(), device)
    if cfg.trainer.batch_size > len(data.train):
        raise UserError(
            f"trainer.batch_size={cfg.trainer.batch_size} is larger than the training set "
            f"({len(data.train)} images): use at most {len(data.train)}"
        )
    selection = selection_for(str(cfg.trainer.select_metric), data.val is not None)
    log.info("%s: %d train / %d validation / %d test images; training images per class: %s; reported epoch: %s",
             data.name, len(data.train), len(data.val) if data.val else 0, len(data.test), data.class_counts,
             selection.by)
    log.info("data: %s", data.placement.reason)
    log.info("images: %s", data.preparation)

    model, loss_fn, fast = build_network(cfg, data, device)
    log.info("speed: %s", fast.describe())
    optimizer = build_optimizer(list(model.parameters()) + list(loss_fn.parameters()), cfg.optim, device)

    generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
    normalize = Normalize(data.mean, data.std, fast.channels_last.value)
    workers = loader_workers(cfg.dataset.loader_workers)
    train_batches = batches_of(
        data.train, int(cfg.trainer.batch_size), normalize, workers, generator=generator, shuffle=True,
        crop_padding=int(cfg.dataset.augment.crop_padding), flip=bool(cfg.dataset.augment.flip),
        views=loss_fn.views, sample_weights=_sample_weights(str(cfg.trainer.sampler), data),
    )
    eval_batches = evaluation_batches(data, fast.eval_batch_size.value, normalize, workers)
    scheduler = build_scheduler(optimizer, cfg.sched, len(train_batches), epochs)
    groups = class_groups(data.class_counts) if data.long_tailed else None
    trainer = Trainer(
        model, loss_fn, data, train_batches, eval_batches, optimizer, scheduler, precision, device, groups,
        progress=bool(cfg.trainer.progress), skip_nonfinite=cfg.trainer.on_nonfinite == "skip_step",
        compile_mode=compiling,
        clip_grad_norm=None if cfg.trainer.clip_grad_norm is None else float(cfg.trainer.clip_grad_norm),
    )
    return Setup(cfg, data, model, loss_fn, optimizer, scheduler, generator, trainer, groups,
                 class_weight_schedule(loss_fn, cfg.trainer, data.class_counts), selection, fast)


def build_network(cfg: DictConfig, data, device: torch.device,
                  class_counts: list[int] | None = None) -> tuple[torch.nn.Module, torch.nn.Module, FastSettings]:
    """The model and the loss of ``cfg`` for ``data``'s images, on ``device``,
    and the memory layout and evaluation batch they run with there.
    ``class_counts``: those the loss is built with (default: ``data``'s)."""
    model = build_model(str(cfg.model.name), data.channels, data.num_classes, image_size=data.image_size,
                        **{k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k != "name"})
    model = model.to(device)
    fast = fast_settings(cfg.trainer, device, model, data.channels, data.image_size)
    if fast.channels_last.value:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(str(cfg.loss.name), num_classes=data.num_classes, embedding_dim=model.embedding_dim,
                         class_counts=data.class_counts if class_counts is None else class_counts,
                         **loss_knobs(cfg)).to(device)
    if loss_fn.inputs == "embeddings":
        # the loss owns the class weights: the model ends at its embedding
        model.head = torch.nn.Identity()
    return model, loss_fn, fast


def evaluation_batches(data, batch_size: int, normalize: Normalize, workers: int) -> dict:
    """The evaluation passes' batches, by split: test, and val where there is one."""
    return {name: batches_of(split, batch_size, normalize, workers)
            for name, split in (("val", data.val), ("test", data.test)) if split is not None}


def _where_it_runs(run: Setup) -> dict:
    """The summary's record of the machine; a resumed run may continue on another."""
    return {
        "device": str(run.trainer.device),
        "device_name": device_name(run.trainer.device),
        # the GPUs the job was given (a launcher's slot); None: not set, every GPU visible
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        # torch's CPU threads (OMP_NUM_THREADS, or one per core): what a CPU run's speed depends on
        "threads": torch.get_num_threads(),
        "compile": run.trainer.compile_mode,
        # on_device (one tensor per split) or streamed (DataLoader workers), and why
        "data_placement": run.data.placement.name,
        "data_placement_reason": run.data.placement.reason,
        # trainer.channels_last and trainer.eval_batch_size as this device took them
        **run.fast.record(),
    }


def start(run: Setup, run_dir: RunDir) -> Progress:
    cfg, data, trainer = run.cfg, run.data, run.trainer
    summary = {
        "status": "running",
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "epochs_planned": int(cfg.trainer.epochs),
        "epochs_completed": 0,
        "dataset": data.name,
        # timm's networks by their own name
        "model": f"timm/{cfg.model.arch}" if cfg.model.name == "timm" else str(cfg.model.name),
        "loss": str(cfg.loss.name),
        "seed": int(cfg.seed),
        "data_dir": None if source_of(data.name) == "digits" else str(Path(str(cfg.paths.data_dir)).expanduser()),
        **_where_it_runs(run),
        "precision": trainer.precision.name,
        "versions": _versions(),
        "class_names": data.class_names,
        "class_counts": data.class_counts,
        "val_counts": torch.bincount(data.val.labels, minlength=data.num_classes).tolist() if data.val else None,
        "test_counts": torch.bincount(data.test.labels, minlength=data.num_classes).tolist(),
        # the least the training objective can be: where a fitted run's training loss flattens
        "loss_floor": run.loss_fn.floor(),
        "selection": run.selection.record(),
        "final": {},
        "selected": {},
        "selected_epoch": None,
        # best.pt: the model and the loss of the selected epoch
        "best_checkpoint": None,
        # the epoch of best test accuracy: optimistic, chosen on the data it is measured on
        "oracle": {},
        "oracle_epoch": None,
        "wall_time_s": 0.0,
    }
    run_dir.write_config(cfg)
    run_dir.write_training_images(data.kept, data.kept_labels, data.held_out)
    run_dir.write_per_class(PER_CLASS_COLUMNS, _per_class_rows(data.class_counts, data.class_names, run.groups, None, None))
    return Progress(1, summary)


def restore(run: Setup, run_dir: RunDir, state: dict) -> Progress:
    start_epoch = int(state["epoch"]) + 1
    run.model.load_state_dict(state["model"])
    run.loss_fn.load_state_dict(state["loss"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.trainer.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"], run.generator)
    summary = run_dir.summary() or {}
    for said_of_the_stop in ("stopped_by", "not_requeued"):  # the stop this run resumes from; a new stop says its own
        summary.pop(said_of_the_stop, None)
    # where it trains now: a resumed run may continue on another machine
    summary.update(status="running", resumed_from_epoch=start_epoch - 1, epochs_planned=int(run.cfg.trainer.epochs),
                   **_where_it_runs(run))
    log.info("resuming %s at epoch %d", run_dir.path, start_epoch)
    progress = Progress(start_epoch, summary, run_dir.truncate_metrics(start_epoch - 1, METRIC_COLUMNS), **state.get("progress", {}))
    if progress.selected_epoch is not None and summary.get("selected_epoch") != progress.selected_epoch:
        # killed after last.pt, before summary.json: the selection is last.pt's
        summary["selected_epoch"] = progress.selected_epoch
        summary["selected"] = next((r for r in progress.rows if r.get("epoch") == progress.selected_epoch), {})
    summary["best_checkpoint"] = resume_best(run_dir, state, progress.selected_epoch, run.selection.record())
    return progress


def fit(run: Setup, progress: Progress, run_dir: RunDir, stop, started: float, trackers=Trackers()) -> dict:
    cfg, trainer, loss_fn, summary = run.cfg, run.trainer, run.loss_fn, progress.summary
    epochs = int(cfg.trainer.epochs)
    run_dir.write_summary(summary)
    metrics = run_dir.metrics_writer(METRIC_COLUMNS, append=progress.start_epoch > 1)
    wall_before = float(summary.get("wall_time_s") or 0.0)
    class_weight, evaluated = None, None
    try:
        bar = tqdm(range(progress.start_epoch, epochs + 1), desc=f"{run.data.name} {cfg.model.name} {cfg.loss.name}",
                   unit="epoch", disable=not cfg.trainer.progress, dynamic_ncols=True,
                   initial=progress.start_epoch - 1, total=epochs)
        for epoch in bar:
            loss_fn.start_epoch(epoch)
            if run.class_weight_at(epoch) is not class_weight:  # one copy to the device per switch
                class_weight = run.class_weight_at(epoch)
                loss_fn.set_class_weight(class_weight)
                if epoch > progress.start_epoch:
                    log.info("deferred re-weighting from epoch %d: class weights %s", epoch, class_weight.tolist())
            trained = trainer.train_epoch(epoch, stop)
            if trained is None:
                break
            first_bad = trained.pop("first_nonfinite_step")
            evaluated, eval_time = trainer.evaluate_all()
            row = {"epoch": epoch, **trained, **{k: v for e in evaluated.values() for k, v in e.row.items()},
                   "eval_time_s": eval_time}
            metrics.append(row)
            progress.rows.append(row)
            trackers.log_epoch(row)
            log_epoch(row, epochs)
            if trained["nonfinite_steps"] > 0 and not trainer.skip_nonfinite or not math.isfinite(row["train_loss"]):
                # last.pt keeps the last good epoch
                summary.update(status="diverged", final=row, epochs_completed=epoch, error=(
                    f"the loss became non-finite at epoch {epoch}, step {first_bad} "
                    f"(lower optim.lr, or trainer.on_nonfinite=skip_step to skip such steps)"))
                log.error("%s", summary["error"])
                evaluated = None
                break
            summary.update(final=row, epochs_completed=epoch, wall_time_s=wall_before + time.perf_counter() - started)
            _select(run, progress, run_dir, epoch, row, evaluated)
            _save_epoch(run, progress, run_dir, epoch, evaluated["test"])
            bar.set_postfix(train_loss=f"{row['train_loss']:.3f}", test_acc=f"{row['test_acc']:.3f}")
            if stop:
                break
        if summary["status"] == "running":
            summary["status"] = "interrupted" if stop else "finished"
            if stop:
                summary["stopped_by"] = stop.name
        if evaluated is not None:
            _save_logits(run, run_dir, "final", summary["epochs_completed"], evaluated)
        summary["posthoc"] = _posthoc(run, run_dir)
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        raise
    except BaseException:
        summary["status"] = "failed"
        raise
    finally:
        metrics.close()
        summary["diagnosis"] = diagnose(progress.rows, RunFacts.from_summary(summary)).record()
        summary["wall_time_s"] = wall_before + time.perf_counter() - started
        summary["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run_dir.write_summary(summary)
        trackers.finish(summary)
    return summary


def _select(run: Setup, progress: Progress, run_dir: RunDir, epoch: int, row: dict, evaluated: dict) -> None:
    """The selected epoch (by the selection metric) and the oracle one (by test accuracy)."""
    summary = progress.summary
    if run.selection.improves(row, progress.selected_key):
        progress.selected_key, progress.selected_epoch = run.selection.key(row), epoch
        progress.selected_per_class = evaluated["test"].per_class
        summary["selected"], summary["selected_epoch"] = row, epoch
        _save_logits(run, run_dir, "selected", epoch, evaluated)
    if row[ORACLE_METRIC] > progress.oracle_acc:
        progress.oracle_acc = row[ORACLE_METRIC]
        summary["oracle"], summary["oracle_epoch"] = row, epoch


def _save_logits(run: Setup, run_dir: RunDir, which: str, epoch: int, evaluated: dict) -> None:
    splits = {"val": run.data.val, "test": run.data.test}
    run_dir.save_logits(which, epoch, {name: (e.logits, splits[name].labels) for name, e in evaluated.items()})


def _posthoc(run: Setup, run_dir: RunDir) -> dict | None:
    """Temperature scaling and logit adjustment of the selected epoch, fitted on validation."""
    saved = run_dir.logits("selected") if run.data.val is not None else None
    if saved is None:
        return None
    results = posthoc_results((saved["val_logits"], saved["val_labels"]), (saved["test_logits"], saved["test_labels"]),
                              run.data.class_counts, run.groups)
    return None if results is None else {"epoch": saved["epoch"], **results}


def _save_epoch(run: Setup, progress: Progress, run_dir: RunDir, epoch: int, test) -> None:
    """An epoch's files; the checkpoint before the summary that says the epoch is complete."""
    run_dir.write_calibration(RELIABILITY_COLUMNS, [{k: format_value(v) for k, v in r.items()} for r in test.reliability])
    run_dir.write_per_class(PER_CLASS_COLUMNS, _per_class_rows(run.data.class_counts, run.data.class_names, run.groups,
                                                               test.per_class, progress.selected_per_class))
    config, data = OmegaConf.to_container(run.cfg, resolve=True), data_record(run.data)
    run_dir.save_checkpoint(
        epoch=epoch, model=run.model.state_dict(), loss=run.loss_fn.state_dict(), optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(), scaler=run.trainer.scaler.state_dict(), rng=rng_state(run.generator),
        progress=progress.checkpoint_state(), config=config, data=data,
    )
    if progress.selected_epoch == epoch:
        # after last.pt, which holds the same epoch: a resume rewrites best.pt from it if a kill came between
        progress.summary["best_checkpoint"] = save_best(run_dir, epoch, run.model.state_dict(),
                                                        run.loss_fn.state_dict(), run.selection.record(), data, config)
    run_dir.write_summary(progress.summary)
