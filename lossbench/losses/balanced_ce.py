"""Class-balanced cross entropy (Cui et al. 2019, "Class-Balanced Loss Based on
Effective Number of Samples"): ``-a_y log p_y`` with ``a`` the inverse frequency
or inverse effective number ``(1 - beta) / (1 - beta^n_c)``, normalised to sum K."""

import torch

from lossbench.losses.base import ClassificationLoss, require_counts
from lossbench.losses.class_weights import class_weights


class BalancedCrossEntropy(ClassificationLoss):
    name = "balanced_ce"
    description = "cross entropy weighted per class by inverse (effective) frequency"
    formula = "l = -a_y log p_y,  a_c = (1-b)/(1-b^n_c) (effective) or 1/n_c (inverse), sum_c a_c = K"
    paper = "Cui et al. 2019, Class-Balanced Loss Based on Effective Number of Samples"
    conventions = (
        "the mean divides by the sum of the target weights, sum_i a_{y_i} (PyTorch's weighted mean, as LDAM-DRW); "
        "Cui et al.'s code divides by the batch size N, a value several times smaller on a long-tailed batch",
        "the weights are normalised to sum to K, as in the paper",
    )

    def __init__(self, num_classes=None, class_counts=None, **knobs):
        super().__init__(num_classes, **knobs)
        require_counts(self.name, class_counts)
        self.set_class_weight(class_weights(class_counts, self.scheme, self.beta))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.cross_entropy(logits, target)
