"""Sparse (top-k) softmax: the normaliser runs over the k largest logits only,
``l = logsumexp(top-k logits) - z_y``. As its author's code does, the target is
not forced into the set, so the loss stays positive; k = K gives CE."""

import torch

from lossbench.losses.base import ClassificationLoss, check_range, float32_or_wider


class SparseSoftmax(ClassificationLoss):
    name = "sparse_softmax"
    description = "cross entropy with the softmax normaliser over the top-k logits"
    formula = "l = logsumexp(top-k of z) - z_y  (k = K gives CE)"
    paper = "sparse / top-k softmax; cf. Martins & Astudillo 2016 for sparse output distributions"
    knob_ranges = {"k": "[1, K]"}
    defaults_from = {"k": "the sparse-softmax author's code, bojone/SPACES seq2seq_model.py (k_sparse = 10)"}

    def __init__(self, num_classes: int | None = None, k: int = 10, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(weight, ignore_index, reduction)
        high = num_classes if num_classes is not None else None
        self.k = check_range("k", k, 1, high, why=f" (the number of classes is {num_classes})" if high else "", integer=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = float32_or_wider(logits)
        k = min(self.k, logits.shape[1])
        normaliser = torch.logsumexp(logits.topk(k, dim=1).values, dim=1)
        safe = torch.where(target == self.ignore_index, torch.zeros_like(target), target)
        return self.reduce(normaliser - logits.gather(1, safe[:, None]).squeeze(1), target)
