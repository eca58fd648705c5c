"""Margin losses on a normalised (cosine) head: features and class weights are
L2-normalised, the logits are ``s cos t_k`` and the target's gets a margin.

- CosFace / LMCL (Wang et al. 2018, "CosFace: Large Margin Cosine Loss for Deep
  Face Recognition"): target logit ``s (cos t_y - m)``; s = 64, m = 0.35.
- AM-Softmax (Wang et al. 2018, "Additive Margin Softmax for Face
  Verification"): the same function with its paper's s = 30, m = 0.35.
- ArcFace (Deng et al. 2019, "ArcFace: Additive Angular Margin Loss for Deep
  Face Recognition"): target logit ``s cos(t_y + m)``; s = 64, m = 0.5.

The margin applies in training only; evaluation predicts with ``s cos t``.
"""

import math

import torch

from lossbench.losses.base import ClassificationLoss, check_range
from lossbench.losses.heads import cosine_scores, new_class_weight


class _CosineMarginLoss(ClassificationLoss):
    inputs = "embeddings"
    knob_ranges = {"s": "(0, inf)", "m": "[0, 1]"}

    def __init__(self, num_classes=None, embedding_dim=None, s: float = 64.0, m: float = 0.35, weight=None,
                 ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        self.s = float(check_range("s", s, 0.0, low_inclusive=False))
        self.m = float(check_range("m", m, 0.0, 1.0))
        self.weight = new_class_weight(num_classes, embedding_dim, self.name)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.s * cosine_scores(embeddings, self.weight)

    def target_cosine(self, cos: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = cosine_scores(embeddings, self.weight)
        if self.training:
            cos = self.replace_target_scores(cos, target, lambda column, _: self.target_cosine(column))
        return self.cross_entropy(self.s * cos, target)


class CosFace(_CosineMarginLoss):
    name = "cosface"
    description = "normalised head, additive cosine margin: s (cos t_y - m)"
    formula = "CE on s (cos t_k - m [k = y])"
    paper = "Wang et al. 2018, CosFace: Large Margin Cosine Loss for Deep Face Recognition"

    def target_cosine(self, cos):
        return cos - self.m


class AMSoftmax(CosFace):
    name = "am_softmax"
    description = "additive margin softmax: CosFace's function with s=30"
    paper = "Wang et al. 2018, Additive Margin Softmax for Face Verification"

    def __init__(self, num_classes=None, embedding_dim=None, s: float = 30.0, m: float = 0.35, weight=None,
                 ignore_index=-100, reduction="mean"):
        super().__init__(num_classes, embedding_dim, s, m, weight, ignore_index, reduction)


class ArcFace(_CosineMarginLoss):
    name = "arcface"
    description = "normalised head, additive angular margin: s cos(t_y + m)"
    formula = "CE on s cos(t_y + m) for the target, s cos t_k otherwise"
    paper = "Deng et al. 2019, ArcFace: Additive Angular Margin Loss for Deep Face Recognition"

    def __init__(self, num_classes=None, embedding_dim=None, s: float = 64.0, m: float = 0.5, weight=None,
                 ignore_index=-100, reduction="mean"):
        super().__init__(num_classes, embedding_dim, s, m, weight, ignore_index, reduction)

    def target_cosine(self, cos):
        # cos(t + m) = cos t cos m - sin t sin m; sin t from cos t with a floor, so
        # the gradient stays finite at cos t = +-1 (where arccos's is not)
        sin = (1.0 - cos * cos).clamp_min(1e-12).sqrt()
        return cos * math.cos(self.m) - sin * math.sin(self.m)
