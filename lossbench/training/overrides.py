"""Checks of ``lossbench train``'s command line made before Hydra runs, on the
overrides as Hydra's own parser reads them, so that the mistakes users make
most get one line and exit code 2 rather than Hydra's multi-line error or a
traceback: an unknown option of a config group (in a sweep too), a launcher
whose plugin is missing, and an output directory that cannot be written."""

import importlib.util
import os
import tempfile
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from lossbench.config_dir import config_dir
from lossbench.errors import UserError

GROUP_NOUNS = {
    "dataset": "datasets", "model": "models", "loss": "losses", "optim": "optimizers", "sched": "schedules",
    "trainer": "trainer configs", "paths": "path configs", "experiment": "experiments",
    "hparams_search": "searches",
}
OUTPUT_KEYS = ("paths.output_dir", "hydra.run.dir", "hydra.sweep.dir")
# Hydra's informational modes write nothing
NO_OUTPUT_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve")
# Hydra's flags that take a value: the word after them is not an override
VALUE_FLAGS = ("--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-path", "-cp",
               "--config-dir", "-cd", "--experimental-rerun")
INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


def split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(Hydra's flags with their values, the overrides)."""
    flags, overrides, i = [], [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-"):
            flags.append(arg)
            takes_value = arg in VALUE_FLAGS or (arg in ("--info", "-i") and i + 1 < len(args) and args[i + 1] in INFO_CHOICES)
            if takes_value and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            overrides.append(arg)
        i += 1
    return flags, overrides


def hydra_value(path: Path) -> str:
    """A path as a Hydra override value: quoted when it holds characters Hydra
    would parse (a job folder's name holds "=" and ",")."""
    text = str(path)
    if all(c.isalnum() or c in "/._-~" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse(args: list[str]) -> dict[str, Override]:
    """The overrides of a command line, by key, as Hydra parses them."""
    try:
        return {o.key_or_group: o for o in OverridesParser.create().parse_overrides(split_flags(args)[1])}
    except HydraException as e:
        message = " ".join(str(e).split())
        override = getattr(e, "override", None)
        raise UserError(f"cannot read the override {override!r}: {message}" if override else message) from None


def choices(override: Override) -> list[str] | None:
    """The values an override sets, one or a swept list; None for a value that
    only Hydra can expand (a glob) or a deletion."""
    if override.is_delete():
        return None
    if override.is_sweep_override():
        try:
            return list(override.sweep_string_iterator())
        except HydraException:
            return None
    return [override.get_value_element_as_str()]


def options(group: str) -> list[str]:
    if group == "loss":
        from lossbench.losses.knob_tables import LOSS_NAMES

        return list(LOSS_NAMES)
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def check_group_choices(parsed: dict[str, Override]) -> None:
    for group, noun in GROUP_NOUNS.items():
        override = parsed.get(group)
        values = choices(override) if override is not None else None
        valid = options(group)
        for choice in values or []:
            if choice != "null" and choice not in valid:
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


def output_dir_of(args: list[str]) -> str:
    override = parse(args).get("paths.output_dir")
    return str(override.value()) if override is not None else "results"


def check_output_dirs(parsed: dict[str, Override]) -> None:
    given = [str(parsed[k].value()) for k in OUTPUT_KEYS if k in parsed and not parsed[k].is_sweep_override()]
    for directory in [d for d in given if "${" not in d] or ["results"]:
        target = Path(directory).expanduser().absolute()
        existing = _nearest_existing(target)
        if not _can_create_in(existing):
            raise UserError(
                f"cannot write runs under {target}: {existing} is not a writable directory; "
                f"set paths.output_dir=DIR (default: results/ in the current directory) to one you can write"
            )


def not_a_setting(key: str, composed: DictConfig) -> str | None:
    """Why ``key`` is refused, naming the valid keys beside it; None if it is a setting."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(composed, parent) if parent else composed
    if not OmegaConf.is_dict(node) or name in node:
        return None
    if parent == "loss":
        return f"{key} is not a knob of {node.name}: its knobs are {', '.join(k for k in node.keys() if k != 'name')}"
    where = f"the keys of {parent} are" if parent else "the top-level keys are"
    return f"{key} is not a setting: {where} {', '.join(node.keys())}"


def check_additions(parsed: dict[str, Override]) -> None:
    """``+KEY=V`` and ``++KEY=V`` (Hydra's advice for a key it does not know)
    would add a setting that nothing reads: refused, naming the valid keys.
    Checked on the config without them; a swept value stands for its first choice."""
    added = [key for key, o in parsed.items() if (o.is_add() or o.is_force_add()) and not o.is_hydra_override()
             and key not in GROUP_NOUNS and "/" not in key]
    if not added:
        return
    from lossbench.training.compose import compose_train

    others = [o.input_line if not o.is_sweep_override() else f"{key}={choices(o)[0] if choices(o) else ''}"
              for key, o in parsed.items() if key not in added]
    composed = compose_train([line for line in others if not line.endswith("=")])
    for key in added:
        why = not_a_setting(key, composed)
        if why:
            raise UserError(why)


def swept_loss_knobs(args: list[str], parsed: dict[str, Override]) -> list[str]:
    """With the loss swept, ``loss.KNOB=V`` is given to every loss of the sweep
    (``++``), so that each job's config composes and the check of every job
    before the sweep starts names, in one line, a loss that lacks the knob."""
    from lossbench.losses.knob_tables import LOSS_NAMES, knob_table

    losses = choices(parsed["loss"]) if "loss" in parsed and parsed["loss"].is_sweep_override() else None
    if not losses:
        return args
    knobs = {key for key, o in parsed.items() if key.startswith("loss.") and key.count(".") == 1 and not o.is_delete()}
    shared = {key for key in knobs if all(key[5:] in knob_table(name) for name in losses if name in LOSS_NAMES)}
    return [f"++{arg}" if arg.split("=", 1)[0] in knobs - shared else arg for arg in args]


# launchers from optional extras: the module that must import, and the extra
LAUNCHER_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "sweep"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "slurm_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


# hydra/launcher's choices: Hydra's basic, the plugins above, and lossbench's own
LAUNCHERS = ("basic", "local_gpus", *LAUNCHER_PLUGINS)


def check_launcher(parsed: dict[str, Override]) -> None:
    override = parsed.get("hydra/launcher")
    launcher = override.get_value_element_as_str() if override is not None else None
    if launcher is not None and launcher not in LAUNCHERS:
        raise UserError(f"hydra/launcher={launcher} is unknown: valid launchers are {', '.join(LAUNCHERS)}")
    if launcher in LAUNCHER_PLUGINS:
        module, extra = LAUNCHER_PLUGINS[launcher]
        if importlib.util.find_spec(module) is None:
            raise UserError(f"hydra/launcher={launcher} needs its plugin: pip install 'lossbench[{extra}]'")


# groups that train.yaml lists with a null default: ``+GROUP=X`` (the form for
# groups absent from the defaults) would make Hydra fail; it means ``GROUP=X``
OPTIONAL_GROUPS = ("experiment", "hparams_search")


def _plain_optional_groups(args: list[str]) -> list[str]:
    return [arg[1:] if arg.startswith("+") and arg[1:].split("=", 1)[0] in OPTIONAL_GROUPS else arg for arg in args]


def check_command_line(args: list[str]) -> list[str]:
    """The command line, checked; returns it with a swept loss's knobs made addable."""
    args = _plain_optional_groups(args)
    shown = [arg for arg in args if arg in ("--cfg", "-c", "--info", "-i")]
    if shown and any(arg in ("-m", "--multirun") for arg in args):
        raise UserError(f"{shown[0]} shows one job's config and runs nothing: drop -m "
                        f"(e.g. lossbench train hydra/launcher=slurm --cfg hydra --package hydra.launcher)")
    parsed = parse(args)
    check_group_choices(parsed)
    check_additions(parsed)
    check_launcher(parsed)
    if not any(arg.split("=")[0] in NO_OUTPUT_FLAGS for arg in args):
        check_output_dirs(parsed)
    return swept_loss_knobs(args, parsed)
