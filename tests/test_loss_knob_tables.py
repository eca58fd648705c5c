"""The knob tables by loss name: composing the config and checking a user's
knobs need no torch, and they are the knobs the loss classes take, checked
with the same messages."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lossbench.errors import UserError
from lossbench.losses import knob_tables
from lossbench.losses.focal import FocalLoss
from lossbench.losses.knob_tables import LOSS_NAMES, checked_knobs, knob_defaults, knob_table
from lossbench.losses.registry import LOSSES, build_loss, loss_class

ROOT = Path(__file__).resolve().parents[1]
COUNTS = [100, 50, 30, 20, 12, 8, 5, 4, 3, 2]

COMPOSE_WITHOUT_TORCH = """
import sys
import lossbench.losses.knob_tables
from lossbench.training.compose import compose_train
compose_train([])
cfg = compose_train(["loss=focal", "loss.gamma=3"])
lossbench.losses.knob_tables.checked_knobs(str(cfg.loss.name), {"gamma": cfg.loss.gamma}, 10)
print("gamma", cfg.loss.gamma)
print("torch imported", "torch" in sys.modules)
"""


def test_composing_the_config_and_checking_knobs_do_not_import_torch():
    result = subprocess.run([sys.executable, "-c", COMPOSE_WITHOUT_TORCH], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["gamma 3", "torch imported False"]


def test_the_names_are_the_registry_in_its_order():
    assert tuple(LOSSES) == LOSS_NAMES
    assert sorted(knob_tables.OWN_KNOBS) == sorted(LOSS_NAMES)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_the_table_is_the_loss_classes_and_a_built_loss_keeps_the_defaults(name):
    assert knob_table(name) == loss_class(name).knob_table()
    assert knob_tables.config_node(name) == {"name": name, **knob_defaults(name)}
    loss = build_loss(name, num_classes=10, embedding_dim=8, class_counts=COUNTS)
    assert loss.settings == knob_defaults(name)
    for key, knob in knob_tables.own_knobs(name).items():
        if knob.kept:
            assert getattr(loss, key) == knob.default, key


def test_common_knobs_are_all_three_except_for_balanced_ce():
    assert knob_tables.common_knobs("ce") == ("weight", "ignore_index", "reduction")
    assert knob_tables.common_knobs("balanced_ce") == ("ignore_index", "reduction")
    assert list(knob_table("balanced_ce")) == ["scheme", "beta", "ignore_index", "reduction"]


@pytest.mark.parametrize("name, given, num_classes, message", [
    ("focal", {"alpha": [1, -1]}, 2, "loss.alpha=[1, -1] is invalid: use a number > 0, one per class, or inverse | effective"),
    ("focal", {"alpha": [1, 2, 3]}, 2, "loss.alpha has 3 values: it needs one per class (2)"),
    ("focal", {"alpha": True}, 2, "loss.alpha=True is invalid: use a number > 0, one per class, or inverse | effective"),
    ("focal", {"alpha": [[1, 2]]}, 2, "loss.alpha=[[1, 2]] is invalid: use a number > 0, one per class, or inverse | effective"),
    ("focal", {"alpha": torch.tensor([1.0, -2.0])}, 2,
     "loss.alpha=tensor([ 1., -2.]) is invalid: use a number > 0, one per class, or inverse | effective"),
    ("focal", {"gamma": -1}, 2, "loss.gamma=-1 is invalid: it must be in [0, inf)"),
    ("focal", {"weight": [1, 2, 3]}, 2, "loss.weight has 3 values: it needs one per class (2)"),
    ("focal", {"weight": [1, -2]}, 2, "loss.weight=-2 is invalid: it must be in [0, inf) (one weight per class)"),
    ("focal", {"weight": 3}, 2, "loss.weight=3 is invalid: give one number >= 0 per class, e.g. [1.0,2.0,...], or null"),
    ("ce", {"weight": torch.tensor([1.0, -2.0])}, 2,
     "loss.weight=-2.0 is invalid: it must be in [0, inf) (one weight per class)"),
    ("sparse_softmax", {"k": 0}, 5, "loss.k=0 is invalid: it must be in [1, 5] (the number of classes is 5)"),
    ("sparse_softmax", {"k": 6}, 5, "loss.k=6 is invalid: it must be in [1, 5] (the number of classes is 5)"),
    ("sparse_softmax", {"k": 2.5}, 5, "loss.k=2.5 is invalid: it must be an integer in [1, 5] (the number of classes is 5)"),
    ("label_aware_smoothing", {"shape": "exp"}, 2, "loss.power is needed with loss.shape=exp: a number > 0"),
    ("label_aware_smoothing", {"power": 2}, 2,
     "loss.power=2 applies to loss.shape=exp only (now shape=concave): drop it, or set loss.shape=exp"),
    ("focal", {"gama": 1}, 2, "loss.gama is not a knob of focal: its knobs are gamma, alpha, weight, ignore_index, reduction"),
    ("balanced_ce", {"weight": [1, 2]}, 2,
     "loss.weight is not a knob of balanced_ce: its knobs are scheme, beta, ignore_index, reduction"),
    ("cdt", {"tau": 1}, 2, "loss.tau is not a knob of cdt: its knobs are gamma, weight, ignore_index, reduction"),
    ("ce", {"reduction": "avg"}, 2, "loss.reduction='avg' is invalid: valid values are mean, sum, none"),
    ("focl", {}, 2, "loss='focl' is unknown: valid losses are ce, nll, balanced_ce, label_smoothing, sparse_softmax, "
                    "focal, cosface, am_softmax, arcface, l_softmax, sphereface, sm_softmax, anchor, supcon, mse, "
                    "ldam, balanced_softmax, logit_adjusted, poly1, vs, cdt, seesaw, label_aware_smoothing, ib"),
])
def test_bad_values_are_refused_as_the_loss_refuses_them(name, given, num_classes, message):
    with pytest.raises(UserError) as refused:
        checked_knobs(name, given, num_classes)
    assert str(refused.value) == message
    with pytest.raises(UserError) as refused_by_the_loss:
        loss_class(name).settings_from(given, num_classes)
    assert str(refused_by_the_loss.value) == message


@pytest.mark.parametrize("given, num_classes", [
    ({"alpha": "inverse"}, 2),
    ({"alpha": 0.25}, None),
    ({"alpha": [1.0, 2.0]}, 2),
    ({"alpha": torch.tensor([1.0, 2.0])}, 2),
    ({"weight": torch.tensor([1.0, 2.0]), "gamma": 0}, 2),
    ({"weight": (1, 2)}, 2),
])
def test_good_values_are_kept_as_given(given, num_classes):
    settings = checked_knobs("focal", given, num_classes)
    assert all(settings[key] is value for key, value in given.items())


def test_a_loss_takes_per_class_values_as_a_tensor():
    loss = FocalLoss(num_classes=2, alpha=torch.tensor([1.0, 2.0]), weight=torch.tensor([0.5, 1.0]))
    assert loss.alpha.tolist() == [1.0, 2.0] and loss.class_weight.tolist() == [0.5, 1.0]
    assert build_loss("sparse_softmax", num_classes=5, k=5).k == 5
    with pytest.raises(UserError, match=r"loss.alpha has 3 values: it needs one per class \(2\)"):
        FocalLoss(num_classes=2, alpha=torch.tensor([1.0, 2.0, 3.0]))
