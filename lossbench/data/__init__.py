"""Datasets held on the training device or streamed to it, and their batches."""

from lossbench.data.batches import DeviceBatches, StreamedBatches, batches_of
from lossbench.data.dataset import HostSplit, ImageDataset, Split, load_dataset

__all__ = ["DeviceBatches", "HostSplit", "ImageDataset", "Split", "StreamedBatches", "batches_of", "load_dataset"]
