"""Hyper-parameter search with Optuna: ``lossbench train hparams_search=NAME``.

A thin integration with current Optuna rather than Hydra's Optuna sweeper
plugin, which pins an old Optuna whose SQLite storage breaks against current
SQLAlchemy. Each trial is a normal run directory; the study lives in
``<output_dir>/search/<name>/study.db``, so launching the same command again
resumes it: finished trials are kept, a trial that a crash or kill left
"running" is marked failed, and only the missing trials run.
"""

import hashlib
import logging
import sys
from pathlib import Path

from lossbench.errors import UserError
from lossbench.training.compose import compose_train
from lossbench.training.run import run_training
from lossbench.training.folder_lock import claim
from lossbench.training.run_files import write_config_record

log = logging.getLogger("lossbench")
PARAM_TYPES = ("float", "int", "categorical")
# what hparams_search.metric may read: the selected epoch's, the last epoch's,
# or (named, optimistic) the best test epoch's metrics
STAGES = ("selected", "final", "oracle")


def _optuna():
    try:
        import optuna
    except ImportError:
        raise UserError("hparams_search needs Optuna: pip install 'lossbench[sweep]'") from None
    return optuna


def _suggest(trial, key: str, spec) -> object:
    kind = spec.get("type")
    if kind == "float":
        return trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)))
    if kind == "int":
        return trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log", False)))
    if kind == "categorical":
        return trial.suggest_categorical(key, list(spec["choices"]))
    raise UserError(f"hparams_search.params.{key}.type={kind!r} is invalid: valid types are {', '.join(PARAM_TYPES)}")


def _metric(summary: dict, metric: str) -> float:
    stage, _, name = metric.partition(".")
    value = summary.get(stage, {}).get(name) if stage in STAGES else None
    if value is None:
        raise UserError(f"hparams_search.metric={metric!r} is not in the run's summary: use selected.<metric> "
                        f"or final.<metric>, e.g. selected.val_balanced_acc")
    return float(value)


def _study_dir(output_dir: str, name: str, overrides: list[str]) -> Path:
    """One folder per search and command: other settings get a short hash of their own."""
    others = sorted(o for o in overrides if not o.startswith("hparams_search"))
    suffix = "_" + hashlib.sha1(" ".join(others).encode()).hexdigest()[:8] if others else ""
    return Path(output_dir) / "search" / f"{name}{suffix}"


def run_search(overrides: list[str]) -> int:
    optuna = _optuna()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    base = compose_train(overrides)
    search = base.hparams_search
    if str(search.metric).partition(".")[2].startswith("val_") and not base.dataset.get("val_fraction"):
        raise UserError(f"hparams_search.metric={search.metric} needs a validation split: set dataset.val_fraction "
                        f"(e.g. 0.1), or name another metric")
    study_dir = _study_dir(str(base.paths.output_dir), str(search.name), overrides)
    study_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=str(search.name),
        storage=f"sqlite:///{study_dir / 'study.db'}",
        direction=str(search.direction),
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=int(search.seed) + len(_trials(optuna, None, study_dir, search))),
    )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # left running by a process that was killed: it will not come back
        study._storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    remaining = int(search.n_trials) - done
    print(f"lossbench train: search {search.name} in {study_dir}: {done} of {search.n_trials} trials done, {max(remaining, 0)} to run")

    def objective(trial):
        params = {key: _suggest(trial, key, spec) for key, spec in search.params.items()}
        trial_overrides = [*overrides, *(f"++{k}={v}" for k, v in params.items())]
        cfg = compose_train(trial_overrides)
        run_dir = study_dir / f"trial_{trial.number:03d}"
        with claim(run_dir):
            write_config_record(run_dir, cfg, trial_overrides)
            summary = run_training(cfg, run_dir)
        trial.set_user_attr("run_dir", str(run_dir))
        if summary["status"] != "finished":
            raise optuna.TrialPruned(f"the run {summary['status']}")
        return _metric(summary, str(search.metric))

    if remaining > 0:
        try:
            study.optimize(objective, n_trials=remaining, catch=(UserError,))
        except KeyboardInterrupt:
            print(f"lossbench train: search interrupted; launch the same command again to resume ({study_dir})",
                  file=sys.stderr)
            return 130
    return _report(optuna, study, study_dir, search)


def _trials(optuna, study, study_dir, search) -> list:
    if study is None:
        try:
            study = optuna.load_study(study_name=str(search.name), storage=f"sqlite:///{study_dir / 'study.db'}")
        except KeyError:
            return []
    return study.get_trials(deepcopy=False)


def _report(optuna, study, study_dir: Path, search) -> int:
    table = study.trials_dataframe()
    table.to_csv(study_dir / "trials.csv", index=False)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    print(f"\n{len(complete)} complete trials of {len(study.trials)} in {study_dir} (trials.csv)")
    if not complete:
        return 1
    best = study.best_trial
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items())
    print(f"best: trial {best.number}  {search.metric} = {best.value:.4f}  {params}  ({best.user_attrs.get('run_dir')})")
    return 0
