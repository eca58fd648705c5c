"""ResNet-20/32/56 for 32x32 images, as in He et al. 2016, "Deep Residual Learning
for Image Recognition", section 4.2: three stages of 16, 32 and 64 channels with
(depth - 2) / 6 basic blocks each, and parameter-free "option A" shortcuts
(stride-2 subsampling, zero-padded channels). ResNet-32 has about 0.46M parameters.
"""

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.models.classifier import Classifier, init_weights


class _PadShortcut(nn.Module):
    """Option A: subsample by the stride and zero-pad the new channels."""

    def __init__(self, stride: int, extra_channels: int):
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = _PadShortcut(stride, out_channels - in_channels)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifarBackbone(nn.Module):
    def __init__(self, depth: int, in_channels: int, widths=(16, 32, 64)):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        layers, channels = [], widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(_BasicBlock(channels, width, stride))
                channels = width
        self.layers = nn.Sequential(*layers)
        self.out_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def resnet_cifar(depth: int, in_channels: int, num_classes: int) -> Classifier:
    backbone = ResNetCifarBackbone(depth, in_channels)
    return init_weights(Classifier(backbone, backbone.out_features, num_classes))
