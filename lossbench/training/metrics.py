"""Per-epoch metrics, summed on the device during the epoch and
read back to the host once at its end."""

import math

import numpy as np
import torch

ECE_BINS = 15
GROUPS = ("head", "medium", "tail")


def class_groups(class_counts: list[int]) -> list[str]:
    """head / medium / tail per class: the top, middle and bottom third by training count
    (ties keep class order; with K not divisible by 3 the head is the larger part)."""
    order = sorted(range(len(class_counts)), key=lambda c: -class_counts[c])
    groups = [""] * len(class_counts)
    for name, members in zip(GROUPS, np.array_split(order, 3)):
        for c in members:
            groups[int(c)] = name
    return groups


class EpochTally:
    """Sums of one pass over a split: objective, accuracy per class and, for
    evaluation, plain cross entropy and the calibration bins."""

    def __init__(self, num_classes: int, device: torch.device):
        # float64 sums: an epoch adds up to millions of terms
        dtype = torch.float64 if device.type != "mps" else torch.float32
        self.loss_sum = torch.zeros((), dtype=dtype, device=device)
        self.nll_sum = torch.zeros((), dtype=dtype, device=device)
        self.seen = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.correct = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.bin_count = torch.zeros(ECE_BINS, dtype=dtype, device=device)
        self.bin_confidence = torch.zeros(ECE_BINS, dtype=dtype, device=device)
        self.bin_correct = torch.zeros(ECE_BINS, dtype=dtype, device=device)
        self.num_classes = num_classes

    @torch.no_grad()
    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss_sum: torch.Tensor, calibration: bool = False):
        """``loss_sum``: the batch's summed objective (a 0-d tensor)."""
        # index_add_ rather than bincount or boolean masks: those size their
        # output from the data, which makes a CUDA device wait for the host.
        hit = logits.argmax(dim=1) == labels
        self.loss_sum += loss_sum.detach().to(self.loss_sum.dtype)
        self.seen.index_add_(0, labels, torch.ones_like(labels))
        self.correct.index_add_(0, labels, hit.long())
        if calibration:
            log_probs = torch.log_softmax(logits.float(), dim=1)
            self.nll_sum -= log_probs.gather(1, labels[:, None]).sum().to(self.nll_sum.dtype)
            confidence = log_probs.max(dim=1).values.exp().to(self.bin_count.dtype)
            # bins (0, 1/15], (1/15, 2/15], ... as in Guo et al. 2017
            index = (confidence * ECE_BINS).ceil().long().clamp_(1, ECE_BINS) - 1
            self.bin_count.index_add_(0, index, torch.ones_like(confidence))
            self.bin_confidence.index_add_(0, index, confidence)
            self.bin_correct.index_add_(0, index, hit.to(self.bin_correct.dtype))

    def read(self) -> dict:
        """Everything back to the host in one transfer."""
        return {
            "loss_sum": self.loss_sum.item(),
            "nll_sum": self.nll_sum.item(),
            "seen": self.seen.cpu().numpy(),
            "correct": self.correct.cpu().numpy(),
            "bin_count": self.bin_count.cpu().numpy(),
            "bin_confidence": self.bin_confidence.cpu().numpy(),
            "bin_correct": self.bin_correct.cpu().numpy(),
        }


def expected_calibration_error(bin_count: np.ndarray, bin_confidence: np.ndarray, bin_correct: np.ndarray) -> float:
    total = bin_count.sum()
    if total == 0:
        return math.nan
    return float(np.abs(bin_correct - bin_confidence).sum() / total)


def per_class_accuracy(seen: np.ndarray, correct: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, correct / np.maximum(seen, 1), np.nan)


def _mean_present(values: np.ndarray) -> float:
    """Mean over the classes the test set has (NaN marks an absent class)."""
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else math.nan


def group_accuracies(per_class: np.ndarray, groups: list[str] | None) -> dict:
    """Mean accuracy of the head, medium and tail classes (None without groups)."""
    out = {}
    for name in GROUPS:
        members = [c for c, g in enumerate(groups or []) if g == name]
        out[name] = _mean_present(per_class[members]) if members else None
    return out


def summarize_split(split: str, sums: dict, groups: list[str] | None):
    """(the split's columns of a metrics row, per-class accuracy, calibration bins)."""
    n = max(int(sums["seen"].sum()), 1)
    per_class = per_class_accuracy(sums["seen"], sums["correct"])
    row = {
        f"{split}_loss": sums["loss_sum"] / n,
        f"{split}_nll": sums["nll_sum"] / n,
        f"{split}_acc": float(sums["correct"].sum() / n),
        f"{split}_balanced_acc": _mean_present(per_class),
        f"{split}_ece": expected_calibration_error(sums["bin_count"], sums["bin_confidence"], sums["bin_correct"]),
    }
    row.update({f"{split}_{name}_acc": value for name, value in group_accuracies(per_class, groups).items()})
    return row, per_class, reliability_rows(sums)


RELIABILITY_COLUMNS = ("bin", "lower", "upper", "count", "confidence", "accuracy")


def reliability_rows(sums: dict) -> list[dict]:
    """The calibration bins: mean confidence and accuracy per equal-width bin (empty bins: NaN)."""
    rows = []
    for b in range(ECE_BINS):
        count = float(sums["bin_count"][b])
        rows.append({
            "bin": b,
            "lower": b / ECE_BINS,
            "upper": (b + 1) / ECE_BINS,
            "count": int(count),
            "confidence": sums["bin_confidence"][b] / count if count else math.nan,
            "accuracy": sums["bin_correct"][b] / count if count else math.nan,
        })
    return rows
