"""Checks of ``lossbench train``'s command line made before Hydra runs, so that
the mistakes users make most get one line and exit code 2 rather than Hydra's
multi-line error or a traceback: an unknown option of a config group, and an
output directory that cannot be written."""

import os
import tempfile
from pathlib import Path

import yaml

from lossbench.config_dir import config_dir
from lossbench.errors import UserError
from lossbench.training.sweep import SWEEP_FUNCTIONS, is_swept

GROUP_NOUNS = {
    "dataset": "datasets", "model": "models", "loss": "losses", "optim": "optimizers", "sched": "schedules",
    "trainer": "trainer configs", "paths": "path configs", "experiment": "experiments",
    "hparams_search": "searches",
}
OUTPUT_KEYS = ("paths.output_dir", "hydra.run.dir", "hydra.sweep.dir")
# Hydra's informational modes write nothing
NO_OUTPUT_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve")


def _parse(overrides: list[str]) -> dict[str, str]:
    pairs = {}
    for arg in overrides:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        pairs[key.lstrip("+~")] = value
    return pairs


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def check_group_choices(pairs: dict[str, str]) -> None:
    for group, noun in GROUP_NOUNS.items():
        value = pairs.get(group)
        if value is None or value == "null" or any(f in value for f in SWEEP_FUNCTIONS):
            continue
        valid = options(group)
        for choice in value.split(","):
            if choice not in valid:
                raise UserError(f"{group}={choice!r} is unknown: valid {noun} are {', '.join(valid)}")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _can_create_in(directory: Path) -> bool:
    # Trying is the only reliable test: permission bits say yes to root on
    # read-only or virtual file systems.
    if not directory.is_dir():
        return False
    try:
        os.rmdir(tempfile.mkdtemp(dir=directory, prefix=".lossbench-check-"))
    except OSError:
        return False
    return True


def output_dir_of(overrides: list[str]) -> str:
    return _parse(overrides).get("paths.output_dir", "results")


def check_output_dirs(pairs: dict[str, str]) -> None:
    given = [pairs[k] for k in OUTPUT_KEYS if k in pairs and "${" not in pairs[k]]
    for directory in given or ["results"]:
        target = Path(directory).expanduser().absolute()
        existing = _nearest_existing(target)
        if not _can_create_in(existing):
            raise UserError(
                f"cannot write runs under {target}: {existing} is not a writable directory; "
                f"set paths.output_dir=DIR (default: results/ in the current directory) to one you can write"
            )


def _chosen_losses(pairs: dict[str, str]) -> list[str]:
    """The loss(es) a command line trains with: given, swept, from an experiment, or the default."""
    if "loss" in pairs:
        return [v for v in pairs["loss"].split(",")] if not any(f in pairs["loss"] for f in SWEEP_FUNCTIONS) else []
    for group in ("experiment", "hparams_search"):
        if group in pairs and not is_swept(pairs[group]):
            defaults = (yaml.safe_load((config_dir() / group / f"{pairs[group]}.yaml").read_text()) or {}).get("defaults", [])
            for entry in defaults:
                if isinstance(entry, dict) and "override /loss" in entry:
                    return [entry["override /loss"]]
    return ["ce"]


def loss_knob_overrides(overrides: list[str]) -> list[str]:
    """``loss.KNOB=V`` checked against the chosen loss's knobs; a knob that its
    config file does not list (weight, reduction, ...) is added with ``++``."""
    from lossbench.losses import LOSSES, knob_defaults

    losses = [name for name in _chosen_losses(_parse(overrides)) if name in LOSSES]
    rewritten = []
    for arg in overrides:
        key = arg.split("=", 1)[0]
        if arg.startswith("-") or "=" not in arg or not key.startswith("loss.") or key.count(".") != 1:
            rewritten.append(arg)
            continue
        knob = key.split(".", 1)[1]
        owners = [name for name in losses if knob in knob_defaults(name)]
        if losses and not owners:
            name = losses[0]
            valid = ", ".join(knob_defaults(name))
            raise UserError(f"loss.{knob} is not a knob of {name}: its knobs are {valid}")
        listed = all(knob in (yaml.safe_load((config_dir() / "loss" / f"{name}.yaml").read_text()) or {}) for name in losses)
        rewritten.append(arg if listed else "++" + arg)
    return rewritten


# launchers from optional extras: the module that must import, and the extra
LAUNCHER_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "sweep"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "local_gpus": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


def check_launcher(pairs: dict[str, str]) -> None:
    import importlib.util

    launcher = pairs.get("hydra/launcher")
    if launcher in LAUNCHER_PLUGINS:
        module, extra = LAUNCHER_PLUGINS[launcher]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"hydra/launcher={launcher} needs its plugin: pip install 'lossbench[{extra}]'")


# groups that train.yaml lists with a null default: ``+GROUP=X`` (the form for
# groups absent from the defaults) would make Hydra fail; it means ``GROUP=X``
OPTIONAL_GROUPS = ("experiment", "hparams_search")


def _plain_optional_groups(overrides: list[str]) -> list[str]:
    return [arg[1:] if arg.startswith("+") and arg[1:].split("=", 1)[0] in OPTIONAL_GROUPS else arg for arg in overrides]


def check_command_line(overrides: list[str]) -> list[str]:
    """The command line, checked; returns it with loss knobs made addable."""
    overrides = _plain_optional_groups(overrides)
    pairs = _parse(overrides)
    check_group_choices(pairs)
    check_launcher(pairs)
    if not any(arg.split("=")[0] in NO_OUTPUT_FLAGS for arg in overrides):
        check_output_dirs(pairs)
    return loss_knob_overrides(overrides)
