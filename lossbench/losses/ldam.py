"""LDAM (Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-
Aware Margin Loss"): a normalised head whose target margin grows for rarer
classes, ``Delta_c = C / n_c^(1/4)`` with the largest margin ``max_m``:
``l = CE(s (cos t - Delta_y [k = y]))``. Margins apply in training only.
Combine with deferred re-weighting (trainer.drw_epoch) for LDAM-DRW."""

import torch

from lossbench.losses.base import ClassificationLoss, check_range, require_counts
from lossbench.losses.owned_classifier import cosine_scores, new_class_weight


class LDAM(ClassificationLoss):
    name = "ldam"
    description = "label-distribution-aware margins C/n_c^(1/4) on a normalised head"
    formula = "CE on s (cos t_k - Delta_y [k = y]),  Delta_c = max_m (n_min / n_c)^(1/4)"
    paper = "Cao et al. 2019, Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss"
    defaults_from = {
        "s": "authors' code, kaidic/LDAM-DRW losses.py (s=30)",
        "max_m": "authors' code, kaidic/LDAM-DRW losses.py (max_m=0.5)",
    }
    conventions = (
        "the class weights start at norm 1 in uniformly drawn directions, as the authors' NormedLinear",
        "test_loss is measured without the margin (the loss the model predicts with); the authors' validation "
        "applies the margin, so their validation loss is higher",
    )
    inputs = "embeddings"
    knob_ranges = {"s": "(0, inf)", "max_m": "[0, 1]"}

    def __init__(self, num_classes=None, embedding_dim=None, class_counts=None, s: float = 30.0, max_m: float = 0.5,
                 weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        counts = require_counts(self.name, class_counts)
        self.s = float(check_range("s", s, 0.0, low_inclusive=False))
        self.max_m = float(check_range("max_m", max_m, 0.0, 1.0))
        margins = counts ** -0.25
        self.register_buffer("margins", margins * (self.max_m / margins.max()))  # float64, cast per call
        self.weight = new_class_weight(num_classes, embedding_dim, self.name, unit_rows=True)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.s * cosine_scores(embeddings, self.weight)

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = cosine_scores(embeddings, self.weight)
        if self.training:
            cos = self.replace_target_scores(cos, target, lambda column, y: column - self.margins[y].to(column.dtype))
        return self.cross_entropy(self.s * cos, target)
