"""The losses. ``lossbench.losses.registry`` holds the registry: ``LOSSES``
maps each name to its class, ``build_loss`` makes one from a name and its
knobs. ``lossbench.losses.knob_tables`` holds every loss's knobs by name, and
imports no torch: the config and its checks read them there.

Every loss is a ``torch.nn.Module`` called as ``loss(outputs, target)``. A loss
that owns its class weights (``inputs == "embeddings"``) exposes them as
``.weight`` (classes x embedding_dim) and predicts with ``.logits(embeddings)``.

This package imports nothing itself, so that importing ``knob_tables`` does not
import torch.
"""
