"""The loss registry: ``LOSSES`` maps each name to its class, ``build_loss``
makes one from a name and its knobs. Importing it imports torch and every
loss; the names and knobs alone are in ``knob_tables``, without torch."""

import inspect

from torch import nn

from lossbench.losses.anchor import AnchorLoss
from lossbench.losses.balanced_ce import BalancedCrossEntropy
from lossbench.losses.class_temperature import CDTLoss
from lossbench.losses.cosine_margin import AMSoftmax, ArcFace, CosFace
from lossbench.losses.cross_entropy import CrossEntropy, NegativeLogLikelihood
from lossbench.losses.focal import FocalLoss
from lossbench.losses.influence_balanced import IBLoss
from lossbench.losses.knob_tables import LOSS_NAMES, check_loss_name
from lossbench.losses.label_aware_smoothing import LabelAwareSmoothing
from lossbench.losses.label_smoothing import LabelSmoothing
from lossbench.losses.large_margin import LSoftmax, SphereFace
from lossbench.losses.ldam import LDAM
from lossbench.losses.logit_adjustment import BalancedSoftmax, LogitAdjusted
from lossbench.losses.seesaw import SeesawLoss
from lossbench.losses.softmax_variants import MeanSquaredError, Poly1, SoftMarginSoftmax
from lossbench.losses.sparse_softmax import SparseSoftmax
from lossbench.losses.supcon import SupConLoss
from lossbench.losses.vector_scaling import VSLoss

_CLASSES = {
    cls.name: cls
    for cls in (
        CrossEntropy, NegativeLogLikelihood, BalancedCrossEntropy, LabelSmoothing, SparseSoftmax, FocalLoss,
        CosFace, AMSoftmax, ArcFace, LSoftmax, SphereFace, SoftMarginSoftmax, AnchorLoss, SupConLoss,
        MeanSquaredError, LDAM, BalancedSoftmax, LogitAdjusted, Poly1, VSLoss, CDTLoss, SeesawLoss,
        LabelAwareSmoothing, IBLoss,
    )
}
# in knob_tables' order, which `lossbench losses` lists
LOSSES: dict[str, type[nn.Module]] = {name: _CLASSES[name] for name in LOSS_NAMES}


def loss_class(name: str) -> type[nn.Module]:
    return LOSSES[check_loss_name(name)]


def build_loss(name: str, num_classes: int | None = None, embedding_dim: int | None = None, class_counts=None, **knobs) -> nn.Module:
    """The loss, given what the trainer knows of the data and model (each loss
    takes what its constructor names) and the knobs (checked by the loss)."""
    cls = loss_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    context = {"num_classes": num_classes, "embedding_dim": embedding_dim, "class_counts": class_counts}
    clash = [k for k in knobs if k in context]
    if clash:
        cls.settings_from({clash[0]: None})  # refused: not a knob
    return cls(**{k: v for k, v in context.items() if k in accepted}, **knobs)


__all__ = ["LOSSES", "build_loss", "loss_class"]
