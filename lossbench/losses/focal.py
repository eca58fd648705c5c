"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection"), the
softmax form: ``l = -a_y (1 - p_y)^gamma log p_y``; gamma = 0 gives CE.

``alpha``: none, a scalar, one value per class, or ``inverse`` / ``effective``
to derive per-class weights from the training counts (Cui et al. 2019).
``alpha`` is part of the per-sample value; ``weight`` is PyTorch's class weight
(weighted mean), as for CE.
"""

import torch
import torch.nn.functional as F

from lossbench.errors import UserError
from lossbench.losses.base import ClassificationLoss, float32_or_wider
from lossbench.losses.class_weights import class_weights
from lossbench.losses.reduction import target_log_prob


class FocalLoss(ClassificationLoss):
    name = "focal"
    description = "cross entropy down-weighting easy examples by (1-p_y)^gamma"
    formula = "l = -a_y (1 - p_y)^gamma log p_y"
    paper = "Lin et al. 2017, Focal Loss for Dense Object Detection"
    conventions = (
        "a scalar alpha scales every class alike (kornia since 0.7.2 gives class 0 1 - alpha and the others alpha; "
        "torchvision's sigmoid form gives negatives 1 - alpha); give K values for per-class weights",
    )

    def __init__(self, num_classes=None, class_counts=None, **knobs):
        super().__init__(num_classes, **knobs)
        self.gamma = float(self.gamma)
        self.register_buffer("alpha", self._alpha(self.settings["alpha"], class_counts))

    @staticmethod
    def _alpha(alpha, class_counts):
        if alpha is None:
            return None
        if isinstance(alpha, str):
            if class_counts is None:
                raise UserError(f"loss.alpha={alpha} needs the training set's class counts")
            return class_weights(class_counts, alpha)
        return torch.as_tensor(list(alpha) if not isinstance(alpha, (int, float)) else alpha, dtype=torch.float64)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = target_log_prob(F.log_softmax(float32_or_wider(logits), dim=1), target, self.ignore_index)
        # 1 - p_y as -expm1(log p_y) keeps precision when p_y is near 1; the floor
        # keeps the gradient of (1 - p_y)^gamma finite for gamma < 1.
        focus = (-torch.expm1(log_p)).clamp_min(1e-12) ** self.gamma
        per_sample = -focus * log_p
        if self.alpha is not None:
            safe = torch.where(target == self.ignore_index, torch.zeros_like(target), target)
            alpha = self.alpha.to(per_sample.dtype)
            per_sample = per_sample * (alpha[safe] if alpha.ndim == 1 else alpha)
        return self.reduce(per_sample, target)
