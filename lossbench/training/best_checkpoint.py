"""best.pt: the model and the loss of a run's selected epoch, with that epoch
and how it was selected; no optimizer state. It is written each time the
selection moves to a new epoch, after last.pt (which then holds the same
epoch), so that a run killed between the two rewrites it from last.pt when
it is resumed."""

import logging

from lossbench.training.run_dir import RunDir

log = logging.getLogger("lossbench")


def data_record(data) -> dict:
    """What a checkpoint's model was trained on: the shape of its input and
    output, the class counts its loss was built with, and the normalisation
    (the training images' per-channel mean and std) it expects."""
    return {
        "dataset": data.name,
        "num_classes": data.num_classes,
        "channels": data.channels,
        "image_size": data.image_size,
        "class_counts": list(data.class_counts),
        "mean": data.mean.tolist(),
        "std": data.std.tolist(),
    }


def summary_entry(content: dict) -> dict:
    """summary.json's ``best_checkpoint``."""
    selection = content.get("selection") or {}
    return {"epoch": int(content["epoch"]), "selected_by": selection.get("by"), "metric": selection.get("metric")}


def save_best(run_dir: RunDir, epoch: int, model: dict, loss: dict, selection: dict, data: dict | None,
              config: dict | None) -> dict:
    """Write best.pt (``model``, ``loss``: state dicts); returns its summary entry."""
    content = {"epoch": int(epoch), "model": model, "loss": loss, "selection": selection, "data": data,
               "config": config}
    run_dir.save_best(content)
    return summary_entry(content)


def _read_best(run_dir: RunDir) -> dict | None:
    try:
        content = run_dir.load_best()
    except Exception:  # absent, truncated or foreign: as good as none
        return None
    return content if isinstance(content, dict) and isinstance(content.get("epoch"), int) else None


def resume_best(run_dir: RunDir, state: dict, selected_epoch: int | None, selection: dict) -> dict | None:
    """best.pt made to agree with the checkpoint a run resumes from (``state``,
    whose selected epoch is ``selected_epoch``); returns its summary entry, or
    None where the run has no best.pt."""
    best = _read_best(run_dir)
    if selected_epoch is None:  # a checkpoint of an older version, or no epoch selected yet
        return summary_entry(best) if best is not None and best["epoch"] <= int(state["epoch"]) else None
    if best is not None and best["epoch"] == selected_epoch:
        return summary_entry(best)
    if selected_epoch == int(state["epoch"]):
        # killed between last.pt and best.pt: last.pt holds the selected epoch
        return save_best(run_dir, selected_epoch, state["model"], state["loss"], selection, state.get("data"),
                         state.get("config"))
    (run_dir / RunDir.BEST).unlink(missing_ok=True)
    log.warning("%s is missing or does not hold the selected epoch %d: it is written again when the selection "
                "moves to a new epoch", run_dir / RunDir.BEST, selected_epoch)
    return None
