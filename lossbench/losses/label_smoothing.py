"""Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture
for Computer Vision"): cross entropy against a softened target distribution,
``l = -sum_k q_k log p_k``.

- uniform (the paper's): ``q = (1 - e) onehot(y) + e / K``
- exclusive: ``q_y = 1 - e`` and ``q_k = e / (K - 1)`` for ``k != y``

With class weights ``w`` the term of class k carries ``w_k`` and the mean
divides by ``sum w_y``, as ``F.cross_entropy(x, y, weight=w, label_smoothing=e)``.
"""

import math

import torch
import torch.nn.functional as F

from lossbench.losses.base import ClassificationLoss, float32_or_wider
from lossbench.losses.reduction import target_log_prob


def smoothing_terms(log_probs: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int,
                    exclusive: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the target term ``-w_y log p_y`` and the smoothing term
    ``-sum_k w_k log p_k / K`` (exclusive: over k != y, divided by K - 1).

    Each class's term carries its own weight ``w_k``: PyTorch's convention for
    ``F.cross_entropy(x, y, weight=w, label_smoothing=e)``; reduce with
    ``weighted=True``, so that the mean divides by ``sum w_y``."""
    weighted_log_probs = log_probs if weight is None else log_probs * weight
    num_classes = log_probs.shape[1]
    nll = -target_log_prob(weighted_log_probs, target, ignore_index)
    total = -weighted_log_probs.sum(dim=1)
    smooth = (total - nll) / max(num_classes - 1, 1) if exclusive else total / num_classes
    return nll, smooth


def soft_target_entropy(smoothing: float, num_classes: int, exclusive: bool = False) -> float:
    """``-sum_k q_k log q_k`` of the smoothed target: the least the smoothed
    cross entropy can be, reached when the prediction equals the target."""
    others = smoothing / (num_classes - 1) if exclusive else smoothing / num_classes
    target = 1 - smoothing if exclusive else 1 - smoothing + smoothing / num_classes
    return -sum(q * math.log(q) for q in (target, *[others] * (num_classes - 1)) if q > 0)


class LabelSmoothing(ClassificationLoss):
    name = "label_smoothing"
    description = "cross entropy against (1-e) onehot + e/K (exclusive: e/(K-1) off-target)"
    formula = "l = -sum_k q_k log p_k,  q = (1-e) onehot(y) + e/K;  exclusive: q_y = 1-e, q_k = e/(K-1)"
    paper = "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision"
    conventions = (
        "with class weights, each class's term carries its own weight w_k and the mean divides by sum w_y, "
        "as F.cross_entropy(x, y, weight=w, label_smoothing=e)",
    )

    def floor(self) -> float:
        return soft_target_entropy(self.smoothing, self.num_classes, self.exclusive) if self.num_classes else 0.0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(float32_or_wider(logits), dim=1)
        nll, smooth = smoothing_terms(log_probs, target, self.class_weight_like(log_probs), self.ignore_index,
                                      self.exclusive)
        return self.reduce((1 - self.smoothing) * nll + self.smoothing * smooth, target, weighted=True)
