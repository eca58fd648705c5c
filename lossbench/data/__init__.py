"""Datasets held on the training device, and their batches."""

from lossbench.data.batches import DeviceBatches
from lossbench.data.dataset import ImageDataset, Split, load_dataset

__all__ = ["DeviceBatches", "ImageDataset", "Split", "load_dataset"]
