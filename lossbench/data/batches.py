"""Batches drawn from a device-resident split: a permutation on the device,
slicing, augmentation and normalisation there. Nothing crosses to the host.

An epoch is shuffled and augmented in one go at its start (a few large kernels
instead of a dozen small ones per step, which on a GPU would cost more launch
time than a small network's step takes); each step then only slices the epoch
and normalises its batch."""

from collections.abc import Iterator

import torch

from lossbench.data.augment import Normalize, random_crop, random_flip
from lossbench.data.dataset import Split


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

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        device = self.split.labels.device
        images, labels = self.split.images, self.split.labels
        order = None
        if self.sample_weights is not None:
            order = torch.multinomial(self.sample_weights, n, replacement=True, generator=self.generator)
        elif self.shuffle:
            order = torch.randperm(n, device=device, generator=self.generator)
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
