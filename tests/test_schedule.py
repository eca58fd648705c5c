import math

import pytest
import torch
from omegaconf import OmegaConf

from lossbench.errors import UserError
from lossbench.training.optim import build_optimizer, build_scheduler, lr_factor

MULTISTEP = OmegaConf.create({"name": "multistep", "warmup_epochs": 5, "milestones": [160, 180], "gamma": 0.01})


def test_reference_recipe_schedule():
    assert [lr_factor(MULTISTEP, e, 200) for e in range(6)] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    assert lr_factor(MULTISTEP, 159.99, 200) == 1.0
    assert math.isclose(lr_factor(MULTISTEP, 160, 200), 0.01)
    assert math.isclose(lr_factor(MULTISTEP, 180, 200), 1e-4)


def test_cosine_endpoints():
    cfg = OmegaConf.create({"name": "cosine", "warmup_epochs": 0, "min_lr_ratio": 0.1})
    assert lr_factor(cfg, 0, 10) == 1.0
    assert math.isclose(lr_factor(cfg, 5, 10), 0.55)
    assert math.isclose(lr_factor(cfg, 10, 10), 0.1)


def test_scheduler_steps_per_step():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model.parameters(), OmegaConf.create(
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 2e-4, "nesterov": False}), torch.device("cpu"))
    sched = build_scheduler(opt, MULTISTEP, steps_per_epoch=4, epochs=200)
    lrs = []
    for _ in range(4 * 6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert [round(lrs[4 * e], 6) for e in range(6)] == [0.02, 0.04, 0.06, 0.08, 0.1, 0.1]
    assert lrs[3] == lrs[0]  # constant within an epoch of warm-up


def test_non_positive_lr_is_refused():
    with pytest.raises(UserError, match=r"optim.lr=0.0 is invalid"):
        build_optimizer([torch.zeros(1, requires_grad=True)], OmegaConf.create(
            {"name": "sgd", "lr": 0.0, "momentum": 0.9, "weight_decay": 0, "nesterov": False}), torch.device("cpu"))
