"""ResNet-18 in its CIFAR form (as in Kuang Liu's widely used pytorch-cifar and
most CIFAR papers): the ImageNet network of He et al. 2016 with a 3x3 stride-1
stem and no max-pool, so 32x32 inputs keep their resolution in the first stage.
Four stages of two basic blocks (64, 128, 256, 512 channels), projection
shortcuts ("option B"); about 11.2M parameters.
"""

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.models.classifier import Classifier, init_weights


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18Backbone(nn.Module):
    def __init__(self, in_channels: int, widths=(64, 128, 256, 512)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        layers, channels = [], widths[0]
        for stage, width in enumerate(widths):
            for block in range(2):
                layers.append(_BasicBlock(channels, width, 2 if stage > 0 and block == 0 else 1))
                channels = width
        self.layers = nn.Sequential(*layers)
        self.out_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def resnet18(in_channels: int, num_classes: int) -> Classifier:
    backbone = ResNet18Backbone(in_channels)
    return init_weights(Classifier(backbone, backbone.out_features, num_classes))
