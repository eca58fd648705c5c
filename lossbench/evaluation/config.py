"""The config ``lossbench eval`` evaluates with: the run's own, as it ran,
with the overrides that choose the data it is evaluated on and where it runs.
Nothing that changes the model or the loss can be overridden."""

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from lossbench.errors import UserError
from lossbench.training.compose import compose_train
from lossbench.training.overrides import check_group_choices, not_a_setting, parse

TRAINER_KEYS = ("trainer.device", "trainer.eval_batch_size", "trainer.precision")
ALLOWED = "dataset=NAME, dataset.KEY=VALUE, trainer.device, trainer.eval_batch_size, trainer.precision or paths.KEY"
# where the data is placed and read from: kept from the run when another dataset is chosen
PLACEMENT_KEYS = ("on_device", "loader_workers")


def allowed(key: str) -> bool:
    return key == "dataset" or key.startswith(("dataset.", "paths.")) or key in TRAINER_KEYS


def _current_defaults(made_with: dict) -> DictConfig | None:
    """Today's defaults for the run's dataset, model and loss, for the keys a
    run of an older version did not record; None where they cannot be composed."""
    try:
        choices = [f"{group}={made_with[group]['name']}" for group in ("dataset", "model", "loss")]
        composed = compose_train(choices)
    except (HydraException, KeyError, TypeError, UserError):
        return None
    OmegaConf.set_struct(composed, False)
    return composed


def eval_config(made_with: dict, overrides: list[str]) -> DictConfig:
    """The run's config (``made_with``, as resolved_config.yaml holds it) with
    ``overrides`` applied; a UserError names an override that is not allowed."""
    parsed = parse(list(overrides))
    for key, override in parsed.items():
        if override.is_delete() or override.is_add() or override.is_force_add() or not allowed(key):
            raise UserError(f"{override.input_line} cannot be changed for an evaluation: it takes {ALLOWED} "
                            f"(the data it is evaluated on, and where it runs; the model and the loss are the run's)")
        if override.is_sweep_override():
            raise UserError(f"{override.input_line}: an evaluation takes one value of each setting (run it once per "
                            f"value)")
    defaults = _current_defaults(made_with)
    cfg = OmegaConf.create(made_with) if defaults is None else OmegaConf.merge(defaults, made_with)
    OmegaConf.set_struct(cfg, False)
    if "dataset" in parsed:
        check_group_choices({"dataset": parsed["dataset"]})
        name = parsed["dataset"].value()
        if not isinstance(name, str) or not name:
            raise UserError(f"{parsed['dataset'].input_line} names no dataset: give one, e.g. dataset=digits")
        dataset = OmegaConf.to_container(compose_train([f"dataset={name}"]).dataset, resolve=True)
        dataset.update({k: cfg.dataset[k] for k in PLACEMENT_KEYS if k in cfg.dataset})
        cfg.dataset = dataset
    for key, override in parsed.items():
        if key == "dataset":
            continue
        why = not_a_setting(key, cfg)
        if why:
            raise UserError(why)
        OmegaConf.update(cfg, key, override.value(), merge=False)
    if "loggers" in cfg.trainer:
        cfg.trainer.loggers = []  # an evaluation logs to no tracker: none needs to be installed
    if cfg.model.name == "timm":
        # the weights come from the run's checkpoint: none are fetched or read to build the network
        cfg.model.pretrained, cfg.model.checkpoint = False, None
    return cfg
