"""experiment=ldam_drw_cifar10_lt as LDAM-DRW's code: its images, its
initialisation, its normalisation constants.

dataset.subsample=ldam_drw keeps the images LDAM-DRW's code keeps, index for
index: checked against that procedure written here from its description
(NumPy's global generator seeded with 0 once; for each class in label order,
np.random.shuffle of its indices in the concatenated training files; the first
int(n_max * imb_factor ** (c / (C - 1))) kept), on files in the real format."""

import csv
import logging
import pickle

import numpy as np
import pytest
import torch

from lossbench.data.dataset import load_dataset
from lossbench.training.compose import compose_train
from lossbench.training.run import run_training
from synthetic_cifar import write_synthetic_cifar10, write_synthetic_cifar100

PER_CLASS = 500  # CIFAR's own 5000 per class would take longer to write, to the same effect


def labels_in_files(folder, files, key) -> np.ndarray:
    """The training labels in the order of the concatenated files, read with pickle as the authors' loader does."""
    labels = []
    for name in files:
        with open(folder / name, "rb") as f:
            labels += pickle.load(f, encoding="latin1")[key]
    return np.array(labels, dtype=np.int64)


def authors_selection(labels: np.ndarray, classes: int, imb_factor: float, imb_type: str) -> list[int]:
    img_max = len(labels) / classes
    if imb_type == "exp":
        counts = [int(img_max * (imb_factor ** (c / (classes - 1.0)))) for c in range(classes)]
    else:
        counts = [int(img_max)] * (classes // 2) + [int(img_max * imb_factor)] * (classes // 2)
    np.random.seed(0)
    kept = []
    for the_class, count in zip(np.unique(labels), counts):
        idx = np.where(labels == the_class)[0]
        np.random.shuffle(idx)
        kept += idx[:count].tolist()
    return kept


@pytest.fixture(scope="module")
def cifar10_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    write_synthetic_cifar10(root, train_per_class=PER_CLASS, test_per_class=2)
    return root


@pytest.fixture(scope="module")
def cifar100_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar100")
    write_synthetic_cifar100(root, train_per_class=PER_CLASS // 5, test_per_class=1)
    return root


def kept_by_lossbench(dataset: str, root, *overrides) -> np.ndarray:
    cfg = compose_train([f"dataset={dataset}", f"paths.data_dir={root}", "dataset.download=false",
                         "dataset.val_fraction=0", *overrides])
    return load_dataset(cfg.dataset, root, torch.device("cpu")).kept


@pytest.mark.parametrize("ratio", [100, 50, 10])
@pytest.mark.parametrize("profile", ["exp", "step"])
def test_cifar10_lt_keeps_the_authors_images(cifar10_root, ratio, profile):
    labels = labels_in_files(cifar10_root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels")
    expected = authors_selection(labels, 10, 1 / ratio, profile)
    kept = kept_by_lossbench("cifar10_lt", cifar10_root, f"dataset.imbalance_ratio={ratio}", f"dataset.profile={profile}")
    assert kept.tolist() == expected


@pytest.mark.parametrize("ratio", [100, 50, 10])
@pytest.mark.parametrize("profile", ["exp", "step"])
def test_cifar100_lt_keeps_the_authors_images(cifar100_root, ratio, profile):
    labels = labels_in_files(cifar100_root / "cifar-100-python", ["train"], "fine_labels")
    expected = authors_selection(labels, 100, 1 / ratio, profile)
    kept = kept_by_lossbench("cifar100_lt", cifar100_root, f"dataset.imbalance_ratio={ratio}", f"dataset.profile={profile}")
    assert kept.tolist() == expected


def test_random_stays_available_with_its_seed(cifar10_root):
    labels = labels_in_files(cifar10_root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels")
    first, again, other = (kept_by_lossbench("cifar10_lt", cifar10_root, "dataset.subsample=random",
                                             f"dataset.subsample_seed={seed}") for seed in (0, 0, 1))
    # the same counts as the authors' selection, other images; the seed decides which
    authors = authors_selection(labels, 10, 0.01, "exp")
    assert np.bincount(labels[first], minlength=10).tolist() == np.bincount(labels[authors], minlength=10).tolist()
    assert first.tolist() == again.tolist() and first.tolist() != other.tolist()
    assert sorted(first.tolist()) != sorted(authors)


def test_a_run_writes_the_images_it_kept(tmp_path, cifar10_root, caplog):
    cfg = compose_train(["dataset=cifar10_lt", f"paths.data_dir={cifar10_root}", "dataset.download=false",
                         "model=small_cnn", "trainer.epochs=1", "trainer.progress=false", "trainer.batch_size=64"])
    with caplog.at_level(logging.INFO, logger="lossbench"):
        run_training(cfg, tmp_path / "run")
    assert ("images: long tail: the images LDAM-DRW's code keeps (dataset.subsample=ldam_drw); standardised with "
            "the training images' own mean and std") in caplog.messages
    with open(tmp_path / "run" / "training_images.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = labels_in_files(cifar10_root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "labels")
    # every kept image in the authors' order, with its label; a tenth of each class held out for validation
    assert [int(r["index"]) for r in rows] == authors_selection(labels, 10, 0.01, "exp")
    assert all(int(r["label"]) == labels[int(r["index"])] for r in rows)
    held = [r for r in rows if r["split"] == "val"]
    assert {r["split"] for r in rows} == {"train", "val"} and 0 < len(held) < len(rows) / 5


def test_a_bad_subsample_is_refused(tmp_path):
    from helpers.cli import assert_one_line_error, lossbench

    result = lossbench("train", "dataset=cifar10_lt", "dataset.subsample=authors", cwd=tmp_path)
    assert_one_line_error(result, "dataset.subsample='authors'", "ldam_drw", "random")


def test_ldam_drw_init_is_kaiming_normal_with_fan_in():
    """Weight statistics against the scheme: std sqrt(2 / fan_in), mean 0; the default keeps fan_out."""
    from lossbench.models import build_model

    torch.manual_seed(0)
    authors, default = build_model("resnet32", 3, 10, init="ldam_drw"), build_model("resnet32", 3, 10)
    convs = [m for m in authors.modules() if isinstance(m, torch.nn.Conv2d)]
    widest = max(convs, key=lambda m: m.weight.numel())  # 64 x 64 x 3 x 3: 36,864 draws
    fan_in = widest.weight[0].numel()
    assert widest.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.03)
    assert abs(widest.weight.mean().item()) < 0.05 * (2 / fan_in) ** 0.5
    first = convs[0]  # 3 -> 16 channels: fan_in 27, fan_out 144
    default_first = [m for m in default.modules() if isinstance(m, torch.nn.Conv2d)][0]
    assert first.weight.std().item() == pytest.approx((2 / 27) ** 0.5, rel=0.15)
    assert default_first.weight.std().item() == pytest.approx((2 / 144) ** 0.5, rel=0.15)
    # the head: 64 -> 10, Kaiming with fan_in 64 (PyTorch's own default has std 1 / sqrt(3 * 64))
    assert authors.head.weight.std().item() == pytest.approx((2 / 64) ** 0.5, rel=0.15)
    assert default.head.weight.std().item() == pytest.approx((1 / (3 * 64)) ** 0.5, rel=0.15)


def test_the_recipe_starts_as_the_authors(tmp_path, cifar10_root):
    """experiment=ldam_drw_cifar10_lt: the authors' images, init and normalisation constants, and LDAM's
    class vectors at norm 1."""
    from lossbench.training.run import build_network

    cfg = compose_train(["experiment=ldam_drw_cifar10_lt", f"paths.data_dir={cifar10_root}", "dataset.download=false"])
    assert cfg.dataset.subsample == "ldam_drw" and cfg.model.init == "ldam_drw"
    data = load_dataset(cfg.dataset, cifar10_root, torch.device("cpu"))
    assert data.mean.tolist() == pytest.approx([0.4914, 0.4822, 0.4465])
    assert data.std.tolist() == pytest.approx([0.2023, 0.1994, 0.2010])
    assert data.preparation == ("long tail: the images LDAM-DRW's code keeps (dataset.subsample=ldam_drw); "
                                "standardised with dataset.mean and dataset.std")
    model, loss_fn, _ = build_network(cfg, data, torch.device("cpu"))
    assert loss_fn.weight.norm(dim=1).tolist() == pytest.approx([1.0] * 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    widest = max(convs, key=lambda m: m.weight.numel())
    assert widest.weight.std().item() == pytest.approx((2 / widest.weight[0].numel()) ** 0.5, rel=0.03)
    # other recipes standardise with the training images' own statistics
    own = load_dataset(compose_train(["dataset=cifar10_lt", f"paths.data_dir={cifar10_root}",
                                      "dataset.download=false"]).dataset, cifar10_root, torch.device("cpu"))
    assert own.mean.tolist() != pytest.approx([0.4914, 0.4822, 0.4465], abs=1e-3)
    drawn = load_dataset(compose_train(["dataset=cifar10_lt", f"paths.data_dir={cifar10_root}", "dataset.download=false",
                                        "dataset.subsample=random", "dataset.subsample_seed=3"]).dataset,
                         cifar10_root, torch.device("cpu"))
    assert drawn.preparation == ("long tail: drawn with dataset.subsample_seed=3; "
                                 "standardised with the training images' own mean and std")


@pytest.mark.parametrize("args, message", [
    (["model.init=xavier"], "model.init='xavier' is invalid"),
    (["dataset=cifar10", "dataset.mean=[0.5,0.5,0.5]"], "dataset.std=None is invalid"),
    (["dataset=cifar10", "dataset.mean=[0.5,2,0.5]", "dataset.std=[0.2,0.2,0.2]"], "dataset.mean=2 is invalid"),
])
def test_bad_init_and_constants_are_refused(tmp_path, args, message):
    from helpers.cli import assert_one_line_error, lossbench

    assert_one_line_error(lossbench("train", *args, cwd=tmp_path), message)
