"""Label smoothing (Szegedy et al. 2016, "Rethinking the Inception Architecture
for Computer Vision"): cross entropy against a softened target distribution,
``l = -sum_k q_k log p_k``.

- uniform (the paper's): ``q = (1 - e) onehot(y) + e / K``
- exclusive: ``q_y = 1 - e`` and ``q_k = e / (K - 1)`` for ``k != y``
"""

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.errors import UserError
from lossbench.losses.reduction import check_reduction, reduce_loss, target_log_prob


class LabelSmoothing(nn.Module):
    name = "label_smoothing"
    description = "cross entropy against (1-e) onehot + e/K (or e/(K-1) off-target: exclusive)"
    formula = "l = -sum_k q_k log p_k,  q = (1-e) onehot(y) + e/K;  exclusive: q_y = 1-e, q_k = e/(K-1)"
    paper = "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision"

    def __init__(
        self,
        smoothing: float = 0.1,
        exclusive: bool = False,
        weight: torch.Tensor | None = None,
        ignore_index: int = -100,
        reduction: str = "mean",
    ):
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise UserError(f"loss.smoothing={smoothing} is invalid: it must be in [0, 1)")
        self.smoothing = float(smoothing)
        self.exclusive = bool(exclusive)
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))
        self.ignore_index = ignore_index
        self.reduction = check_reduction(reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits.float(), dim=1)
        num_classes = log_probs.shape[1]
        nll = -target_log_prob(log_probs, target, self.ignore_index)
        total = -log_probs.sum(dim=1)
        e = self.smoothing
        if self.exclusive:
            off_target = (total - nll) / max(num_classes - 1, 1)
            per_sample = (1 - e) * nll + e * off_target
        else:
            per_sample = (1 - e) * nll + e * total / num_classes
        return reduce_loss(per_sample, target, self.weight, self.ignore_index, self.reduction)
