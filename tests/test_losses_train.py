"""Every loss trains end to end through the trainer, on digits, on the CPU."""

import csv

import pytest
import torch

from lossbench.data import DeviceBatches, load_dataset
from lossbench.data.augment import Normalize
from lossbench.losses.registry import LOSSES, build_loss
from lossbench.losses.class_weights import class_weights
from lossbench.training.run import run_training
from lossbench.training.columns import TIME_COLUMNS
from helpers.training import compose_train

pytestmark = pytest.mark.slow  # processes or training: left out by pytest -m "not slow"

# 6 epochs of the small CNN on digits: CE reaches 0.99, the slowest starters
# (arcface and cosface with s = 64 on so little data) about 0.86. A loss "learns"
# when its final test accuracy is at least 0.8: eight times chance (0.1), far
# above what a broken gradient or a wrong prediction head reaches.
LEARNS = 0.8
EPOCHS = 6


@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"vs", "cdt", "seesaw", "label_aware_smoothing", "ib"}))
def test_every_loss_learns(tmp_path, name):
    """(The long-tail losses learn on digits_lt, below.)"""
    summary = run_training(compose_train(f"loss={name}", f"trainer.epochs={EPOCHS}", "seed=0"), tmp_path)
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert summary["status"] == "finished"
    assert float(rows[-1]["test_acc"]) >= LEARNS, f"{name}: {[r['test_acc'] for r in rows]}"


@pytest.mark.parametrize("name", ["cosface", "arcface", "l_softmax", "ldam", "supcon"])
def test_margin_loss_weights_are_trained(tmp_path, name):
    run_training(compose_train(f"loss={name}", "trainer.epochs=1", "dataset=digits_lt"), tmp_path)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert "head.weight" not in state["model"]  # the model ends at its embedding
    weight_key = "classifier.weight" if name == "supcon" else "weight"
    assert tuple(state["loss"][weight_key].shape) == (10, 128)
    # the optimizer holds the loss's weights: they have momentum buffers
    assert len(state["optimizer"]["param_groups"][0]["params"]) == len(state["optimizer"]["state"])


def test_deferred_reweighting_switches_weights_on(tmp_path):
    summary = run_training(compose_train("loss=ldam", "dataset=digits_lt", "trainer.epochs=2", "trainer.drw_epoch=1"), tmp_path)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    expected = class_weights(summary["class_counts"], "effective", 0.9999)
    torch.testing.assert_close(state["loss"]["class_weight"], expected)


def test_class_balanced_sampling_draws_classes_evenly():
    cfg = compose_train("dataset=digits_lt")
    data = load_dataset(cfg.dataset, None, torch.device("cpu"))
    from lossbench.training.run import _sample_weights

    batches = DeviceBatches(
        data.train, 256, Normalize(data.mean, data.std), torch.Generator().manual_seed(0),
        sample_weights=_sample_weights("class_balanced", data),
    )
    drawn = torch.cat([y for _ in range(20) for _, y in batches])
    share = torch.bincount(drawn, minlength=10).double() / len(drawn)
    assert data.class_counts[0] / data.class_counts[-1] > 10
    assert torch.allclose(share, torch.full((10,), 0.1, dtype=torch.float64), atol=0.01)


def test_supcon_sees_two_views_of_each_image():
    cfg = compose_train("dataset=digits")
    data = load_dataset(cfg.dataset, None, torch.device("cpu"))
    loss = build_loss("supcon", num_classes=10, embedding_dim=8)
    batches = DeviceBatches(data.train, 32, Normalize(data.mean, data.std), torch.Generator().manual_seed(0),
                            shuffle=True, crop_padding=1, views=loss.views)
    images, labels = next(iter(batches))
    assert images.shape[0] == 64 and torch.equal(labels[:32], labels[32:])
    assert not torch.equal(images[:32], images[32:])  # augmented independently


@pytest.mark.parametrize("name", ["ce", "focal", "ldam", "arcface", "l_softmax", "supcon", "balanced_softmax"])
def test_losses_train_on_cifar_shaped_data(tmp_path, cifar_dir, name):
    # 3-channel 32x32 images through ResNet-20 (embedding 64), long-tailed counts
    summary = run_training(
        compose_train("dataset=cifar10_lt", "dataset.imbalance_ratio=10", "model=resnet20", f"loss={name}",
                      "trainer.epochs=1", "trainer.batch_size=32", f"paths.data_dir={cifar_dir}",
                      "dataset.val_fraction=0"),
        tmp_path,
    )
    assert summary["status"] == "finished" and summary["class_counts"] == [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]
    assert 0.0 <= summary["final"]["test_acc"] <= 1.0


# On digits_lt (imbalance 10) in 6 epochs, CE reaches a balanced accuracy of
# about 0.76 and these 0.65 (cdt) to 0.91 (ib); 0.5 is five times chance.
LONG_TAIL_LOSSES = [("vs", []), ("cdt", []), ("seesaw", []), ("label_aware_smoothing", []),
                    ("ib", ["loss.warmup_epochs=2"])]


@pytest.mark.parametrize("name, knobs", LONG_TAIL_LOSSES, ids=[n for n, _ in LONG_TAIL_LOSSES])
def test_long_tail_losses_learn_on_digits_lt(tmp_path, name, knobs):
    summary = run_training(compose_train(f"loss={name}", "dataset=digits_lt", f"trainer.epochs={EPOCHS}", "seed=0",
                                         *knobs), tmp_path)
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert summary["status"] == "finished"
    assert float(rows[-1]["test_balanced_acc"]) >= 0.5, [r["test_balanced_acc"] for r in rows]
    if name == "ib":
        # plain CE for two epochs, then the influence-balanced objective (alpha = 1000: a larger value)
        losses = [float(r["train_loss"]) for r in rows]
        assert losses[1] < losses[0] and losses[2] > 3 * losses[1]


class _StopAfterEpochs:
    """A stop request raised once ``metrics.csv`` holds ``epochs`` rows: the run ends cleanly there."""

    name = "SIGTERM"
    exit_code = 143

    def __init__(self, run_dir, epochs):
        self.metrics, self.epochs = run_dir / "metrics.csv", epochs

    def __bool__(self):
        return self.metrics.exists() and len(self.metrics.read_text().splitlines()) > self.epochs


def test_deferred_reweighting_resumes_across_its_switch_with_the_same_checkpoint_keys(tmp_path):
    cfg = compose_train("loss=ldam", "dataset=digits_lt", "trainer.epochs=3", "trainer.drw_epoch=1", "seed=1")
    run_training(cfg, tmp_path / "whole")
    stopped = run_training(cfg, tmp_path / "resumed", stop=_StopAfterEpochs(tmp_path / "resumed", 1))
    assert stopped["status"] == "interrupted" and stopped["epochs_completed"] == 1
    before_switch = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["loss"]
    assert before_switch["class_weight"].numel() == 0  # no weights yet, but the key is there
    run_training(cfg, tmp_path / "resumed", resume=True)
    after_switch = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["loss"]
    assert set(after_switch) == set(before_switch)
    with open(tmp_path / "whole" / "metrics.csv") as a, open(tmp_path / "resumed" / "metrics.csv") as b:
        drop = lambda rows: [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in rows]
        assert drop(csv.DictReader(a)) == drop(csv.DictReader(b))
    torch.testing.assert_close(after_switch["class_weight"],
                               torch.load(tmp_path / "whole" / "last.pt", weights_only=False)["loss"]["class_weight"])
