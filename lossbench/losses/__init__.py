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

# What the trainer offers every loss; each takes the ones its constructor names.
CONTEXT = ("num_classes", "embedding_dim", "class_counts")


def knob_defaults(name: str) -> dict:
    """The knobs of a loss with their defaults (the context arguments left out)."""
    params = inspect.signature(LOSSES[name].__init__).parameters
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in params.items()
        if k != "self" and k not in CONTEXT
    }


def build_loss(name: str, num_classes: int | None = None, embedding_dim: int | None = None, class_counts=None, **knobs) -> nn.Module:
    if name not in LOSSES:
        raise UserError(f"loss={name!r} is unknown: valid losses are {', '.join(LOSSES)}")
    cls = LOSSES[name]
    accepted = inspect.signature(cls.__init__).parameters
    unknown = [k for k in knobs if k not in accepted or k in CONTEXT]
    if unknown:
        valid = ", ".join(knob_defaults(name)) or "none"
        raise UserError(f"loss.{unknown[0]} is not a knob of {name}: its knobs are {valid}")
    context = {"num_classes": num_classes, "embedding_dim": embedding_dim, "class_counts": class_counts}
    return cls(**{k: v for k, v in context.items() if k in accepted}, **knobs)


__all__ = ["LOSSES", "build_loss", "knob_defaults"]
