"""An airbench-style network for fast CIFAR runs (Jordan 2024, "94% on CIFAR-10
in 3.29 seconds on a single GPU", after Page's 2018 DAWNBench ResNet-9): a 3x3
stem, then three groups of conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN ->
GELU (64, 256, 256 channels), global max pooling, and the pooled features scaled
by 1/8 (Page's logit scaling, which keeps the first steps at lr 0.4 stable). Wide and shallow, so a step
is a few large kernels instead of hundreds of small ones; about 2.0M
parameters and 0.3 GFLOPs per 32x32 image forward.

Unlike airbench, the stem is an ordinary learnt convolution (no frozen
patch-whitening from the data) and the head is the usual linear layer, so every
loss, margin losses included, trains it unchanged.
"""

import torch
from torch import nn

from lossbench.models.classifier import Classifier, init_weights


OUTPUT_SCALE = 0.125


def _conv_bn_gelu(in_channels: int, out_channels: int, pool: bool) -> list[nn.Module]:
    layers = [nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers + [nn.BatchNorm2d(out_channels), nn.GELU()]


class FastNetBackbone(nn.Module):
    def __init__(self, in_channels: int, stem: int = 32, widths: tuple[int, ...] = (64, 256, 256)):
        super().__init__()
        layers = _conv_bn_gelu(in_channels, stem, pool=False)
        channels = stem
        for width in widths:
            layers += _conv_bn_gelu(channels, width, pool=True) + _conv_bn_gelu(width, width, pool=False)
            channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.out_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x) * OUTPUT_SCALE


def fastnet(in_channels: int, num_classes: int) -> Classifier:
    backbone = FastNetBackbone(in_channels)
    return init_weights(Classifier(backbone, backbone.out_features, num_classes))
