"""ResNet-20/32/56 for 32x32 images, as in He et al. 2016, "Deep Residual Learning
for Image Recognition", section 4.2: three stages of 16, 32 and 64 channels with
(depth - 2) / 6 basic blocks each, and parameter-free "option A" shortcuts
(stride-2 subsampling, zero-padded channels). ResNet-32 has about 0.46M parameters.

Initialisation (``model.init``): ``default``, Kaiming normal with fan_out for
the convolutions and PyTorch's own for the head; ``ldam_drw``, as LDAM-DRW's
code (and experiment=ldam_drw_cifar10_lt): Kaiming normal with fan_in for the
convolutions and the head.
"""

from lossbench.models.blocks import StagedResNet
from lossbench.models.classifier import Classifier, init_weights


def resnet_cifar(depth: int, in_channels: int, num_classes: int) -> Classifier:
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
    backbone = StagedResNet(in_channels, (16, 32, 64), (depth - 2) // 6, shortcut="pad")
    return init_weights(Classifier(backbone, backbone.out_features, num_classes))
