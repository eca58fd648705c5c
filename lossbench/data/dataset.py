"""A dataset held as tensors on the training device, built from a dataset config."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lossbench.data.cifar import cifar_class_names, load_cifar
from lossbench.data.digits import load_digits_split
from lossbench.data.image_files import FILE_SOURCES, file_class_names, load_image_files
from lossbench.data.long_tail import long_tail_indices
from lossbench.data.torchvision_sets import TORCHVISION_SETS, load_torchvision_set
from lossbench.data.validation_split import validation_indices
from lossbench.errors import UserError

# each source and its number of classes
SOURCES = {"digits": 10, "cifar10": 10, "cifar100": 100, "mnist": 10, "fashion_mnist": 10, "svhn": 10}


@dataclass
class Split:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass
class ImageDataset:
    name: str
    train: Split
    val: Split | None  # given by the files, or held out of the training set (dataset.val_fraction); None without
    test: Split
    num_classes: int
    class_names: list[str]  # in class order
    class_counts: list[int]  # training images per class, in class order (validation images left out)
    mean: torch.Tensor  # per channel, in [0, 1] units, of the training images
    std: torch.Tensor
    long_tailed: bool

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]


def source_of(name: str) -> str:
    """The data a dataset config reads: ``cifar10_lt`` reads ``cifar10``."""
    if name in FILE_SOURCES:
        return name
    source = name.removesuffix("_lt")
    if source not in SOURCES:
        valid = ", ".join([s + suffix for s in SOURCES for suffix in ("", "_lt")] + list(FILE_SOURCES))
        raise UserError(f"dataset.name={name!r} is unknown: valid datasets are {valid}")
    return source


def num_classes_of(name: str) -> int:
    """The classes of a built-in dataset; a dataset of your own files has as
    many as its files name (``num_classes_in``)."""
    return SOURCES[source_of(name)]


def num_classes_in(cfg) -> int:
    """The classes a dataset config will load, known before any image is read."""
    if source_of(str(cfg.name)) in FILE_SOURCES:
        return len(file_class_names(cfg))
    return num_classes_of(str(cfg.name))


def _class_names(source: str, num_classes: int, data_dir: Path | None) -> list[str]:
    if source.startswith("cifar"):
        return cifar_class_names(data_dir, num_classes)
    if source == "fashion_mnist":  # read with torchvision already: its names cost nothing more
        from torchvision.datasets import FashionMNIST

        return list(FashionMNIST.classes)
    return [str(c) for c in range(num_classes)]


def _read_files(cfg, data_dir: Path | None):
    """Your own images: the arrays, the validation split the files give (or
    None) and the class names."""
    splits, class_names = load_image_files(cfg, data_dir)
    val = splits.get("val")
    return (splits["train"].images, splits["train"].labels, splits["test"].images, splits["test"].labels,
            None if val is None else (val.images, val.labels), class_names)


def _read_arrays(cfg, data_dir: Path):
    source = source_of(cfg.name)
    if source == "digits":
        return load_digits_split(int(cfg.split_seed))
    if source in TORCHVISION_SETS:
        return load_torchvision_set(source, data_dir, bool(cfg.download), SOURCES[source])
    return load_cifar(data_dir, SOURCES[source], bool(cfg.download), str(cfg.url), str(cfg.md5))


def _channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(images).float().div_(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean, std


def _split(images: np.ndarray, labels: np.ndarray, device: torch.device) -> Split:
    return Split(torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device))


def load_dataset(cfg, data_dir: Path, device: torch.device) -> ImageDataset:
    """Read, validate, subsample to the configured long tail, hold out the
    validation split and move to ``device``."""
    source = source_of(str(cfg.name))
    given_val = None
    if source in FILE_SOURCES:
        train_x, train_y, test_x, test_y, given_val, class_names = _read_files(cfg, data_dir)
        num_classes = len(class_names)
    else:
        train_x, train_y, test_x, test_y = _read_arrays(cfg, data_dir)
        num_classes = num_classes_of(str(cfg.name))
        class_names = _class_names(source, num_classes, data_dir)
    present = np.unique(train_y)
    if len(present) != num_classes:
        raise UserError(
            f"the {cfg.name} training set has images of {len(present)} classes, expected {num_classes}: "
            f"the data files are incomplete"
        )
    ratio = float(cfg.imbalance_ratio)
    if ratio != 1:
        keep = long_tail_indices(train_y, num_classes, ratio, str(cfg.profile), int(cfg.subsample_seed))
        train_x, train_y = train_x[keep], train_y[keep]
    # files that bring their own validation split are not carved further
    fraction = 0 if given_val is not None else float(cfg.get("val_fraction") or 0)
    val = None if given_val is None else _split(*given_val, device)
    if fraction > 0:
        keep, held = validation_indices(train_y, num_classes, fraction, int(cfg.val_seed))
        val = _split(train_x[held], train_y[held], device)
        train_x, train_y = train_x[keep], train_y[keep]
    mean, std = _channel_stats(train_x)
    return ImageDataset(
        name=str(cfg.name),
        train=_split(train_x, train_y, device),
        val=val,
        test=_split(test_x, test_y, device),
        num_classes=num_classes,
        class_names=class_names,
        class_counts=np.bincount(train_y, minlength=num_classes).tolist(),
        mean=mean.to(device),
        std=std.to(device),
        long_tailed=ratio > 1,
    )
