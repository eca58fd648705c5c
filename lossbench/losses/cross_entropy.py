"""Cross entropy, ``-log p_y`` with ``p = softmax(z)``, and the same value from
log-probabilities (NLL): ``CE(z) = NLL(log_softmax(z))``."""

import torch
import torch.nn.functional as F

from lossbench.losses.base import ClassificationLoss, float32_or_wider


class CrossEntropy(ClassificationLoss):
    name = "ce"
    description = "softmax cross entropy, -log p_y"
    formula = "l = -log p_y,  p = softmax(z)"
    paper = "the maximum-likelihood objective of softmax classifiers"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.cross_entropy(logits, target)


class NegativeLogLikelihood(ClassificationLoss):
    """Takes log-probabilities; in training the trainer applies log_softmax to
    the model's scores, as a network ending in LogSoftmax would."""

    name = "nll"
    description = "negative log-likelihood of log-probabilities (CE = log_softmax + NLL)"
    formula = "l = -log_probs_y"
    paper = "the maximum-likelihood objective, split as PyTorch's LogSoftmax + NLLLoss"
    inputs = "log_probs"

    def forward(self, log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.nll_loss(
            float32_or_wider(log_probs), target, weight=self.class_weight_like(float32_or_wider(log_probs)), ignore_index=self.ignore_index, reduction=self.reduction
        )
