"""A dataset held as tensors on the training device, built from a dataset config."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lossbench.data.cifar import load_cifar
from lossbench.data.digits import load_digits_split
from lossbench.data.long_tail import long_tail_indices
from lossbench.data.validation_split import validation_indices
from lossbench.errors import UserError

# each source and its number of classes
SOURCES = {"digits": 10, "cifar10": 10, "cifar100": 100}


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
    val: Split | None  # held out of the training set (dataset.val_fraction); None without
    test: Split
    num_classes: int
    class_counts: list[int]  # training images per class, in class order (validation images left out)
    mean: torch.Tensor  # per channel, in [0, 1] units, of the training images
    std: torch.Tensor
    long_tailed: bool

    @property
    def channels(self) -> int:
        return self.train.images.shape[1]


def source_of(name: str) -> str:
    """The data a dataset config reads: ``cifar10_lt`` reads ``cifar10``."""
    source = name.removesuffix("_lt")
    if source not in SOURCES:
        valid = ", ".join(s + suffix for s in SOURCES for suffix in ("", "_lt"))
        raise UserError(f"dataset.name={name!r} is unknown: valid datasets are {valid}")
    return source


def num_classes_of(name: str) -> int:
    return SOURCES[source_of(name)]


def _read_arrays(cfg, data_dir: Path):
    source = source_of(cfg.name)
    if source == "digits":
        return load_digits_split(int(cfg.split_seed))
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
    train_x, train_y, test_x, test_y = _read_arrays(cfg, data_dir)
    num_classes = num_classes_of(str(cfg.name))
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
    fraction = float(cfg.get("val_fraction") or 0)
    val = None
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
        class_counts=np.bincount(train_y, minlength=num_classes).tolist(),
        mean=mean.to(device),
        std=std.to(device),
        long_tailed=ratio > 1,
    )
