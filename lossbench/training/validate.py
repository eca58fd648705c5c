"""Every user-given value of a training config, checked before anything is
loaded or written: one line naming the key, the value and what is valid."""

from omegaconf import DictConfig, OmegaConf

from lossbench.checks import check_choice, check_flag, check_number
from lossbench.data.sources import num_classes_in, source_of
from lossbench.data.placement import ON_DEVICE_CHOICES
from lossbench.data.image_files import BAD_IMAGE_CHOICES, CHANNEL_MODES, FILE_SOURCES
from lossbench.data.long_tail import PROFILES, SUBSAMPLES
from lossbench.errors import UserError
from lossbench.losses.knob_tables import checked_knobs
from lossbench.tracking import LOGGERS, check_installed
from lossbench.training.compose import resolved
from lossbench.training.optim import OPTIMIZERS, SCHEDULES
from lossbench.training.selection import SELECTABLE

SAMPLERS = ("random", "class_balanced")
# model.init of lossbench's own networks: their own initialisation, or LDAM-DRW's (models/classifier.py)
INITS = ("default", "ldam_drw")
# trainer.precision: auto is bf16 autocast on CUDA and float32 elsewhere (device.resolve_precision)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# trainer.compile: false, true (the default mode) or a torch.compile mode
COMPILE_CHOICES = (False, True, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value) -> str | None:
    """The torch.compile mode that trainer.compile asks for; None: no compilation."""
    check_choice("trainer.compile", value, COMPILE_CHOICES)
    if value is False:
        return None
    return "default" if value is True else value


def _check_optim(optim) -> None:
    check_choice("optim", optim.name, OPTIMIZERS)
    check_number("optim.lr", optim.lr, 0, low_inclusive=False)
    check_number("optim.weight_decay", optim.weight_decay, 0)
    if optim.name == "sgd":
        check_number("optim.momentum", optim.momentum, 0, 1, high_inclusive=False)
        check_flag("optim.nesterov", optim.nesterov)
    else:
        betas = list(optim.betas) if OmegaConf.is_list(optim.betas) else optim.betas
        if not isinstance(betas, list) or len(betas) != 2:
            raise UserError(f"optim.betas={betas!r} is invalid: it must be two numbers in [0, 1), e.g. [0.9,0.999]")
        for beta in betas:
            check_number("optim.betas", beta, 0, 1, high_inclusive=False)


def _check_sched(sched) -> None:
    check_choice("sched", sched.name, SCHEDULES)
    check_number("sched.warmup_epochs", sched.warmup_epochs, 0)
    if sched.name == "multistep":
        milestones = sched.milestones
        if not OmegaConf.is_list(milestones):
            raise UserError(f"sched.milestones={milestones!r} is invalid: it must be a list of epochs, e.g. [160,180]")
        previous = -1
        for milestone in milestones:
            check_number("sched.milestones", milestone, 0, integer=True)
            if milestone <= previous:
                raise UserError(f"sched.milestones={list(milestones)} is invalid: the epochs must increase")
            previous = milestone
        check_number("sched.gamma", sched.gamma, 0, low_inclusive=False)
    else:
        check_number("sched.min_lr_ratio", sched.min_lr_ratio, 0, 1)


def _check_image_files(dataset) -> None:
    check_number("dataset.image_size", dataset.image_size, 1, 1024, integer=True)
    check_choice("dataset.channels", dataset.channels, tuple(CHANNEL_MODES))
    check_choice("dataset.on_bad_image", dataset.on_bad_image, BAD_IMAGE_CHOICES)


def _check_given_stats(dataset) -> None:
    """dataset.mean and dataset.std: both null (the training images' own), or a list each."""
    given = {key: dataset.get(key) for key in ("mean", "std")}
    if all(value is None for value in given.values()):
        return
    for key, value in given.items():
        if not OmegaConf.is_list(value) or not value:
            raise UserError(f"dataset.{key}={value!r} is invalid: give one number per channel, e.g. "
                            f"[0.4914,0.4822,0.4465], with dataset.{'std' if key == 'mean' else 'mean'} alike, "
                            f"or null for both (the training images' own)")
    for value in given["mean"]:
        check_number("dataset.mean", value, 0, 1)
    for value in given["std"]:
        check_number("dataset.std", value, 0, low_inclusive=False)


def _check_dataset(dataset) -> None:
    if source_of(str(dataset.name)) in FILE_SOURCES:
        _check_image_files(dataset)
    if source_of(str(dataset.name)) == "digits":
        check_number("dataset.split_seed", dataset.split_seed, 0, integer=True)
    check_number("dataset.imbalance_ratio", dataset.imbalance_ratio, 1, why=" (1 keeps the data balanced)")
    check_choice("dataset.profile", dataset.profile, PROFILES)
    check_number("dataset.subsample_seed", dataset.subsample_seed, 0, integer=True)
    if "subsample" in dataset:
        check_choice("dataset.subsample", dataset.subsample, SUBSAMPLES)
    check_number("dataset.val_fraction", dataset.val_fraction, 0, 1, high_inclusive=False,
                 why=" (0: no validation split)")
    check_number("dataset.val_seed", dataset.val_seed, 0, integer=True)
    check_number("dataset.augment.crop_padding", dataset.augment.crop_padding, 0, 16, integer=True)
    check_flag("dataset.augment.flip", dataset.augment.flip)
    check_choice("dataset.on_device", dataset.on_device, ON_DEVICE_CHOICES)
    _check_given_stats(dataset)
    if dataset.loader_workers != "auto":
        check_number("dataset.loader_workers", dataset.loader_workers, 0, 64, integer=True,
                     why=" (0 reads in the training process), or auto")


def _check_model(model) -> None:
    if model.name != "timm":
        check_choice("model.init", model.get("init", "default"), INITS)
        return
    if not isinstance(model.arch, str) or not model.arch:
        raise UserError(f"model.arch={model.arch!r} is invalid: it must be the name of a timm model, e.g. resnet18")
    check_flag("model.pretrained", model.pretrained)
    if model.checkpoint is not None and not isinstance(model.checkpoint, str):
        raise UserError(f"model.checkpoint={model.checkpoint!r} is invalid: it must be the path of a weights file, "
                        f"or null")
    # timm installed, the arch known, the weights to be had: before any data is read
    from lossbench.models.timm_backbone import check_options

    check_options(model.arch, model.pretrained, model.checkpoint)


def _check_loggers(loggers) -> None:
    if not OmegaConf.is_list(loggers):
        raise UserError(f"trainer.loggers={loggers!r} is invalid: it must be a list of {', '.join(LOGGERS)}, "
                        f"e.g. [tensorboard,mlflow], or [] for none")
    for name in loggers:
        check_choice("trainer.loggers", name, LOGGERS)
    if len(set(loggers)) < len(loggers):
        raise UserError(f"trainer.loggers={list(loggers)} is invalid: name each tracker once")
    for name in loggers:
        check_installed(name, f"trainer.loggers=[{','.join(loggers)}]")


def _check_trainer(trainer) -> None:
    for key in ("epochs", "batch_size"):
        check_number(f"trainer.{key}", trainer[key], 1, integer=True)
    if trainer.eval_batch_size != "auto":
        check_number("trainer.eval_batch_size", trainer.eval_batch_size, 1, integer=True, why=", or auto")
    check_choice("trainer.precision", trainer.precision, PRECISIONS)
    check_choice("trainer.channels_last", trainer.channels_last, ("auto", True, False))
    check_flag("trainer.deterministic", trainer.deterministic)
    check_flag("trainer.progress", trainer.progress)
    check_choice("trainer.sampler", trainer.sampler, SAMPLERS)
    if trainer.drw_epoch is not None:
        check_number("trainer.drw_epoch", trainer.drw_epoch, 0, trainer.epochs - 1, integer=True,
                     why=f" (trainer.epochs={trainer.epochs}), or null for no re-weighting")
    check_number("trainer.drw_beta", trainer.drw_beta, 0, 1, high_inclusive=False)
    check_choice("trainer.on_nonfinite", trainer.on_nonfinite, ("stop", "skip_step"))
    if trainer.clip_grad_norm is not None:
        check_number("trainer.clip_grad_norm", trainer.clip_grad_norm, 0, low_inclusive=False,
                     why=", or null for no clipping")
    check_choice("trainer.select_metric", trainer.select_metric, SELECTABLE)
    compile_mode(trainer.compile)
    _check_loggers(trainer.loggers)


def loss_knobs(cfg: DictConfig) -> dict:
    return {k: v for k, v in OmegaConf.to_container(cfg.loss, resolve=True).items() if k != "name"}


def validate_config(cfg: DictConfig) -> None:
    resolved(cfg)
    check_number("seed", cfg.seed, 0, integer=True)
    _check_trainer(cfg.trainer)
    _check_dataset(cfg.dataset)
    _check_model(cfg.model)
    _check_optim(cfg.optim)
    _check_sched(cfg.sched)
    # the loss's knob table, so that a bad knob is caught before any data is read (or downloaded)
    checked_knobs(str(cfg.loss.name), loss_knobs(cfg), num_classes_in(cfg.dataset))
