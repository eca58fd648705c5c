"""Losses that add the log class prior to the logits before the softmax:

- Balanced Softmax (Ren et al. 2020, "Balanced Meta-Softmax for Long-Tailed
  Visual Recognition"): CE on ``z + log n_c``.
- Logit adjustment (Menon et al. 2021, "Long-Tail Learning via Logit
  Adjustment"): CE on ``z + tau log pi_c``, ``pi`` the training class prior.

Prediction uses the plain logits, which is what makes them balanced.
"""

import torch

from lossbench.losses.base import ClassificationLoss, require_counts, float32_or_wider


class BalancedSoftmax(ClassificationLoss):
    name = "balanced_softmax"
    description = "cross entropy on logits shifted by log class counts"
    formula = "CE on z_k + log n_k"
    paper = "Ren et al. 2020, Balanced Meta-Softmax for Long-Tailed Visual Recognition"
    tau = 1.0

    def __init__(self, num_classes=None, class_counts=None, **knobs):
        super().__init__(num_classes, **knobs)
        counts = require_counts(self.name, class_counts)
        self.register_buffer("log_prior", torch.log(counts / counts.sum()))  # float64, cast per call

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # log n_c and log pi_c differ by a constant, which the softmax ignores
        logits = float32_or_wider(logits)
        return self.cross_entropy(logits + self.tau * self.log_prior.to(logits.dtype), target)


class LogitAdjusted(BalancedSoftmax):
    name = "logit_adjusted"
    description = "cross entropy on logits shifted by tau * log class prior"
    formula = "CE on z_k + tau log pi_k,  pi_k = n_k / sum n"
    paper = "Menon et al. 2021, Long-Tail Learning via Logit Adjustment"
