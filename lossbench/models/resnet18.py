"""ResNet-18 in its CIFAR form (the form most CIFAR papers use): the ImageNet
network of He et al. 2016 with a 3x3 stride-1 stem and no max-pool, so 32x32
inputs keep their resolution in the first stage. Four stages of two basic
blocks (64, 128, 256, 512 channels), projection shortcuts ("option B"); about
11.2M parameters.
"""

from lossbench.models.blocks import StagedResNet
from lossbench.models.classifier import Classifier, init_weights


def resnet18(in_channels: int, num_classes: int) -> Classifier:
    backbone = StagedResNet(in_channels, (64, 128, 256, 512), 2, shortcut="projection")
    return init_weights(Classifier(backbone, backbone.out_features, num_classes))
