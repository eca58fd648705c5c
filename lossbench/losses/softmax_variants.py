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

from lossbench.losses.base import ClassificationLoss, check_range, float32_or_wider
from lossbench.losses.reduction import target_log_prob


class SoftMarginSoftmax(ClassificationLoss):
    name = "sm_softmax"
    description = "cross entropy with the target logit lowered by m"
    formula = "CE on z_k - m [k = y]"
    paper = "Liang et al. 2017, Soft-Margin Softmax for Deep Classification"
    knob_ranges = {"m": "[0, inf)"}
    defaults_from = {"m": "lossbench's choice, not the paper's: a starting point to tune"}

    def __init__(self, m: float = 0.5, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        self.m = float(check_range("m", m, 0.0))

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
    knob_ranges = {"epsilon": "[-1, inf)"}
    defaults_from = {
        "epsilon": "lossbench's choice, the plain Poly-1 term; the paper reports epsilon = 2 for ImageNet "
                   "classification (as optax's poly_loss_cross_entropy documents)",
    }

    def __init__(self, epsilon: float = 1.0, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        # below -1 the loss is no longer minimised by p_y = 1
        self.epsilon = float(check_range("epsilon", epsilon, -1.0))

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
