"""A backbone that gives an embedding, followed by a linear head.

Keeping the two apart lets a loss that owns its class weights (the margin
losses) take the embedding instead of the logits.
"""

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, embedding_dim: int, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.embedding_dim = embedding_dim
        self.num_classes = num_classes
        self.head = nn.Linear(embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def init_weights(model: nn.Module) -> nn.Module:
    # He initialisation for convolutions, as the ResNet papers train with.
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
