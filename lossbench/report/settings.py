"""Which runs may be compared: those whose configs agree in everything but the
grouping key and the seed. Runs that differ elsewhere belong to different
settings and are compared separately; a seed run twice counts once, and an
unfinished run is shown but not pooled unless asked."""

from dataclasses import dataclass, field

from lossbench.errors import UserError
from lossbench.report.runs import Run

# how a run was executed, not what was trained: these never split runs
EXECUTION_KEYS = ("paths.", "trainer.progress", "trainer.resume", "trainer.device", "trainer.compile",
                  "trainer.deterministic", "trainer.channels_last", "trainer.eval_batch_size", "trainer.precision")
SEED = "seed"


def flat_config(config: dict, prefix: str = "") -> dict:
    """``{"loss": {"gamma": 2}}`` as ``{"loss.gamma": 2}``; lists become tuples (hashable)."""
    flat = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_config(value, dotted + "."))
        else:
            flat[dotted] = tuple(value) if isinstance(value, list) else value
    return flat


def _grouped_keys(key: str, config: dict) -> bool:
    """Whether ``key`` names a config group (``loss``): its whole subtree is the grouping."""
    return isinstance(config.get(key), dict)


def setting(run: Run, key: str) -> tuple:
    """Everything in the run's config that defines the experiment, but the grouping key and the seed."""
    grouped = (key + ".",) if _grouped_keys(key, run.config) else ()
    return tuple(sorted(
        (k, v) for k, v in flat_config(run.config).items()
        if k != key and k != SEED and not k.startswith(grouped) and not k.startswith(EXECUTION_KEYS)
    ))


def check_group_by(runs: list[Run], key: str) -> None:
    """``--group-by``: a key every run's config holds, or one line naming the valid ones."""
    with_config = [run for run in runs if run.config]
    lacking = [run for run in with_config if run.config_value(key) is None]
    if not lacking:
        return
    if len(lacking) == len(with_config):
        flats = [flat_config(run.config) for run in with_config]
        varying = [k for k in sorted(set().union(*flats))
                   if not k.startswith(EXECUTION_KEYS) and len({repr(f.get(k)) for f in flats}) > 1]
        groups = sorted({k for r in with_config for k, v in r.config.items() if isinstance(v, dict)})
        hint = f"; keys that differ between these runs: {', '.join(varying)}" if varying else ""
        raise UserError(f"--group-by {key} is not a config key of these runs: use a config group "
                        f"({', '.join(groups)}) or a dotted key of resolved_config.yaml{hint}")
    names = ", ".join(run.name for run in lacking[:3]) + (f" and {len(lacking) - 3} more" if len(lacking) > 3 else "")
    raise UserError(f"--group-by {key}: {len(lacking)} of {len(with_config)} runs have no {key} ({names}); "
                    f"report them apart, or group by {key.split('.')[0]}")


@dataclass
class Pool:
    """The runs a comparison may use, per setting, and what was left out and why."""

    settings: dict[str, list[Run]]  # a label naming what sets it apart (empty for one setting) -> its runs
    left_out: list[str] = field(default_factory=list)  # one sentence per reason

    @property
    def runs(self) -> list[Run]:
        return [run for runs in self.settings.values() for run in runs]


def _labels(settings: list[tuple]) -> list[str]:
    """Each setting named by the keys whose values differ between the settings."""
    if len(settings) < 2:
        return [""] * len(settings)
    keys = sorted({k for s in settings for k, _ in s})
    dicts = [dict(s) for s in settings]
    differing = [k for k in keys if len({repr(d.get(k)) for d in dicts}) > 1]
    return [", ".join(f"{k}={d.get(k)}" for k in differing) for d in dicts]


def pool(runs: list[Run], key: str, group_label, include_unfinished: bool = False) -> Pool:
    """Split ``runs`` by setting; count each (setting, group, seed) once; leave unfinished runs out unless asked."""
    left_out = []
    unfinished = [run for run in runs if run.status != "finished"]
    if unfinished and not include_unfinished:
        left_out.append(f"{len(unfinished)} unfinished run{'s' if len(unfinished) > 1 else ''} shown but not pooled "
                        f"({', '.join(f'{r.name}: {r.status}' for r in unfinished)}); --include-unfinished pools them")
        runs = [run for run in runs if run.status == "finished"]
    seen, duplicates, kept = {}, [], []
    for run in runs:
        identity = (setting(run, key), group_label(run, key), run.seed)
        if identity in seen:
            duplicates.append(f"{run.name} repeats {seen[identity].name}")
            continue
        seen[identity] = run
        kept.append(run)
    if duplicates:
        left_out.append(f"{len(duplicates)} run{'s' if len(duplicates) > 1 else ''} with the setting, {key} and seed "
                        f"of another counted once ({'; '.join(duplicates)})")
    by_setting: dict[tuple, list[Run]] = {}
    for run in kept:
        by_setting.setdefault(setting(run, key), []).append(run)
    return Pool(dict(zip(_labels(list(by_setting)), by_setting.values())), left_out)
