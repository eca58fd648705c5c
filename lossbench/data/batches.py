"""Batches of a split, augmented and normalised on the training device.

DeviceBatches draws from a device-resident split: a permutation on the device,
slicing, augmentation and normalisation there. Nothing crosses to the host. An
epoch is shuffled and augmented in one go at its start (a few large kernels
instead of a dozen small ones per step, which on a GPU would cost more launch
time than a small network's step takes); each step then only slices the epoch
and normalises its batch.

StreamedBatches draws the same order from the same generator, but reads each
batch's rows from host memory or the cache file in DataLoader workers (one
array index per batch, nothing per image), and augments the batch once it is
on the device, with the same operations."""

from collections.abc import Iterator

import numpy as np
import torch

from lossbench.data.augment import Normalize, random_crop, random_flip
from lossbench.data.dataset import HostSplit, Split


class DeviceBatches:
    def __init__(
        self,
        split: Split,
        batch_size: int,
        normalize: Normalize,
        generator: torch.Generator | None = None,
        shuffle: bool = False,
        crop_padding: int = 0,
        flip: bool = False,
        views: int = 1,
        sample_weights: torch.Tensor | None = None,
    ):
        self.split = split
        self.batch_size = batch_size
        self.normalize = normalize
        self.generator = generator
        self.shuffle = shuffle
        self.crop_padding = crop_padding
        self.flip = flip
        self.views = views
        # class-balanced sampling: draw each epoch's indices with these
        # probabilities (with replacement) instead of a permutation
        self.sample_weights = sample_weights
        if (shuffle or crop_padding or flip or sample_weights is not None) and generator is None:
            raise ValueError("random batches need a generator")

    def __len__(self) -> int:
        return -(-len(self.split) // self.batch_size)

    def epoch_order(self) -> torch.Tensor | None:
        """The epoch's draw of positions in the split, on the device; None keeps the split's order."""
        n = len(self.split)
        if self.sample_weights is not None:
            return torch.multinomial(self.sample_weights, n, replacement=True, generator=self.generator)
        if self.shuffle:
            return torch.randperm(n, device=self.split.labels.device, generator=self.generator)
        return None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        images, labels = self.split.images, self.split.labels
        order = self.epoch_order()
        if order is not None:
            images, labels = images[order], labels[order]
        # independent augmentations of the same images, one epoch tensor per view
        views = [self.augment(images) for _ in range(self.views)]
        for start in range(0, n, self.batch_size):
            end = start + self.batch_size
            if self.views == 1:
                yield self.normalize(views[0][start:end]), labels[start:end]
            else:
                # stacked view by view
                batch = torch.cat([view[start:end] for view in views])
                yield self.normalize(batch), labels[start:end].repeat(self.views)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        if self.crop_padding:
            images = random_crop(images, self.crop_padding, self.generator)
        if self.flip:
            images = random_flip(images, self.generator)
        return images


class RowReader(torch.utils.data.Dataset):
    """A host split's images and labels, read a batch of positions at a time."""

    def __init__(self, split: HostSplit):
        # a worker process reopens a cache file rather than receiving a copy of it
        self.path = split.source.filename if isinstance(split.source, np.memmap) else None
        self.source = split.source
        self.rows = split.rows
        self.labels = split.labels.cpu().numpy()

    def __len__(self) -> int:
        return len(self.rows)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.path is not None:
            state["source"] = None
        return state

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.source is None:
            self.source = np.load(self.path, mmap_mode="r")
        positions = np.asarray(positions)
        images = np.ascontiguousarray(self.source[self.rows[positions]])
        return torch.from_numpy(images), torch.from_numpy(self.labels[positions])


class EpochOrder(torch.utils.data.Sampler):
    """Batches of positions from the order set for the epoch."""

    def __init__(self, n: int, batch_size: int):
        self.order = np.arange(n)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.order), self.batch_size):
            yield self.order[start:start + self.batch_size].tolist()


class StreamedBatches(DeviceBatches):
    def __init__(self, split: HostSplit, batch_size: int, normalize: Normalize, workers: int, **random):
        super().__init__(split, batch_size, normalize, **random)
        self.sampler = EpochOrder(len(split), batch_size)
        self.device = split.labels.device
        cuda = self.device.type == "cuda"
        self.loader = torch.utils.data.DataLoader(
            RowReader(split), sampler=self.sampler, batch_size=None, num_workers=workers, pin_memory=cuda,
            persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.epoch_order()
        self.sampler.order = np.arange(len(self.split)) if order is None else order.cpu().numpy()
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            if self.views == 1:
                yield self.normalize(self.augment(images)), labels
            else:
                batch = torch.cat([self.augment(images) for _ in range(self.views)])
                yield self.normalize(batch), labels.repeat(self.views)


def batches_of(split: Split | HostSplit, batch_size: int, normalize: Normalize, workers: int = 0,
               **random) -> DeviceBatches:
    """The batches of ``split``, on the path its placement chose."""
    if isinstance(split, HostSplit):
        return StreamedBatches(split, batch_size, normalize, workers, **random)
    return DeviceBatches(split, batch_size, normalize, **random)
