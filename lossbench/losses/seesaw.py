"""Seesaw loss (Wang et al. 2021, "Seesaw Loss for Long-Tailed Instance
Segmentation"), in the softmax form mmpretrain trains image classifiers with.
For a sample of class y, every other class j's term in the softmax
normaliser is scaled by ``S_yj = M_yj C_yj``:

    l = -log( e^{z_y} / (e^{z_y} + sum_{j != y} S_yj e^{z_j}) )
    M_yj = (N_j / N_y)^p  if N_j < N_y, else 1       (mitigation: spare rarer classes)
    C_yj = (s_j / s_y)^q  if s_j > s_y, else 1       (compensation: punish classes scored above y)

``N`` counts the training samples of each class seen so far (this batch's
included, a count of 0 read as 1); ``s`` is the softmax, held constant, with
``s_y`` floored at ``eps``. The counts are saved with the loss, so a resumed
run goes on counting where it stopped. Prediction uses the plain logits.
"""

import torch
import torch.nn.functional as F

from lossbench.errors import UserError
from lossbench.losses.base import ClassificationLoss, float32_or_wider


class SeesawLoss(ClassificationLoss):
    name = "seesaw"
    description = "softmax whose other-class terms are scaled by count ratios (N_j/N_y)^p and score ratios (s_j/s_y)^q"
    formula = ("l = -log(e^z_y / (e^z_y + sum_{j!=y} M_yj C_yj e^z_j)),  M_yj = min(1, N_j/N_y)^p,  "
               "C_yj = max(1, s_j/s_y)^q")
    paper = "Wang et al. 2021, Seesaw Loss for Long-Tailed Instance Segmentation"
    conventions = (
        "the class counts N grow with every training batch, this one's included, as the authors' cum_samples; "
        "evaluation neither counts nor changes them",
        "the score ratios use the softmax without its gradient, as the authors' code",
    )

    def __init__(self, num_classes=None, **knobs):
        super().__init__(num_classes, **knobs)
        if num_classes is None:
            raise UserError("loss seesaw counts samples per class: it needs num_classes")
        # float64: counts stay exact far beyond float32's 2^24
        self.register_buffer("seen", torch.zeros(int(num_classes), dtype=torch.float64))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = float32_or_wider(logits)
        is_target = self.target_mask(target, logits.shape[1])
        if self.training:
            self.seen += is_target.sum(dim=0).to(self.seen.dtype)
        safe = torch.where(target == self.ignore_index, torch.zeros_like(target), target)
        log_scale = torch.zeros_like(logits)
        if self.p > 0:
            counts = self.seen.clamp_min(1.0).to(logits.dtype)
            count_ratio = counts[None, :] / counts[safe][:, None]
            log_scale = log_scale + torch.where(count_ratio < 1, self.p * torch.log(count_ratio), 0.0)
        if self.q > 0:
            with torch.no_grad():
                scores = F.softmax(logits, dim=1)
                score_ratio = scores / scores.gather(1, safe[:, None]).clamp_min(self.eps)
                log_scale = log_scale + torch.where(score_ratio > 1, self.q * torch.log(score_ratio), 0.0)
        return self.cross_entropy(logits + log_scale * ~is_target, target)
