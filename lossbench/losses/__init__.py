"""The loss registry: ``LOSSES`` maps each name to its class, ``build_loss``
makes one from a name and its knobs.

Every loss is a ``torch.nn.Module`` called as ``loss(outputs, target)``. A loss
that owns its class weights (``inputs == "embeddings"``) exposes them as
``.weight`` (classes x embedding_dim) and predicts with ``.logits(embeddings)``.
"""

import inspect

from torch import nn

from lossbench.errors import UserError
from lossbench.losses.anchor import AnchorLoss
from lossbench.losses.balanced_ce import BalancedCrossEntropy
from lossbench.losses.class_temperature import CDTLoss
from lossbench.losses.cosine_margin import AMSoftmax, ArcFace, CosFace
from lossbench.losses.cross_entropy import CrossEntropy, NegativeLogLikelihood
from lossbench.losses.focal import FocalLoss
from lossbench.losses.influence_balanced import IBLoss
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

LOSSES: dict[str, type[nn.Module]] = {
    cls.name: cls
    for cls in (
        CrossEntropy, NegativeLogLikelihood, BalancedCrossEntropy, LabelSmoothing, SparseSoftmax, FocalLoss,
        CosFace, AMSoftmax, ArcFace, LSoftmax, SphereFace, SoftMarginSoftmax, AnchorLoss, SupConLoss,
        MeanSquaredError, LDAM, BalancedSoftmax, LogitAdjusted, Poly1, VSLoss, CDTLoss, SeesawLoss,
        LabelAwareSmoothing, IBLoss,
    )
}



def loss_class(name: str) -> type[nn.Module]:
    if name not in LOSSES:
        raise UserError(f"loss={name!r} is unknown: valid losses are {', '.join(LOSSES)}")
    return LOSSES[name]


def knob_defaults(name: str) -> dict:
    """The knobs of a loss with their defaults."""
    return {key: knob.default for key, knob in loss_class(name).knob_table().items()}


def config_node(name: str) -> dict:
    """The ``loss=NAME`` config: the name and every knob at its default."""
    return {"name": name, **knob_defaults(name)}


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


__all__ = ["LOSSES", "build_loss", "config_node", "knob_defaults", "loss_class"]
