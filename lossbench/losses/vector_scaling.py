"""Vector-scaling loss (Kini et al. 2021, "Label-Imbalanced and
Group-Sensitive Classification under Overparameterization"): cross entropy on
logits scaled and shifted per class by the training counts,

    l = CE(z_k / Delta_k + iota_k, y),  Delta_k = (n_max / n_k)^gamma,  iota_k = tau log(n_k / N).

The multiplicative part shrinks the logits of rare classes (a class-dependent
temperature); the additive part is logit adjustment. gamma = 0 gives logit
adjustment with the same tau, tau = 0 gives class-dependent temperatures (cdt),
both 0 give CE. LDAM's target-only margin is not a special case: a shift of
every logit cannot equal a shift of the target's alone for every pair of
classes. Prediction uses the plain logits.
"""

import torch

from lossbench.losses.base import ClassificationLoss, require_counts, float32_or_wider


class VSLoss(ClassificationLoss):
    name = "vs"
    description = "cross entropy on logits scaled by (n_k/n_max)^gamma and shifted by tau log prior"
    formula = "l = CE(z_k / Delta_k + iota_k),  Delta_k = (n_max/n_k)^gamma,  iota_k = tau log(n_k/N)"
    paper = "Kini et al. 2021, Label-Imbalanced and Group-Sensitive Classification under Overparameterization"
    conventions = ("the scale and shift apply in training and in test_loss; predictions use the plain logits",)

    def __init__(self, num_classes=None, class_counts=None, **knobs):
        super().__init__(num_classes, **knobs)
        counts = require_counts(self.name, class_counts)
        self.register_buffer("scale", (counts / counts.max()) ** self.gamma)  # float64, cast per call
        self.register_buffer("shift", self.tau * torch.log(counts / counts.sum()))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = float32_or_wider(logits)
        return self.cross_entropy(logits * self.scale.to(logits.dtype) + self.shift.to(logits.dtype), target)
