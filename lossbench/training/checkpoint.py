"""The random state a checkpoint keeps, so that a resumed run continues
exactly, and the checks that a run directory can be resumed by a given config."""

import json
import random
from pathlib import Path

import numpy as np
import torch

from lossbench.errors import UserError
from lossbench.training.run_dir import RunDir

# what must match for a checkpoint to continue under a config (model.arch: model=timm's network)
IDENTITY_KEYS = ("dataset.name", "dataset.imbalance_ratio", "dataset.profile", "dataset.val_fraction", "dataset.val_seed",
                 "model.name", "model.arch", "loss.name")


def rng_state(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "generator": generator.get_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _select(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def check_resumable(path: Path, config: dict) -> None:
    """A UserError unless ``path`` is a run with a checkpoint made with the same data, model and loss."""
    run_dir = RunDir(path)
    made_with = run_dir.config() if (run_dir / RunDir.CONFIG).is_file() else None
    if made_with is None:
        raise UserError(f"trainer.resume={path} is not a lossbench run directory (no {RunDir.CONFIG}): "
                        f"give a run directory, or trainer.resume=auto")
    if not run_dir.has_checkpoint():
        raise UserError(f"trainer.resume={path} has no {RunDir.CHECKPOINT}: it never completed an epoch; start it afresh")
    different = [f"{k}={_select(made_with, k)} (now {_select(config, k)})" for k in IDENTITY_KEYS
                 if _select(made_with, k) != _select(config, k)]
    if different:
        raise UserError(f"trainer.resume={path} was made with {', '.join(different)}: resume it with the same "
                        f"dataset, model and loss")
    summary = run_dir.summary()
    if summary is None:
        return
    done, planned = summary.get("epochs_completed") or 0, _select(config, "trainer.epochs")
    if summary.get("status") == "finished" and isinstance(planned, int) and done >= planned:
        raise UserError(f"trainer.resume={path} has finished its {done} epochs: nothing to resume "
                        f"(raise trainer.epochs to train it longer)")


def _comparable(config: dict) -> dict:
    config = json.loads(json.dumps(config, default=str))
    config.get("trainer", {}).pop("resume", None)
    config.get("trainer", {}).pop("progress", None)
    config.get("trainer", {}).pop("loggers", None)
    config.pop("paths", None)
    return config


def resumable_runs(output_dir: Path, config: dict) -> list[Path]:
    """The runs under ``output_dir``/runs that did not finish and ran this same config, newest first."""
    wanted = _comparable(config)
    found = []
    for path in sorted(output_dir.glob("runs/*/*"), reverse=True):
        run = RunDir(path)
        summary, made_with = run.summary(), run.config()
        if summary is None or made_with is None:
            continue
        if summary.get("status") != "finished" and run.has_checkpoint() and _comparable(made_with) == wanted:
            found.append(path)
    if not found:
        raise UserError(f"trainer.resume=auto found no unfinished run with this config under {output_dir / 'runs'}: "
                        f"give the run directory, trainer.resume=DIR")
    return found
