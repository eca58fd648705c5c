"""Supervised contrastive learning in one stage (Khosla et al. 2020,
"Supervised Contrastive Learning"): two augmented views per image, a
projection head on the embedding, and ``CE + lambda * SupCon``.

SupCon (the paper's L_out) over the 2N projections ``v`` (unit norm), for anchor i
with positives P(i) (same label, other samples) and all others A(i):

    l_i = -1/|P(i)| sum_{p in P(i)} log( exp(v_i.v_p / t) / sum_{a in A(i)} exp(v_i.v_a / t) )

The loss owns the linear classifier (``.weight``, ``.logits``) and the projection head.
"""

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.errors import UserError
from lossbench.losses.base import ClassificationLoss, float32_or_wider
from lossbench.losses.owned_classifier import LinearClassifier


def supcon_per_anchor(
    projections: torch.Tensor, labels: torch.Tensor, temperature: float, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-anchor loss, whether it counts) for unit-norm ``projections``; samples
    outside ``valid`` are neither anchors nor candidates (masks, not indexing,
    so that nothing waits on the host)."""
    n = len(labels)
    valid = torch.ones(n, dtype=torch.bool, device=labels.device) if valid is None else valid
    similarity = projections @ projections.t() / temperature
    excluded = torch.eye(n, dtype=torch.bool, device=labels.device) | ~valid[None, :]
    similarity = similarity.masked_fill(excluded, float("-inf"))
    log_prob = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~excluded & valid[:, None]
    count = positives.sum(dim=1)
    summed = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    return -summed / count.clamp_min(1), count > 0


class SupConLoss(LinearClassifier, ClassificationLoss):
    name = "supcon"
    description = "cross entropy plus supervised contrastive loss on two augmented views"
    formula = "l = CE + lambda * SupCon(v; t),  v = normalize(projection(embedding)), two views per image"
    paper = "Khosla et al. 2020, Supervised Contrastive Learning"
    conventions = (
        "SupCon equals SupContrast's SupConLoss with base_temperature = temperature, so no rescaling by "
        "temperature / base_temperature (their default base_temperature = 0.07 would multiply it by t / 0.07)",
    )
    inputs = "embeddings"
    views = 2

    def __init__(self, num_classes=None, embedding_dim=None, **knobs):
        super().__init__(num_classes, **knobs)
        if num_classes is None or embedding_dim is None:
            raise UserError("loss supcon owns the classifier and projection head: it needs num_classes and embedding_dim")
        self.classifier = nn.Linear(embedding_dim, num_classes)
        self.projection = nn.Sequential(
            nn.Linear(embedding_dim, embedding_dim), nn.ReLU(inplace=True), nn.Linear(embedding_dim, self.projection_dim)
        )

    def contrastive(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            projections = F.normalize(self.projection(float32_or_wider(embeddings)), dim=1)
            per_anchor, has_positive = supcon_per_anchor(
                projections, target, self.temperature, valid=target != self.ignore_index
            )
        counted = has_positive.to(per_anchor.dtype)
        return (per_anchor * counted).sum() / counted.sum().clamp_min(1.0)

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = self.cross_entropy(self.logits(embeddings), target)
        if self.reduction != "mean":
            raise UserError("loss supcon supports reduction=mean only (the contrastive term couples the samples)")
        return ce + self.lam * self.contrastive(embeddings, target)
