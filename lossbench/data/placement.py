"""Where a dataset lives while it trains: on the training device as one tensor
per split (the fast path: batches are slices of it), or in host memory and its
cache file, read a batch at a time by DataLoader workers (the path for data
larger than the device).

``dataset.on_device=auto`` holds the data on the device when all its splits,
and the copies of the training split that an epoch's shuffle and augmentation
make, take at most half of the memory the device has free: the other half is
left for the model, its activations and the optimizer."""

from __future__ import annotations

import os
from dataclasses import dataclass

ON_DEVICE_CHOICES = ("auto", True, False)
# of the device's free memory, the share the data may take under auto
DEVICE_SHARE = 0.5
# an epoch on the device holds the training split shuffled, padded and cropped
# (and flipped) besides the split itself
EPOCH_COPIES = 3


def bytes_on_device(split_bytes: dict[str, int]) -> int:
    """What holding the splits on the device costs at the peak of an epoch."""
    return sum(split_bytes.values()) + EPOCH_COPIES * split_bytes["train"]


@dataclass(frozen=True)
class Placement:
    on_device: bool
    reason: str  # the sentence the run logs

    @property
    def name(self) -> str:
        return "on_device" if self.on_device else "streamed"


def free_memory(device: torch.device) -> int | None:
    """Bytes free on ``device``: the GPU's free memory, or the host's available
    memory for the CPU; None where the system does not say."""
    if device.type == "cuda":
        import torch  # here only: a command line's checks read ON_DEVICE_CHOICES before anything needs torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def choose_placement(setting, needed: int, device: torch.device, free: int | None = None) -> Placement:
    """``setting`` is dataset.on_device: auto, true or false."""
    where = f"on {device}"
    if setting is True:
        return Placement(True, f"held {where} ({gigabytes(needed)}), as dataset.on_device=true asks")
    if setting is False:
        return Placement(False, f"streamed to {device} by DataLoader workers, as dataset.on_device=false asks")
    free = free_memory(device) if free is None else free
    if free is None:
        return Placement(True, f"held {where} ({gigabytes(needed)}; the free memory is unknown)")
    if needed <= DEVICE_SHARE * free:
        return Placement(True, f"held {where}: {gigabytes(needed)}, within half of the {gigabytes(free)} free")
    return Placement(False, f"streamed to {device} by DataLoader workers: {gigabytes(needed)} is more than half "
                            f"of the {gigabytes(free)} free")


def loader_workers(setting) -> int:
    """dataset.loader_workers: a number, or auto (half the cores, up to 8: the
    other half computes, on a CPU)."""
    if setting != "auto":
        return int(setting)
    return max(1, min(8, (os.cpu_count() or 2) // 2))
