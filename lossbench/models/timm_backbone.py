"""Image backbones from timm (PyTorch Image Models), pretrained or not: the
optional extra `pip install "lossbench[timm]"`, for `model=timm model.arch=NAME`.

timm's network NAME is built without its classifier (``num_classes=0``: its
forward gives the pooled features) for the dataset's input channels, and
lossbench's own linear head goes on top (``Classifier``), so a margin loss,
which replaces the head, takes timm's features as it takes any model's
embedding. Networks that must know their input size (timm marks them
``fixed_input_size``: ViTs and their kin) are built for the dataset's image
size, and timm resamples their pretrained position embeddings to fit; CNNs
take any size.

Weights: random with ``model.pretrained=false``. With ``true``, timm's own
weights, read from the Hugging Face cache (and downloaded into it when they are
missing and the network is there), or, with ``model.checkpoint=PATH``, from a
file: a state dict saved with ``torch.save`` or a ``.safetensors`` file. Either
way timm adapts them: the first convolution to the dataset's channels, and the
classifier of the pretraining classes is dropped.
"""

import difflib
from pathlib import Path

import torch

from lossbench.errors import UserError
from lossbench.models.classifier import Classifier

INSTALL = 'pip install "lossbench[timm]"'


def _timm():
    try:
        import timm
    except ImportError:
        raise UserError(f"model=timm needs timm, which is not installed: {INSTALL}") from None
    return timm


def _check_arch(timm, arch: str) -> None:
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        guess = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"model.arch={arch!r} is not a timm model{guess}: see timm.list_models(), "
                        f"or timm.list_models('*vit*') for the names that match a pattern")
    name, _, tag = arch.partition(".")
    if tag and arch not in timm.list_pretrained(f"{name}.*"):
        tags = ", ".join(timm.list_pretrained(f"{name}.*")) or "none"
        raise UserError(f"model.arch={arch!r}: timm has no weights tagged {tag!r} for {name}; "
                        f"the tagged weights are: {tags}")


def _has_weights(timm, arch: str) -> bool:
    cfg = timm.models.get_pretrained_cfg(arch)
    return cfg is not None and bool(cfg.hf_hub_id or cfg.url or cfg.file)


def check_options(arch: str, pretrained: bool, checkpoint: str | None) -> None:
    """A UserError, before any data is read, if the network or its weights cannot be had:
    timm missing, an arch timm does not have, a checkpoint file that is not there
    (or not asked for: it is read with pretrained=true), or no pretrained weights."""
    timm = _timm()
    _check_arch(timm, arch)
    if checkpoint is not None and not pretrained:
        raise UserError(f"model.checkpoint={checkpoint} is read only with model.pretrained=true: "
                        f"add model.pretrained=true")
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise UserError(f"model.checkpoint={checkpoint} does not exist")
    elif pretrained and not _has_weights(timm, arch):
        raise UserError(f"model.arch={arch}: timm has no pretrained weights for it: use model.pretrained=false, "
                        f"or give weights with model.checkpoint=PATH")


def _missing_weights(arch: str, hub_id: str) -> UserError:
    from huggingface_hub import constants

    # the folder huggingface_hub reads: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub
    cache = constants.HF_HUB_CACHE
    folder = "models--" + hub_id.split("@")[0].replace("/", "--")
    return UserError(
        f"model.arch={arch}: its pretrained weights ({hub_id} on the Hugging Face hub) are not in the Hugging Face "
        f"cache {cache} and cannot be downloaded (offline): put them there (`hf download {hub_id}` where there is a "
        f"network, then copy its {folder} folder into {cache}), or give a weights file with model.checkpoint=PATH"
    )


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def _read_checkpoint(timm, checkpoint: str) -> dict:
    try:
        # timm's reader: torch.save files (weights only) and .safetensors, a
        # state dict at the top or under state_dict/model, a DataParallel prefix removed
        return timm.models.load_state_dict(str(Path(checkpoint).expanduser()))
    except Exception as e:  # whatever the file holds, it is not weights: say which file
        reason = _shortened(" ".join(str(e).split()), 300) or type(e).__name__
        raise UserError(f"model.checkpoint={checkpoint} cannot be read as a state dict ({reason})") from None


def timm_classifier(in_channels: int, num_classes: int, image_size: int, arch: str = "resnet18",
                    pretrained: bool = False, checkpoint: str | None = None) -> Classifier:
    timm = _timm()
    check_options(arch, pretrained, checkpoint)
    from huggingface_hub.errors import LocalEntryNotFoundError

    pretrained_cfg = timm.models.get_pretrained_cfg(arch)
    kwargs = {"pretrained": pretrained, "num_classes": 0, "in_chans": in_channels}
    if pretrained_cfg is not None and pretrained_cfg.fixed_input_size:
        kwargs["img_size"] = image_size
    state_dict = None
    if checkpoint is not None:
        state_dict = _read_checkpoint(timm, checkpoint)
        saved, first_saved = set(state_dict), next(iter(state_dict), "none")
        # timm's loading of the file's weights, in place of the hub's: the same
        # adaptation (input channels, classifier dropped, position embeddings resampled)
        kwargs["pretrained_cfg_overlay"] = {"state_dict": state_dict, "source": None}
    try:
        backbone = timm.create_model(arch, **kwargs)
    except LocalEntryNotFoundError:
        raise _missing_weights(arch, pretrained_cfg.hf_hub_id) from None
    except RuntimeError as e:
        if state_dict is None or "loading state_dict" not in str(e):
            raise
        # torch's list of the tensors whose shapes differ, on one line
        raise UserError(f"model.checkpoint={checkpoint} does not fit {arch}: "
                        f"{_shortened(' '.join(str(e).split()), 300)}") from None
    if state_dict is not None and not saved & set(backbone.state_dict()):
        # timm loads without strictness once its classifier is left out: a file of
        # another network would load nothing and leave random weights
        raise UserError(f"model.checkpoint={checkpoint} holds none of {arch}'s weights (the file's tensors are "
                        f"named e.g. {first_saved}, {arch}'s e.g. {next(iter(backbone.state_dict()))}): "
                        f"give a state dict of timm's {arch}")
    _check_image_size(backbone, arch, in_channels, image_size)
    # the width of what forward gives: a pre-logits layer (head_hidden_size) can widen num_features
    embedding_dim = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    return Classifier(backbone, embedding_dim, num_classes)


def _check_image_size(backbone: torch.nn.Module, arch: str, in_channels: int, image_size: int) -> None:
    """One image through the network, so that a size it cannot take (a ViT's
    patches, a CNN's downsampling) is named now rather than in the first step."""
    training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            backbone(torch.zeros(1, in_channels, image_size, image_size))
    except (RuntimeError, AssertionError, ValueError) as e:
        reason = " ".join(str(e).split()) or type(e).__name__
        raise UserError(f"model.arch={arch} cannot take the dataset's {image_size}x{image_size} images ({reason}): "
                        f"choose another arch or a larger image size") from None
    finally:
        backbone.train(training)
