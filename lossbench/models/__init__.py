"""Model registry: every model reads its input channels and class count from the dataset.

MODELS are the networks lossbench defines; ``model=timm`` builds one of timm's
instead (an optional extra, imported only then: lossbench.models.timm_backbone).
"""

from functools import partial

from lossbench.errors import UserError
from lossbench.models.classifier import Classifier, ldam_drw_init
from lossbench.models.fastnet import fastnet
from lossbench.models.resnet18 import resnet18
from lossbench.models.resnet_cifar import resnet_cifar
from lossbench.models.small_cnn import small_cnn

MODELS = {
    "resnet20": partial(resnet_cifar, 20),
    "resnet32": partial(resnet_cifar, 32),
    "resnet56": partial(resnet_cifar, 56),
    "resnet18": resnet18,
    "small_cnn": small_cnn,
    "fastnet": fastnet,
}


def build_model(name: str, in_channels: int, num_classes: int, image_size: int | None = None,
                **options) -> Classifier:
    """The model ``name``; ``image_size`` (the side of the dataset's square
    images) and ``options`` (the model config's other keys: arch, pretrained,
    checkpoint) are read by ``timm``, and ``init`` by lossbench's own networks,
    which take any size."""
    if name == "timm":
        if image_size is None:
            raise ValueError("model=timm needs the dataset's image_size")
        from lossbench.models.timm_backbone import timm_classifier

        return timm_classifier(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options)
    if name not in MODELS:
        raise UserError(f"model={name!r} is unknown: valid models are {', '.join([*MODELS, 'timm'])}")
    model = MODELS[name](in_channels=in_channels, num_classes=num_classes)
    return ldam_drw_init(model) if options.get("init") == "ldam_drw" else model


__all__ = ["MODELS", "Classifier", "build_model"]
