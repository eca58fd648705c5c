"""Margin losses on a normalised (cosine) head: features and class weights are
L2-normalised, the logits are ``s cos t_k`` and the target's gets a margin.

- CosFace / LMCL (Wang et al. 2018, "CosFace: Large Margin Cosine Loss for Deep
  Face Recognition"): target logit ``s (cos t_y - m)``; s = 64, m = 0.35.
- AM-Softmax (Wang et al. 2018, "Additive Margin Softmax for Face
  Verification"): the same function with its paper's s = 30, m = 0.35.
- ArcFace (Deng et al. 2019, "ArcFace: Additive Angular Margin Loss for Deep
  Face Recognition"): target logit ``s cos(t_y + m)``; s = 64, m = 0.5; past
  ``t_y = pi - m``, ``s (cos t_y - m sin m)`` as in the authors' code, so that
  the loss keeps rising with the angle.

The margin applies in training only; evaluation predicts with ``s cos t``.
"""

import math

import torch

from lossbench.losses.base import ClassificationLoss
from lossbench.losses.owned_classifier import cosine_scores, new_class_weight


class _CosineMarginLoss(ClassificationLoss):
    inputs = "embeddings"

    def __init__(self, num_classes=None, embedding_dim=None, **knobs):
        super().__init__(num_classes, **knobs)
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


class ArcFace(_CosineMarginLoss):
    name = "arcface"
    description = "normalised head, additive angular margin: s cos(t_y + m)"
    formula = ("CE on s f(t_y) for the target, s cos t_k otherwise;  f(t) = cos(t + m) for t <= pi - m, "
               "cos t - m sin m beyond (easy_margin: cos(t + m) for t <= pi/2, cos t beyond)")
    paper = "Deng et al. 2019, ArcFace: Additive Angular Margin Loss for Deep Face Recognition"
    conventions = (
        "past t_y = pi - m the target logit is s (cos t_y - m sin m), as insightface's arcface_torch did until "
        "December 2022, so that the loss keeps rising with the angle; their current code drops that branch",
        "easy_margin=true keeps cos t_y for t_y > pi/2: the loss drops back there, as in the authors' option",
    )

    def target_cosine(self, cos):
        # cos(t + m) = cos t cos m - sin t sin m; sin t from cos t with a floor, so
        # the gradient stays finite at cos t = +-1 (where arccos's is not)
        sin = (1.0 - cos * cos).clamp_min(1e-12).sqrt()
        margin = cos * math.cos(self.m) - sin * math.sin(self.m)
        if self.easy_margin:
            return torch.where(cos > 0, margin, cos)
        # Past t = pi - m, cos(t + m) turns back up: the loss would fall as a
        # sample moves away from its class. The authors' code (insightface) goes
        # on with cos t - m sin m there, which keeps falling.
        return torch.where(cos > math.cos(math.pi - self.m), margin, cos - self.m * math.sin(self.m))
