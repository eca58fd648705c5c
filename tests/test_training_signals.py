"""The per-epoch optimisation signals the diagnosis reads: gradient norms and
the update-to-weight ratio, checked against a float64 recomputation of the
same step; and gradient clipping."""

import math

import numpy as np
import pytest
import torch

from helpers.training import compose_train
from lossbench.errors import UserError
from lossbench.training.run import build
from lossbench.training.trainer import gradient_columns
from lossbench.training.validate import validate_config

ONE_STEP = ("trainer.batch_size=1295", "dataset.augment.crop_padding=0", "optim.weight_decay=0",
            "sched.warmup_epochs=0", "trainer.epochs=1")


def _one_step_setup(*overrides):
    """An epoch of one step over the whole training set: the step's gradient
    does not depend on the order the batch was drawn in."""
    cfg = compose_train(*ONE_STEP, *overrides)
    validate_config(cfg)
    run = build(cfg)
    assert len(run.data.train) == 1295 and len(run.trainer.train_batches) == 1
    return cfg, run


def _reference_gradient(run, weights):
    """The gradient of the mean cross entropy over the training set at ``weights``, in float64."""
    model = run.model.to(torch.float64)
    with torch.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(w)
    model.train()
    images = ((run.data.train.images.double() / 255 - torch.as_tensor(run.data.mean, dtype=torch.float64)[:, None, None])
              / torch.as_tensor(run.data.std, dtype=torch.float64)[:, None, None])
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(images), run.data.train.labels).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_gradient_norm_and_update_ratio_match_a_float64_recomputation():
    cfg, run = _one_step_setup()
    before = [p.detach().double().clone() for p in run.model.parameters()]
    row = run.trainer.train_epoch(1)
    after = [p.detach().double().clone() for p in run.model.parameters()]
    grads = _reference_gradient(run, before)
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    # one step: mean, 90th percentile and max are that step's norm
    for column in ("grad_norm_mean", "grad_norm_p90", "grad_norm_max"):
        assert row[column] == pytest.approx(norm, rel=1e-3)
    change = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before)))
    size = math.sqrt(sum(float((b ** 2).sum()) for b in before))
    assert row["update_ratio"] == pytest.approx(change / size, rel=1e-4)
    # SGD's first step (the momentum buffer starts at the gradient): lr times the gradient
    assert change == pytest.approx(float(cfg.optim.lr) * norm, rel=1e-3)


def test_clipping_scales_the_step_down_to_the_limit():
    cfg, run = _one_step_setup("trainer.clip_grad_norm=0.01")
    before = [p.detach().double().clone() for p in run.model.parameters()]
    row = run.trainer.train_epoch(1)
    change = math.sqrt(sum(float(((p.detach().double() - b) ** 2).sum())
                           for p, b in zip(run.model.parameters(), before)))
    assert row["grad_norm_max"] > 0.1  # recorded before clipping
    assert change == pytest.approx(float(cfg.optim.lr) * 0.01, rel=1e-3)


@pytest.mark.parametrize("value", [0, -1, "big"])
def test_a_bad_clip_value_is_refused(value):
    with pytest.raises(UserError, match=r"trainer.clip_grad_norm=.* is invalid: .*null for no clipping"):
        validate_config(compose_train(f"trainer.clip_grad_norm={value}"))


def test_gradient_columns_leave_skipped_steps_out():
    norms = np.array([1.0, np.inf, 2.0, np.nan, 3.0] + [4.0] * 5)
    columns = gradient_columns(norms)
    finite = np.array([1.0, 2.0, 3.0] + [4.0] * 5)
    assert columns == {"grad_norm_mean": pytest.approx(finite.mean()), "grad_norm_p90": pytest.approx(4.0),
                       "grad_norm_max": 4.0}
    assert all(math.isnan(v) for v in gradient_columns(np.array([np.nan])).values())
