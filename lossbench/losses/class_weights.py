"""Per-class weights from training counts (Cui et al. 2019, "Class-Balanced Loss
Based on Effective Number of Samples"): inverse frequency ``1 / n_c`` or inverse
effective number ``(1 - beta) / (1 - beta^n_c)``, normalised to sum to K."""

import torch

from lossbench.checks import check_number
from lossbench.errors import UserError
from lossbench.losses.knob_tables import SCHEMES


def class_weights(class_counts, scheme: str = "effective", beta: float = 0.9999) -> torch.Tensor:
    if scheme not in SCHEMES:
        raise UserError(f"loss.scheme={scheme!r} is invalid: valid schemes are {', '.join(SCHEMES)}")
    check_number("loss.beta", beta, 0.0, 1.0, high_inclusive=False)
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if (counts <= 0).any():
        raise UserError(f"class weights need every class in the training set: class counts {list(class_counts)}")
    if scheme == "inverse":
        raw = 1.0 / counts
    else:
        # 1 - beta^n computed as -expm1(n log beta): exact for beta near 1
        raw = (1.0 - beta) / -torch.expm1(counts * torch.log(torch.tensor(beta, dtype=torch.float64)))
    return raw * len(counts) / raw.sum()  # float64: a loss casts it to its input's dtype
