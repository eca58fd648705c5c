"""The classifier a loss owns when it takes the embedding: the class-weight
matrix of the margin losses (classes x embedding, no bias), their cosine
scores, and the linear classifier (with bias) of supcon and ib."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.errors import UserError
from lossbench.losses.base import float32_or_wider


def new_class_weight(num_classes, embedding_dim, loss_name: str, unit_rows: bool = False) -> nn.Parameter:
    """``unit_rows``: uniform directions at norm 1, as LDAM's authors start their
    normalised head; otherwise the default init of nn.Linear, so that a margin
    loss starts where a linear head would. (On a normalised head the norm does
    not change the logits, but it sets the weights' effective learning rate.)"""
    if num_classes is None or embedding_dim is None:
        raise UserError(f"loss {loss_name} owns the class weights: it needs num_classes and embedding_dim")
    weight = torch.empty(num_classes, embedding_dim)
    if unit_rows:
        weight = F.normalize(weight.uniform_(-1.0, 1.0), dim=1)
    else:
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return nn.Parameter(weight)


class LinearClassifier:
    """Mixin for a loss that takes the embedding and owns a linear classifier
    ``self.classifier`` (with bias): its weights and the scores it predicts with."""

    classifier: nn.Linear

    @property
    def weight(self) -> torch.Tensor:
        return self.classifier.weight

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.classifier(embeddings)


def cosine_scores(embeddings: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """cos of the angle between each embedding and each class weight, in float32
    (autocast off: half precision loses the angle near cos = 1)."""
    with torch.autocast(embeddings.device.type, enabled=False):
        return F.normalize(float32_or_wider(embeddings), dim=1) @ F.normalize(float32_or_wider(weight), dim=1).t()
