"""Label-aware smoothing (Zhong et al. 2021, "Improving Calibration for
Long-Tailed Recognition", MiSLAS): label smoothing whose factor depends on the
target class's training count, most for the head, least for the tail,

    l = (1 - e_y) (-log p_y) + e_y (-1/K sum_k log p_k),
    e_c = e_tail + (e_head - e_tail) f(r_c),  r_c = (n_c - n_min) / (n_max - n_min),

with f(r) = sin(pi r / 2) (concave), r (linear), 1 - cos(pi r / 2) (convex) or
r^power (exp). Head classes, over-confident after imbalanced training, are
smoothed most. With equal counts every class is a head class (r = 1).
"""

import math

import torch
import torch.nn.functional as F

from lossbench.losses.base import ClassificationLoss, require_counts, float32_or_wider
from lossbench.losses.label_smoothing import smoothing_terms, soft_target_entropy


def smoothing_per_class(counts: torch.Tensor, head: float, tail: float, shape: str, power) -> torch.Tensor:
    spread = counts.max() - counts.min()
    r = (counts - counts.min()) / spread if spread > 0 else torch.ones_like(counts)
    curve = {
        "concave": lambda: torch.sin(math.pi * r / 2),
        "linear": lambda: r,
        "convex": lambda: 1 - torch.cos(math.pi * r / 2),
        "exp": lambda: r ** power,
    }[shape]()
    return tail + (head - tail) * curve


class LabelAwareSmoothing(ClassificationLoss):
    name = "label_aware_smoothing"
    description = "label smoothing with a factor per class, from smooth_head (most frequent) to smooth_tail"
    formula = ("l = (1 - e_y)(-log p_y) + e_y (-1/K sum_k log p_k),  e_c = e_tail + (e_head - e_tail) f(r_c),  "
               "r_c = (n_c - n_min)/(n_max - n_min)")
    paper = "Zhong et al. 2021, Improving Calibration for Long-Tailed Recognition (MiSLAS)"
    conventions = (
        "the authors use it in their second stage (classifier re-training); here it is a loss like any other",
        "with class weights, each class's term carries its own weight, as label_smoothing",
    )

    def __init__(self, num_classes=None, class_counts=None, **knobs):
        super().__init__(num_classes, **knobs)
        counts = require_counts(self.name, class_counts)
        self.register_buffer("smoothing", smoothing_per_class(counts, self.smooth_head, self.smooth_tail, self.shape,
                                                              self.power))  # float64, cast per call
        self.register_buffer("class_share", counts / counts.sum(), persistent=False)

    def floor(self) -> float:
        """Each class's soft-target entropy, weighted by its share of the training set."""
        num_classes = len(self.smoothing)
        return sum(float(share) * soft_target_entropy(float(e), num_classes)
                   for share, e in zip(self.class_share, self.smoothing))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(float32_or_wider(logits), dim=1)
        nll, smooth = smoothing_terms(log_probs, target, self.class_weight_like(log_probs), self.ignore_index)
        safe = torch.where(target == self.ignore_index, torch.zeros_like(target), target)
        e = self.smoothing.to(log_probs.dtype)[safe]
        return self.reduce((1 - e) * nll + e * smooth, target, weighted=True)
