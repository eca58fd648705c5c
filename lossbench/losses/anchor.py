"""Anchor loss (Ryou et al. 2019, "Anchor Loss: Modulating Loss Scale Based on
Prediction Difficulty"), on per-class sigmoid probabilities ``p_j = sigmoid(z_j)``:

    l = -log p_y - sum_{j != y} (1 + p_j - q*)^gamma log(1 - p_j),  q* = max(p_y - delta, 0)

``q*`` (the anchor) is detached: negatives scoring above the target's
probability are pushed harder. As the authors do, the first ``warmup_epochs``
epochs train with plain softmax cross entropy.
"""

import torch
import torch.nn.functional as F

from lossbench.losses.base import ClassificationLoss, check_range, float32_or_wider


class AnchorLoss(ClassificationLoss):
    name = "anchor"
    description = "sigmoid loss scaling negatives by how far they score above the target"
    formula = "l = -log p_y - sum_{j!=y} (1 + p_j - q*)^gamma log(1 - p_j),  p = sigmoid(z), q* = max(p_y - delta, 0)"
    paper = "Ryou et al. 2019, Anchor Loss: Modulating Loss Scale Based on Prediction Difficulty"
    knob_ranges = {"gamma": "[0, inf)", "delta": "[0, 1]", "warmup_epochs": "integer >= 0"}
    defaults_from = {
        "gamma": "authors' code, slryou41/AnchorLoss anchor_loss.py (gamma=0.5)",
        "delta": "authors' code, slryou41/AnchorLoss anchor_loss.py (slack=0.05)",
        "warmup_epochs": "authors' code, slryou41/AnchorLoss anchor_loss.py (plain CE while epoch < 5)",
    }
    conventions = ("the warm-up trains, and evaluates, with plain softmax cross entropy (the authors' warm_up=True)",)

    def __init__(self, gamma: float = 0.5, delta: float = 0.05, warmup_epochs: int = 5, weight=None,
                 ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        self.gamma = float(check_range("gamma", gamma, 0.0))
        self.delta = float(check_range("delta", delta, 0.0, 1.0))
        self.warmup_epochs = check_range("warmup_epochs", warmup_epochs, 0, integer=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.warming_up:
            return self.cross_entropy(logits, target)
        logits = float32_or_wider(logits)
        is_target = self.target_mask(target, logits.shape[1])
        probs = torch.sigmoid(logits)
        with torch.no_grad():
            anchor = ((probs * is_target).sum(dim=1, keepdim=True) - self.delta).clamp_min(0.0)
        positive = -(F.logsigmoid(logits) * is_target).sum(dim=1)
        scale = (1.0 + probs - anchor).clamp_min(0.0) ** self.gamma
        negative = -(scale * F.logsigmoid(-logits) * ~is_target).sum(dim=1)
        return self.reduce(positive + negative, target)
