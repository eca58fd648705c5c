"""Model registry: every model reads its input channels and class count from the dataset."""

from functools import partial

from lossbench.errors import UserError
from lossbench.models.classifier import Classifier
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


def build_model(name: str, in_channels: int, num_classes: int) -> Classifier:
    if name not in MODELS:
        raise UserError(f"model={name!r} is unknown: valid models are {', '.join(MODELS)}")
    return MODELS[name](in_channels=in_channels, num_classes=num_classes)


__all__ = ["MODELS", "Classifier", "build_model"]
