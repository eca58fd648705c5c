"""Influence-balanced loss (Park et al. 2021, "Influence-Balanced Loss for
Imbalanced Visual Classification"): each sample's cross entropy divided by its
influence on the decision boundary, approximated by the gradient norm of the
loss with respect to the last layer,

    l_i = w_{y_i} CE_i * alpha / (||softmax(z_i) - onehot(y_i)||_1 * ||h_i||_1 + eps),

with ``h`` the embedding that the linear classifier ``z = W h + b`` reads and
``w_c = (1/n_c) / sum_j (1/n_j) * K`` (the authors' IBReweight). Samples that
pull the boundary hardest, those of over-fitted head classes, count least. The
influence term keeps its gradient, as in the authors' code. The first
``warmup_epochs`` epochs train with plain, unweighted cross entropy: the
boundary must exist before influence means anything. The loss owns the linear
classifier, since it needs the embedding as well as the logits.
"""

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.errors import UserError
from lossbench.losses.base import ClassificationLoss, require_counts, float32_or_wider
from lossbench.losses.owned_classifier import LinearClassifier


def influence_balanced(logits: torch.Tensor, embeddings: torch.Tensor, target: torch.Tensor,
                       class_factor: torch.Tensor | None, alpha: float, epsilon: float, ignore_index: int = -100):
    """Per-sample IB loss (0 for ignored samples) from the logits and the embedding they came from."""
    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros_like(target))
    onehot = F.one_hot(safe, logits.shape[1]).to(logits.dtype)
    influence = (F.softmax(logits, dim=1) - onehot).abs().sum(dim=1) * embeddings.abs().sum(dim=1)
    ce = F.cross_entropy(logits, safe, reduction="none")
    if class_factor is not None:
        ce = ce * class_factor.to(logits.dtype)[safe]
    return torch.where(keep, ce * alpha / (influence + epsilon), 0.0)


class IBLoss(LinearClassifier, ClassificationLoss):
    name = "ib"
    description = "cross entropy divided by each sample's influence |p - y|_1 |h|_1, after a plain-CE warm-up"
    formula = "l_i = w_y CE_i alpha / (|softmax(z_i) - onehot(y_i)|_1 |h_i|_1 + eps),  w_c = (1/n_c) K / sum_j 1/n_j"
    paper = "Park et al. 2021, Influence-Balanced Loss for Imbalanced Visual Classification"
    inputs = "embeddings"
    conventions = (
        "the mean is over samples, with the class factor w_y inside each sample's value (the authors' "
        "plain mean); weight= adds PyTorch's weighted mean on top",
        "the warm-up (training and the evaluation after it) is plain cross entropy without class factors",
    )

    def __init__(self, num_classes=None, embedding_dim=None, class_counts=None, **knobs):
        super().__init__(num_classes, **knobs)
        if num_classes is None or embedding_dim is None:
            raise UserError("loss ib owns the linear classifier: it needs num_classes and embedding_dim")
        counts = require_counts(self.name, class_counts)
        inverse = 1.0 / counts
        factor = inverse / inverse.sum() * len(counts) if self.reweight else None  # float64, cast per call
        self.register_buffer("class_factor", factor)
        self.classifier = nn.Linear(embedding_dim, num_classes)

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = self.logits(embeddings)
        if self.warming_up:
            return self.cross_entropy(logits, target)
        with torch.autocast(embeddings.device.type, enabled=False):
            per_sample = influence_balanced(float32_or_wider(logits), float32_or_wider(embeddings), target, self.class_factor, self.alpha,
                                            self.epsilon, self.ignore_index)
        return self.reduce(per_sample, target)
