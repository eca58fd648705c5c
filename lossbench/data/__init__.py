"""Datasets held on the training device or streamed to it, and their batches.

The names below are imported when first used: the command line's checks read
this package's torch-free modules (sources, long_tail, image_files) and must
not wait for torch."""

import importlib

_MODULE_OF = {
    "DeviceBatches": "batches", "StreamedBatches": "batches", "batches_of": "batches",
    "HostSplit": "dataset", "ImageDataset": "dataset", "Split": "dataset", "load_dataset": "dataset",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
