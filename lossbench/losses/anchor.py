"""Anchor loss (Ryou et al. 2019, "Anchor Loss: Modulating Loss Scale Based on
Prediction Difficulty"), on per-class sigmoid probabilities ``p_j = sigmoid(z_j)``:

    l = -log p_y - sum_{j != y} (1 + p_j - q*)^gamma log(1 - p_j),  q* = max(p_y - delta, 0)

``q*`` (the anchor) is detached: negatives scoring above the target's
probability are pushed harder. As the authors do, the first ``warmup_epochs``
epochs train with plain softmax cross entropy.
"""

import torch
import torch.nn.functional as F

from lossbench.losses.base import ClassificationLoss, float32_or_wider


class AnchorLoss(ClassificationLoss):
    name = "anchor"
    description = "sigmoid loss scaling negatives by how far they score above the target"
    formula = "l = -log p_y - sum_{j!=y} (1 + p_j - q*)^gamma log(1 - p_j),  p = sigmoid(z), q* = max(p_y - delta, 0)"
    paper = "Ryou et al. 2019, Anchor Loss: Modulating Loss Scale Based on Prediction Difficulty"
    conventions = ("the warm-up trains, and evaluates, with plain softmax cross entropy (the authors' warm_up=True)",)

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
