"""Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture
for Computer Vision"): cross entropy against a softened target distribution,
``l = -sum_k q_k log p_k``.

- uniform (the paper's): ``q = (1 - e) onehot(y) + e / K``
- exclusive: ``q_y = 1 - e`` and ``q_k = e / (K - 1)`` for ``k != y``
"""

import torch
import torch.nn.functional as F

from lossbench.checks import check_flag
from lossbench.losses.base import ClassificationLoss, check_range, wide
from lossbench.losses.reduction import target_log_prob


class LabelSmoothing(ClassificationLoss):
    name = "label_smoothing"
    description = "cross entropy against (1-e) onehot + e/K (exclusive: e/(K-1) off-target)"
    formula = "l = -sum_k q_k log p_k,  q = (1-e) onehot(y) + e/K;  exclusive: q_y = 1-e, q_k = e/(K-1)"
    paper = "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision"
    knob_ranges = {"smoothing": "[0, 1)", "exclusive": "true | false"}

    def __init__(self, smoothing: float = 0.1, exclusive: bool = False, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        self.smoothing = float(check_range("smoothing", smoothing, 0.0, 1.0, high_inclusive=False))
        self.exclusive = check_flag("loss.exclusive", exclusive)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(wide(logits), dim=1)
        num_classes = log_probs.shape[1]
        nll = -target_log_prob(log_probs, target, self.ignore_index)
        total = -log_probs.sum(dim=1)
        if self.exclusive:
            smooth = (total - nll) / max(num_classes - 1, 1)
        else:
            smooth = total / num_classes
        return self.reduce((1 - self.smoothing) * nll + self.smoothing * smooth, target)
