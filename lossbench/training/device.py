"""Which device and numeric precision a run trains with."""

import contextlib
import logging
from dataclasses import dataclass

import torch

from lossbench.errors import UserError
from lossbench.training.validate import PRECISIONS

# torch.compile modes that replay the compiled code as CUDA graphs
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")

log = logging.getLogger("lossbench")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"trainer.device={name!r} is invalid: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"trainer.device={name!r} asks for CUDA, but no CUDA device is available: use auto or cpu")
    return device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare_compile(mode: str | None, device: torch.device) -> None:
    """Checks and notes for torch.compile in ``mode`` (None: not compiling) on ``device``."""
    import shutil

    if mode is None:
        return
    if device.type == "cpu":
        # inductor builds C++ on the CPU; without a compiler it would fail at the first step
        if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
            raise UserError("trainer.compile on the CPU needs a C++ compiler (g++ or clang++) on the PATH: "
                            "install one, or set trainer.compile=false")
        # that build looks for CUDA even where it will not use it, and says so
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    if mode in CUDA_GRAPH_MODES and device.type != "cuda":
        log.warning("trainer.compile=%s: CUDA graphs need a CUDA device; on %s the forward pass is compiled without them",
                    mode, device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine() or "cpu"


@dataclass(frozen=True)
class Precision:
    name: str  # fp32, bf16 or fp16
    autocast_dtype: torch.dtype | None  # None: no autocast

    @property
    def needs_grad_scaler(self) -> bool:
        # fp16's narrow exponent underflows small gradients; bf16's does not.
        return self.name == "fp16"

    def autocast(self, device: torch.device):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)


def resolve_precision(name: str, device: torch.device) -> Precision:
    if name not in PRECISIONS:
        raise UserError(f"trainer.precision={name!r} is invalid: valid values are {', '.join(PRECISIONS)}")
    if name == "auto":
        name = "bf16" if device.type == "cuda" else "fp32"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
    return Precision(name, dtype)
