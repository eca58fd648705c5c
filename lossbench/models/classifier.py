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


def ldam_drw_init(model: nn.Module) -> nn.Module:
    """The initialisation of LDAM-DRW's code: Kaiming normal with fan_in (gain
    sqrt(2)) for the weights of every convolution and linear layer; biases
    and batch normalisation as PyTorch makes them."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
    return model


def init_weights(model: nn.Module) -> nn.Module:
    # He initialisation for convolutions, as the ResNet papers train with.
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
