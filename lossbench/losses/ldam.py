"""LDAM (Cao et al. 2019, "Learning Imbalanced Datasets with Label-Distribution-
Aware Margin Loss"): a normalised head whose target margin grows for rarer
classes, ``Delta_c = C / n_c^(1/4)`` with the largest margin ``max_m``:
``l = CE(s (cos t - Delta_y [k = y]))``. Margins apply in training only.
Combine with deferred re-weighting (trainer.drw_epoch) for LDAM-DRW."""

import torch

from lossbench.losses.base import ClassificationLoss, require_counts
from lossbench.losses.owned_classifier import cosine_scores, new_class_weight


class LDAM(ClassificationLoss):
    name = "ldam"
    description = "label-distribution-aware margins C/n_c^(1/4) on a normalised head"
    formula = "CE on s (cos t_k - Delta_y [k = y]),  Delta_c = max_m (n_min / n_c)^(1/4)"
    paper = "Cao et al. 2019, Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss"
    conventions = (
        "the class weights start at norm 1 in uniformly drawn directions, as the authors' NormedLinear",
        "experiment=ldam_drw_cifar10_lt also starts the network as the authors' code does (model.init=ldam_drw: "
        "Kaiming normal with fan_in for every convolution and linear layer), on the images their code keeps "
        "(dataset.subsample=ldam_drw) standardised with their transform's constants; elsewhere the model's own "
        "initialisation (model.init=default)",
        "test_loss is measured without the margin (the loss the model predicts with); the authors' validation "
        "applies the margin, so their validation loss is higher",
    )
    inputs = "embeddings"

    def __init__(self, num_classes=None, embedding_dim=None, class_counts=None, **knobs):
        super().__init__(num_classes, **knobs)
        counts = require_counts(self.name, class_counts)
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
