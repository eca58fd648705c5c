"""last.pt: everything needed to continue a run exactly where it stopped, and
the checks that a run directory can be resumed by a given config."""

import json
import random
from pathlib import Path

import numpy as np
import torch
import yaml

from lossbench.errors import UserError
from lossbench.training.run_files import save_checkpoint

# what must match for a checkpoint to continue under a config
IDENTITY_KEYS = ("dataset.name", "dataset.imbalance_ratio", "dataset.profile", "model.name", "loss.name")


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


def save_training_state(path: Path, **state) -> None:
    save_checkpoint(path, state)


def load_training_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: the run has no completed epoch to resume from") from None
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"{path} cannot be read ({type(e).__name__}: {e}): the run cannot be resumed") from None


def _select(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def check_resumable(run_dir: Path, config: dict) -> None:
    """A UserError unless ``run_dir`` is a run with a checkpoint made with the same data, model and loss."""
    if not run_dir.is_dir() or not (run_dir / "resolved_config.yaml").is_file():
        raise UserError(f"trainer.resume={run_dir} is not a lossbench run directory (no resolved_config.yaml): "
                        f"give a run directory, or trainer.resume=auto")
    if not (run_dir / "last.pt").is_file():
        raise UserError(f"trainer.resume={run_dir} has no last.pt: it never completed an epoch; start it afresh")
    made_with = yaml.safe_load((run_dir / "resolved_config.yaml").read_text()) or {}
    different = [f"{k}={_select(made_with, k)} (now {_select(config, k)})" for k in IDENTITY_KEYS
                 if _select(made_with, k) != _select(config, k)]
    if different:
        raise UserError(f"trainer.resume={run_dir} was made with {', '.join(different)}: resume it with the same "
                        f"dataset, model and loss")
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return
    done, planned = summary.get("epochs_completed") or 0, _select(config, "trainer.epochs")
    if summary.get("status") == "finished" and isinstance(planned, int) and done >= planned:
        raise UserError(f"trainer.resume={run_dir} has finished its {done} epochs: nothing to resume "
                        f"(raise trainer.epochs to train it longer)")


def _comparable(config: dict) -> dict:
    config = json.loads(json.dumps(config, default=str))
    config.get("trainer", {}).pop("resume", None)
    config.get("trainer", {}).pop("progress", None)
    config.pop("paths", None)
    return config


def resumable_runs(output_dir: Path, config: dict) -> list[Path]:
    """The runs under ``output_dir``/runs that did not finish and ran this same config, newest first."""
    wanted = _comparable(config)
    found = []
    for run in sorted(output_dir.glob("runs/*/*"), reverse=True):
        try:
            status = json.loads((run / "summary.json").read_text()).get("status")
            made_with = yaml.safe_load((run / "resolved_config.yaml").read_text()) or {}
        except (OSError, json.JSONDecodeError, yaml.YAMLError):
            continue
        if status != "finished" and (run / "last.pt").is_file() and _comparable(made_with) == wanted:
            found.append(run)
    if not found:
        raise UserError(f"trainer.resume=auto found no unfinished run with this config under {output_dir / 'runs'}: "
                        f"give the run directory, trainer.resume=DIR")
    return found
