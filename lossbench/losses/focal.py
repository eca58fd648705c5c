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
from lossbench.losses.base import ClassificationLoss, check_range, float32_or_wider
from lossbench.losses.class_weights import SCHEMES, class_weights
from lossbench.losses.reduction import target_log_prob


class FocalLoss(ClassificationLoss):
    name = "focal"
    description = "cross entropy down-weighting easy examples by (1-p_y)^gamma"
    formula = "l = -a_y (1 - p_y)^gamma log p_y"
    paper = "Lin et al. 2017, Focal Loss for Dense Object Detection"
    knob_ranges = {"gamma": "[0, inf)", "alpha": "null | float > 0 | K floats | inverse | effective"}
    defaults_from = {
        "gamma": "Lin et al. 2017, section 3.2 and Table 1a: gamma = 2",
        "alpha": "none: the paper's alpha = 0.25 (Table 1b) weighs the sigmoid form's positives against its "
                 "negatives, which the softmax form does not have",
    }
    conventions = (
        "a scalar alpha scales every class alike (kornia since 0.7.2 gives class 0 1 - alpha and the others alpha; "
        "torchvision's sigmoid form gives negatives 1 - alpha); give K values for per-class weights",
    )

    def __init__(self, num_classes=None, class_counts=None, gamma: float = 2.0, alpha=None, weight=None,
                 ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        self.gamma = float(check_range("gamma", gamma, 0.0))
        self.register_buffer("alpha", self._alpha(alpha, num_classes, class_counts))

    @staticmethod
    def _alpha(alpha, num_classes, class_counts):
        if alpha is None:
            return None
        if isinstance(alpha, str):
            if alpha not in SCHEMES:
                raise UserError(f"loss.alpha={alpha!r} is invalid: use a number, one per class, or {' | '.join(SCHEMES)}")
            if class_counts is None:
                raise UserError(f"loss.alpha={alpha} needs the training set's class counts")
            return class_weights(class_counts, alpha)
        if isinstance(alpha, bool):
            raise UserError(f"loss.alpha={alpha!r} is invalid: use a number, one per class, or {' | '.join(SCHEMES)}")
        try:
            values = torch.as_tensor(list(alpha) if not isinstance(alpha, (int, float)) else alpha, dtype=torch.float64)
        except (TypeError, ValueError):
            raise UserError(f"loss.alpha={alpha!r} is invalid: use a number, one per class, or {' | '.join(SCHEMES)}") from None
        if values.ndim == 1 and num_classes is not None and len(values) != num_classes:
            raise UserError(f"loss.alpha has {len(values)} values: it needs one per class ({num_classes})")
        if (values <= 0).any():
            raise UserError(f"loss.alpha={alpha} is invalid: weights must be > 0")
        return values

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
