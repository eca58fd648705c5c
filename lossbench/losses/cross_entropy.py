"""Cross entropy, ``-log p_y`` with ``p = softmax(z)``."""

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.losses.reduction import check_reduction


class CrossEntropy(nn.Module):
    """Softmax cross entropy. ``weight``: per-class weights; ``ignore_index``:
    targets that contribute nothing; computed in float32 so that half-precision
    logits stay finite."""

    name = "ce"
    description = "softmax cross entropy, -log p_y"
    formula = "l = -log p_y,  p = softmax(z)"
    paper = "the standard maximum-likelihood objective"

    def __init__(self, weight: torch.Tensor | None = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.ignore_index = ignore_index
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(), target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )
