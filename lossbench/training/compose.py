"""The one way a training config is made: Hydra composes ``configs/train.yaml``
with the command line's overrides. The ``loss`` group's options are made here
from each loss's knob table rather than kept in files, so that a knob's
default is written once."""

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from lossbench.config_dir import config_dir
from lossbench.errors import UserError
from lossbench.losses.knob_tables import LOSS_NAMES, config_node


def register_loss_configs() -> None:
    store = ConfigStore.instance()
    for name in LOSS_NAMES:
        store.store(group="loss", name=name, node=config_node(name))


def compose_train(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="train"):
        return compose("train", overrides=overrides, return_hydra_config=return_hydra_config)


def resolved(cfg: DictConfig) -> dict:
    """The config as plain values, every interpolation resolved: a value left
    missing (``???``) or that cannot be resolved is named in one line."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        raise UserError(f"{e.full_key} has no value: give one, e.g. {e.full_key}=VALUE") from None
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "a setting"
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{key} cannot be resolved: {reason}") from None


register_loss_configs()
