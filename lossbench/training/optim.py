"""Optimizers and learning-rate schedules, built from the optim and sched configs.

Schedules are stepped once per training step and expressed in fractional
epochs, so a warm-up is smooth and milestones fall exactly on epoch boundaries.
"""

from __future__ import annotations

import math

from lossbench.errors import UserError

# torch is imported by the functions that build with it: a command line's
# checks read these names before anything needs torch
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("multistep", "cosine")


def build_optimizer(params, cfg, device: torch.device) -> torch.optim.Optimizer:
    import torch

    if cfg.lr <= 0:
        raise UserError(f"optim.lr={cfg.lr} is invalid: it must be > 0")
    if cfg.weight_decay < 0:
        raise UserError(f"optim.weight_decay={cfg.weight_decay} is invalid: it must be >= 0")
    # One fused kernel for the whole update on CUDA; the multi-tensor path elsewhere.
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov, **fast
        )
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, **fast)
    raise UserError(f"optim={cfg.name!r} is unknown: valid optimizers are {', '.join(OPTIMIZERS)}")


def lr_factor(cfg, epoch: float, epochs: int) -> float:
    """Multiplier of the base learning rate at fractional epoch ``epoch`` (0-based)."""
    warmup = float(cfg.warmup_epochs)
    if epoch < warmup:
        # Linear in whole epochs, lr * (e + 1) / warmup for epoch e, exactly as the
        # reference recipe (Cao et al. 2019) warms up.
        return (math.floor(epoch) + 1) / math.ceil(warmup)
    if cfg.name == "multistep":
        passed = sum(1 for m in cfg.milestones if epoch >= m)
        return float(cfg.gamma) ** passed
    progress = (epoch - warmup) / max(epochs - warmup, 1e-8)
    floor = float(cfg.min_lr_ratio)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, steps_per_epoch: int, epochs: int) -> LambdaLR:
    from torch.optim.lr_scheduler import LambdaLR

    if cfg.name not in SCHEDULES:
        raise UserError(f"sched={cfg.name!r} is unknown: valid schedules are {', '.join(SCHEDULES)}")
    if cfg.warmup_epochs < 0:
        raise UserError(f"sched.warmup_epochs={cfg.warmup_epochs} is invalid: it must be >= 0")
    return LambdaLR(optimizer, lambda step: lr_factor(cfg, step / steps_per_epoch, epochs))
