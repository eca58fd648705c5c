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
    knob_ranges = {"scheme": "inverse | effective", "beta": "[0, 1)"}
    defaults_from = {
        "scheme": "Cui et al. 2019, the class-balanced term 1/E_n (effective number of samples)",
        "beta": "authors' CIFAR-LT script, richardaecn/class-balanced-loss cifar_im_trainval_cb.sh (BETA=0.9999)",
    }
    conventions = (
        "the mean divides by the sum of the target weights, sum_i a_{y_i} (PyTorch's weighted mean, as LDAM-DRW); "
        "Cui et al.'s code divides by the batch size N, a value several times smaller on a long-tailed batch",
        "the weights are normalised to sum to K, as in the paper",
    )

    def __init__(self, class_counts=None, scheme: str = "effective", beta: float = 0.9999, ignore_index=-100, reduction="mean"):
        require_counts(self.name, class_counts)
        super().__init__(class_weights(class_counts, scheme, beta), ignore_index, reduction)
        self.scheme, self.beta = scheme, beta

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.cross_entropy(logits, target)
