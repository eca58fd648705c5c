"""The two settings whose fastest value depends on the device, under ``auto``:
``trainer.channels_last`` (the memory layout of images and convolution
weights) and ``trainer.eval_batch_size``. Neither changes a prediction: the
layout only reorders sums of floats, and an evaluation pass gives each image
the same logits at any batch size.

Each is a fixed rule, not a timed trial at start-up: a trial's winner would
depend on how busy the machine was, and the runs of one sweep should share
their layout. The rules come from the measurements in scripts/performance.md.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("lossbench")

# the evaluation batch on a CUDA device: large enough to keep it busy
CUDA_EVAL_BATCH = 1024
# on a CPU: powers of two in this range, the largest whose biggest activation fits the cache budget
CPU_EVAL_BATCHES = (32, 1024)
# what is assumed where the operating system does not say how large the CPU's caches are
ASSUMED_CACHE_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Choice:
    value: object
    reason: str  # why, in words, for summary.json and the log


def channels_last_choice(setting, device: torch.device) -> Choice:
    """``trainer.channels_last``: under auto, on wherever NHWC convolution
    kernels exist (cuDNN on CUDA, oneDNN on the CPU), which measured faster
    for every model here, training and evaluation alike."""
    if setting != "auto":
        return Choice(bool(setting), f"trainer.channels_last={str(bool(setting)).lower()}")
    if device.type == "cuda":
        return Choice(True, "auto on cuda: cuDNN's NHWC kernels")
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        return Choice(True, "auto on cpu: oneDNN's NHWC kernels")
    return Choice(False, f"auto on {device.type}: no NHWC convolution kernels known there")


def last_level_cache_bytes() -> tuple[int | None, str]:
    """The size of the CPU's last-level cache as the operating system reports it (None: it does not)."""
    sizes = []
    for entry in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            text = (entry / "size").read_text().strip()
        except OSError:
            continue
        units = {"K": 2**10, "M": 2**20, "G": 2**30}
        if text[:-1].isdigit() and text[-1] in units:
            sizes.append(int(text[:-1]) * units[text[-1]])
        elif text.isdigit():
            sizes.append(int(text))
    for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        try:
            sizes.append(int(os.sysconf(name)))
        except (ValueError, OSError, AttributeError):
            pass
    largest = max((s for s in sizes if s > 0), default=None)
    return largest, "" if largest else f"the cache size is not reported: {ASSUMED_CACHE_BYTES // 2**20} MB assumed"


def largest_activation_bytes(model: torch.nn.Module, channels: int, image_size: int, device: torch.device) -> int:
    """The bytes per image of the largest tensor any layer outputs in an
    evaluation pass: what a batch must keep close to the cores."""
    largest = 0

    def measure(_module, _inputs, output):
        nonlocal largest
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                largest = max(largest, tensor[0].numel() * tensor.element_size())

    hooks = [m.register_forward_hook(measure) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            # zeros: no draw from the random generators a run reproduces
            model(torch.zeros(1, channels, image_size, image_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return largest


@dataclass(frozen=True)
class FastSettings:
    """What ``trainer.channels_last`` and ``trainer.eval_batch_size`` came to on this device."""

    channels_last: Choice
    eval_batch_size: Choice

    def record(self) -> dict:
        """summary.json's keys: each value and why it was chosen."""
        return {"channels_last": self.channels_last.value, "channels_last_reason": self.channels_last.reason,
                "eval_batch_size": self.eval_batch_size.value, "eval_batch_size_reason": self.eval_batch_size.reason}

    def describe(self) -> str:
        return (f"channels_last {str(self.channels_last.value).lower()} ({self.channels_last.reason}); "
                f"evaluation batch {self.eval_batch_size.value} ({self.eval_batch_size.reason})")


def fast_settings(trainer_cfg, device: torch.device, model: torch.nn.Module, channels: int,
                  image_size: int) -> FastSettings:
    """Both settings for ``model`` (on ``device``, before its layout is changed) and its images."""
    return FastSettings(channels_last_choice(trainer_cfg.channels_last, device),
                        eval_batch_choice(trainer_cfg.eval_batch_size, device, model, channels, image_size))


def eval_batch_choice(setting, device: torch.device, model: torch.nn.Module, channels: int, image_size: int) -> Choice:
    """``trainer.eval_batch_size``: under auto, 1024 on CUDA; on a CPU, the
    largest power of two (32 to 1024) whose largest activation takes at most
    half of the last-level cache. Beyond that, each layer's output of the
    batch falls out of the cache before the next layer reads it: resnet32's
    evaluation measured 2.7x slower at 1024 than at 128 on a 32 MB cache."""
    if setting != "auto":
        return Choice(int(setting), f"trainer.eval_batch_size={int(setting)}")
    if device.type != "cpu":
        return Choice(CUDA_EVAL_BATCH, f"auto on {device.type}")
    cache, unknown = last_level_cache_bytes()
    budget = (cache or ASSUMED_CACHE_BYTES) // 2
    per_image = max(largest_activation_bytes(model, channels, image_size, device), 1)
    low, high = CPU_EVAL_BATCHES
    batch = low
    while batch * 2 <= high and batch * 2 * per_image <= budget:
        batch *= 2
    mb = 2**20
    reason = (f"auto on cpu: {batch} images' largest activation ({batch * per_image / mb:.1f} MB) within half of "
              f"the {(cache or ASSUMED_CACHE_BYTES) / mb:.0f} MB last-level cache")
    return Choice(batch, f"{reason} ({unknown})" if unknown else reason)
