"""Small variations on cross entropy.

- Soft-margin softmax (Liang et al. 2017, "Soft-Margin Softmax for Deep
  Classification"): CE with the target logit lowered by m, ``z_y - m``.
- Poly-1 (Leng et al. 2022, "PolyLoss: A Polynomial Expansion Perspective of
  Classification Loss Functions"): ``CE + eps (1 - p_y)``.
- MSE (the Brier score): ``sum_k (p_k - onehot_k)^2``, the non-convex baseline
  that CE is compared against.
"""

import torch
import torch.nn.functional as F

from lossbench.losses.base import ClassificationLoss, float32_or_wider
from lossbench.losses.reduction import target_log_prob


class SoftMarginSoftmax(ClassificationLoss):
    name = "sm_softmax"
    description = "cross entropy with the target logit lowered by m"
    formula = "CE on z_k - m [k = y]"
    paper = "Liang et al. 2017, Soft-Margin Softmax for Deep Classification"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = float32_or_wider(logits)
        if self.training:
            logits = self.replace_target_scores(logits, target, lambda column, _: column - self.m)
        return self.cross_entropy(logits, target)


class Poly1(ClassificationLoss):
    name = "poly1"
    description = "cross entropy plus eps (1 - p_y)"
    formula = "l = -log p_y + eps (1 - p_y)"
    paper = "Leng et al. 2022, PolyLoss: A Polynomial Expansion Perspective of Classification Loss Functions"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = target_log_prob(F.log_softmax(float32_or_wider(logits), dim=1), target, self.ignore_index)
        return self.reduce(-log_p - self.epsilon * torch.expm1(log_p), target)


class MeanSquaredError(ClassificationLoss):
    name = "mse"
    description = "squared error between softmax probabilities and the one-hot target (Brier)"
    formula = "l = sum_k (p_k - onehot(y)_k)^2"
    paper = "the Brier score (Brier 1950); cf. Hui & Belkin 2021 on square loss for classification"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(float32_or_wider(logits), dim=1)
        onehot = self.target_mask(target, probs.shape[1]).to(probs.dtype)
        return self.reduce(((probs - onehot) ** 2).sum(dim=1), target)
