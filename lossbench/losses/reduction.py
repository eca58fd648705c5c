"""PyTorch's reduction conventions for per-sample losses, shared by every loss."""

import torch


def reduce_loss(
    per_sample: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    weighted: bool = False,
) -> torch.Tensor:
    """Reduce ``per_sample`` (N,) as ``torch.nn.CrossEntropyLoss`` does.

    Samples whose target is ``ignore_index`` count for nothing (0 under ``none``);
    with class weights ``w``, ``mean`` is ``sum(w_y * l) / sum(w_y)``.
    ``weighted``: ``per_sample`` already carries its class weights (a loss that
    weights more than the target term, as label smoothing does), so it is not
    multiplied by ``w_y`` again; ``mean`` still divides by ``sum(w_y)``.
    """
    keep = target != ignore_index
    w = keep.to(per_sample.dtype)
    if weight is not None:
        w = w * weight.to(per_sample.dtype)[target.clamp_min(0) * keep]
    weighted = per_sample * (keep.to(per_sample.dtype) if weighted else w)
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / w.sum()


def target_log_prob(log_probs: torch.Tensor, target: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """``log p_y`` per sample; ignored samples read class 0 (their loss is masked later)."""
    safe = torch.where(target == ignore_index, torch.zeros_like(target), target)
    return log_probs.gather(1, safe[:, None]).squeeze(1)
