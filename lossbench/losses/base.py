"""What every loss shares: PyTorch's weight / ignore_index / reduction
semantics, knob checks, and how the trainer should feed it.

``inputs`` tells the trainer what a loss takes:

- ``"logits"``: the model's class scores (most losses);
- ``"log_probs"``: log-probabilities (nll), the trainer applies log_softmax;
- ``"embeddings"``: the backbone's embedding; the loss owns the class weights
  (``.weight``, classes x embedding_dim) and predicts with ``.logits()``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from lossbench.errors import UserError
from lossbench.losses import knob_tables
from lossbench.losses.knob_tables import COMMON_KNOBS
from lossbench.losses.knobs import Knob
from lossbench.losses.reduction import reduce_loss


def float32_or_wider(x: torch.Tensor) -> torch.Tensor:
    """At least float32: half-precision logits from autocast are widened, float64 kept."""
    return x if x.dtype == torch.float64 else x.float()


def require_counts(name: str, class_counts) -> torch.Tensor:
    if class_counts is None:
        raise UserError(f"loss {name} needs the training set's class counts (class_counts)")
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if (counts <= 0).any():
        raise UserError(f"loss {name} needs every class in the training set: class counts {list(class_counts)}")
    return counts


def _as_class_weight(weight) -> torch.Tensor:
    if weight is None:
        return torch.empty(0, dtype=torch.float64)
    return weight.to(torch.float64) if torch.is_tensor(weight) else torch.as_tensor(weight, dtype=torch.float64)


class ClassificationLoss(nn.Module):
    """Base of every loss: ``loss(outputs, target)``.

    ``weight`` (per-class, PyTorch's convention: the weighted mean is
    ``sum(w_y l) / sum(w_y)``), ``ignore_index`` and ``reduction`` behave as in
    ``torch.nn.CrossEntropyLoss``. Deferred re-weighting swaps the class weights
    in with ``set_class_weight``.
    """

    name = ""
    description = ""
    formula = ""
    paper = ""
    # The knobs are the table of this name in knob_tables.py (the loss's own,
    # then the common ones it takes), not the constructor's signature.
    # the conventions a user could not guess from the formula; `lossbench losses NAME` shows them
    conventions: tuple[str, ...] = ()
    inputs = "logits"
    views = 1  # augmented views of each image per step
    warmup_epochs = 0  # epochs of plain cross entropy first (a knob of the losses whose authors do that)

    @classmethod
    def knob_table(cls) -> dict[str, Knob]:
        return knob_tables.knob_table(cls.name)

    @classmethod
    def settings_from(cls, given: dict, num_classes: int | None = None) -> dict:
        """Every knob's value, checked: ``given`` where given, else the default."""
        return knob_tables.checked_knobs(cls.name, given, num_classes)

    def __init__(self, num_classes: int | None = None, **knobs):
        super().__init__()
        self.num_classes = num_classes
        self.settings = self.settings_from(knobs, num_classes)
        for key, knob in knob_tables.own_knobs(self.name).items():
            if knob.kept:
                setattr(self, key, self.settings[key])
        weight, ignore_index, reduction = (self.settings.get(k, COMMON_KNOBS[k].default) for k in COMMON_KNOBS)
        # Always registered, empty for none, so that a checkpoint's keys do not change
        # when deferred re-weighting switches weights on; float64, cast to the input's
        # dtype at each use, so that float64 inputs get exact weights.
        self.register_buffer("class_weight", _as_class_weight(weight))
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.warming_up = False

    def floor(self) -> float:
        """The smallest mean value the loss can reach on the training set: a
        training loss flat just above it has fitted the data. Zero unless the
        target itself is soft (label smoothing)."""
        return 0.0

    def start_epoch(self, epoch: int) -> None:
        """The trainer calls this before each epoch (1-based): training and the
        evaluation after it use plain cross entropy during the warm-up."""
        self.warming_up = epoch <= self.warmup_epochs

    def set_class_weight(self, weight: torch.Tensor | None) -> None:
        self.class_weight = _as_class_weight(weight).to(self.class_weight.device)

    def class_weight_like(self, x: torch.Tensor) -> torch.Tensor | None:
        """The class weights in ``x``'s dtype (float64 inputs keep float64 throughout), or None."""
        return self.class_weight.to(x.dtype) if self.class_weight.numel() else None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the weights a checkpoint holds may be switched on (or not) where this
        # loss's are not: take their shape; a checkpoint without them had none
        key = prefix + "class_weight"
        saved = state_dict.setdefault(key, _as_class_weight(None))
        self.class_weight = torch.empty_like(saved, dtype=torch.float64, device=self.class_weight.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def reduce(self, per_sample: torch.Tensor, target: torch.Tensor, weighted: bool = False) -> torch.Tensor:
        """``weighted``: ``per_sample`` already holds the class weights (the mean still divides by sum w_y)."""
        return reduce_loss(per_sample, target, self.class_weight_like(per_sample), self.ignore_index, self.reduction,
                           weighted)

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross entropy on (adjusted) logits, in float32 or wider, with this loss's weight and reduction."""
        logits = float32_or_wider(logits)
        return F.cross_entropy(
            logits, target, weight=self.class_weight_like(logits), ignore_index=self.ignore_index, reduction=self.reduction
        )

    def target_mask(self, target: torch.Tensor, num_classes: int) -> torch.Tensor:
        """(N, K) boolean, True at each sample's target class (nowhere for ignored samples)."""
        keep = target != self.ignore_index
        onehot = F.one_hot(torch.where(keep, target, torch.zeros_like(target)), num_classes).bool()
        return onehot & keep[:, None]

    def replace_target_scores(self, scores: torch.Tensor, target: torch.Tensor, adjust) -> torch.Tensor:
        """``scores`` with each sample's target column replaced by ``adjust(target column, safe target)``.

        Only the N target entries are computed, not the N x K matrix; ignored
        samples keep their scores.
        """
        keep = target != self.ignore_index
        safe = torch.where(keep, target, torch.zeros_like(target))
        column = scores.gather(1, safe[:, None]).squeeze(1)
        new = torch.where(keep, adjust(column, safe), column)
        return scores.scatter(1, safe[:, None], new[:, None])

    def logits(self, outputs: torch.Tensor) -> torch.Tensor:
        """Scores to predict with (argmax) and to calibrate."""
        return outputs
