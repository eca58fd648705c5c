"""Sparse (top-k) softmax: the normaliser runs over the k largest logits only,
``l = logsumexp(top-k logits) - z_y``. As its author's code does, the target is
not forced into the set, so the loss stays positive; k = K gives CE."""

import torch

from lossbench.losses.base import ClassificationLoss, float32_or_wider


class SparseSoftmax(ClassificationLoss):
    name = "sparse_softmax"
    description = "cross entropy with the softmax normaliser over the top-k logits"
    formula = "l = logsumexp(top-k of z) - z_y  (k = K gives CE)"
    paper = "sparse / top-k softmax; cf. Martins & Astudillo 2016 for sparse output distributions"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = float32_or_wider(logits)
        k = min(self.k, logits.shape[1])
        normaliser = torch.logsumexp(logits.topk(k, dim=1).values, dim=1)
        safe = torch.where(target == self.ignore_index, torch.zeros_like(target), target)
        return self.reduce(normaliser - logits.gather(1, safe[:, None]).squeeze(1), target)
