"""A dataset built from a dataset config: held as tensors on the training
device, or left in host memory and its cache file and streamed (placement.py)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lossbench.data.cifar import cifar_class_names, load_cifar
from lossbench.data.digits import load_digits_split
from lossbench.data.image_files import FILE_SOURCES, DecodedSplit, load_image_files
from lossbench.data.long_tail import ldam_drw_indices, long_tail_indices
from lossbench.data.placement import Placement, bytes_on_device, choose_placement
from lossbench.data.sources import SOURCES, reports_groups, source_of
from lossbench.data.torchvision_sets import TORCHVISION_SETS, load_torchvision_set
from lossbench.data.validation_split import validation_indices
from lossbench.errors import UserError

@dataclass
class Split:
    """A split on the training device."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


@dataclass
class HostSplit:
    """A split left where it was read: some rows of a host array, or of a
    cache file's memmap, read a batch at a time."""

    source: np.ndarray  # (M, C, H, W) uint8, an array or a np.memmap
    rows: np.ndarray  # (N,) the rows of source in this split
    labels: torch.Tensor  # (N,) int64, on the training device

    def __len__(self) -> int:
        return self.labels.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.source.shape[1:])


@dataclass
class ImageDataset:
    name: str
    train: Split | HostSplit
    val: Split | HostSplit | None  # given by the files, or held out of the training set (dataset.val_fraction); None without
    test: Split | HostSplit
    num_classes: int
    class_names: list[str]  # in class order
    class_counts: list[int]  # training images per class, in class order (validation images left out)
    mean: torch.Tensor  # per channel, in [0, 1] units, of the training images
    std: torch.Tensor
    long_tailed: bool
    placement: Placement
    # the training images kept (after the long tail, before the validation split), as indices into the
    # training files in the order kept, and those of them held out for validation
    kept: np.ndarray
    kept_labels: np.ndarray
    held_out: np.ndarray
    preparation: str  # which images were kept and how they are standardised, in words for the log

    @property
    def channels(self) -> int:
        return self.train.image_shape[0]

    @property
    def image_size(self) -> int:
        return self.train.image_shape[-1]


def _class_names(source: str, num_classes: int, data_dir: Path | None) -> list[str]:
    if source.startswith("cifar"):
        return cifar_class_names(data_dir, num_classes)
    if source == "fashion_mnist":  # read with torchvision already: its names cost nothing more
        from torchvision.datasets import FashionMNIST

        return list(FashionMNIST.classes)
    return [str(c) for c in range(num_classes)]


def _read(cfg, data_dir: Path | None) -> tuple[dict[str, DecodedSplit], list[str]]:
    """The splits as read (train, test, and val where the files give one) and the class names."""
    source = source_of(str(cfg.name))
    if source in FILE_SOURCES:
        return load_image_files(cfg, data_dir)
    if source == "digits":
        arrays = load_digits_split(int(cfg.split_seed))
    elif source in TORCHVISION_SETS:
        arrays = load_torchvision_set(source, data_dir, bool(cfg.download), SOURCES[source])
    else:
        arrays = load_cifar(data_dir, SOURCES[source], bool(cfg.download), str(cfg.url), str(cfg.md5))
    train_x, train_y, test_x, test_y = arrays
    return ({"train": DecodedSplit(train_x, train_y), "test": DecodedSplit(test_x, test_y)},
            _class_names(source, SOURCES[source], data_dir))


# pixels per chunk of the channel statistics (64 MB as float32)
STATS_CHUNK_PIXELS = 2**24


def channel_stats(images: np.ndarray, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (in [0, 1] units) of ``images[rows]``, a chunk
    of images at a time so that a split larger than memory is never held whole."""
    per_image = int(np.prod(images.shape[2:]))
    chunk = max(1, STATS_CHUNK_PIXELS // per_image)
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for first in range(0, len(rows), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[rows[first:first + chunk]])).float().div_(255.0)
        total += x.sum(dim=(0, 2, 3), dtype=torch.float64)
        squares += x.square().sum(dim=(0, 2, 3), dtype=torch.float64)
    n = len(rows) * per_image
    mean = total / n
    std = ((squares - n * mean.square()) / max(n - 1, 1)).clamp_min(0).sqrt()
    return mean.float(), std.float().clamp_min(1e-3)


def _given_stats(cfg, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """dataset.mean and dataset.std as given, one value per channel of the images."""
    for key in ("mean", "std"):
        if len(cfg[key]) != channels:
            raise UserError(f"dataset.{key}={list(cfg[key])} has {len(cfg[key])} values: the images have {channels} "
                            f"channels, give one value per channel")
    return torch.tensor(list(cfg.mean), dtype=torch.float32), torch.tensor(list(cfg.std), dtype=torch.float32)


def _place(read: DecodedSplit, rows: np.ndarray, device: torch.device, on_device: bool) -> Split | HostSplit:
    labels = torch.from_numpy(np.ascontiguousarray(read.labels[rows])).to(device)
    if on_device:
        return Split(torch.from_numpy(np.ascontiguousarray(read.images[rows])).to(device), labels)
    return HostSplit(read.images, rows, labels)


def load_dataset(cfg, data_dir: Path, device: torch.device, free_memory: int | None = None) -> ImageDataset:
    """Read, validate, subsample to the configured long tail, hold out the
    validation split and place on ``device`` or leave to be streamed there
    (``free_memory``: the device's free bytes, where the caller knows better)."""
    read, class_names = _read(cfg, data_dir)
    num_classes = len(class_names)
    train = read["train"]
    present = np.unique(train.labels)
    if len(present) != num_classes:
        raise UserError(
            f"the {cfg.name} training set has images of {len(present)} classes, expected {num_classes}: "
            f"the data files are incomplete"
        )
    # the splits as rows of what was read: nothing is copied until placed
    rows = {split: np.arange(len(decoded.labels)) for split, decoded in read.items()}
    ratio = float(cfg.imbalance_ratio)
    if ratio != 1 and cfg.get("subsample") == "ldam_drw":
        rows["train"] = ldam_drw_indices(train.labels, num_classes, ratio, str(cfg.profile))
    elif ratio != 1:
        rows["train"] = long_tail_indices(train.labels, num_classes, ratio, str(cfg.profile), int(cfg.subsample_seed))
    kept = rows["train"]
    # files that bring their own validation split are not carved further
    fraction = 0 if "val" in read else float(cfg.get("val_fraction") or 0)
    if fraction > 0:
        keep, held = validation_indices(train.labels[rows["train"]], num_classes, fraction, int(cfg.val_seed))
        read["val"] = train
        rows["val"], rows["train"] = rows["train"][held], rows["train"][keep]
    if cfg.get("mean") is not None:
        mean, std = _given_stats(cfg, train.images.shape[1])
    else:
        mean, std = channel_stats(train.images, rows["train"])
    preparation = [] if ratio == 1 else [
        "long tail: the images LDAM-DRW's code keeps (dataset.subsample=ldam_drw)" if cfg.get("subsample") == "ldam_drw"
        else f"long tail: drawn with dataset.subsample_seed={int(cfg.subsample_seed)}"]
    preparation.append("standardised with dataset.mean and dataset.std" if cfg.get("mean") is not None
                       else "standardised with the training images' own mean and std")
    needed = bytes_on_device({split: len(r) * int(np.prod(read[split].images.shape[1:])) for split, r in rows.items()})
    placement = choose_placement(cfg.on_device, needed, device, free_memory)
    splits = {split: _place(read[split], r, device, placement.on_device) for split, r in rows.items()}
    train_labels = train.labels[rows["train"]]
    return ImageDataset(
        name=str(cfg.name),
        train=splits["train"],
        val=splits.get("val"),
        test=splits["test"],
        num_classes=num_classes,
        class_names=class_names,
        class_counts=np.bincount(train_labels, minlength=num_classes).tolist(),
        mean=mean.to(device),
        std=std.to(device),
        long_tailed=reports_groups(str(cfg.name), ratio),
        placement=placement,
        kept=kept,
        kept_labels=train.labels[kept],
        held_out=rows["val"] if fraction > 0 else np.empty(0, dtype=np.int64),
        preparation="; ".join(preparation),
    )
