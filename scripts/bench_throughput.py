"""Training throughput of lossbench's loop against a conventional PyTorch
pipeline, and against the device's FLOP floor, measured in one run.

Both loops train the same model with the same optimizer (SGD, fused on CUDA),
precision (bf16 autocast on CUDA, fp32 on CPU), memory format and batch size,
on the same synthetic CIFAR-10 written in the real file format:

- lossbench: ``run_training``, the code ``lossbench train`` runs (the dataset
  held on the device, augmented there, no host sync per step);
- conventional: torchvision's CIFAR10 with per-sample RandomCrop, flip,
  ToTensor and Normalize, a DataLoader with 4 workers (pinned memory on CUDA),
  and a plain step. It sums nothing on the host per step, so what differs is
  the input pipeline and the per-step work around the model.

Each figure is the median over the epochs after the first (which pays for
worker start-up, cuDNN's autotuning or compilation). The floor is what the
device would reach if training ran at the rate of a large matmul of the same
precision timed in this run: floor images/s = matmul FLOP/s / training FLOPs
per image (forward and backward, counted by torch.utils.flop_counter).

    python scripts/bench_throughput.py                  # CUDA when present, 50k images
    python scripts/bench_throughput.py --device cpu --train-images 2560 --epochs 3
    python scripts/bench_throughput.py --models resnet32 --compile reduce-overhead
"""

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import warnings

import torch
import torch.nn.functional as F

from lossbench.training.compose import compose_train
from lossbench.training.device import device_name, resolve_channels_last, synchronize

# 4 workers on a machine with fewer cores is the point of the comparison
warnings.filterwarnings("ignore", message="This DataLoader will create")

# the batch each model is benchmarked at: the long-tail recipe's 128 for
# resnet32, 512 for the larger networks
BATCH_SIZES = {"resnet32": 128, "resnet18": 512, "fastnet": 512}
CONVENTIONAL_WORKERS = 4


def checked_device(parser: argparse.ArgumentParser, name: str) -> torch.device:
    from lossbench.errors import UserError
    from lossbench.training.device import resolve_device

    try:
        return resolve_device(name)
    except UserError as e:
        parser.error(str(e).replace("trainer.device=", "--device "))


def checked_batch(parser: argparse.ArgumentParser, given: int | None, default: int) -> int:
    """--batch when given, after checking it; else ``default``."""
    if given is None:
        return default
    if given < 1:
        parser.error(f"--batch {given} is invalid: give at least 1")
    return given


def checked_sizes(parser: argparse.ArgumentParser, args, device: torch.device, cpu_default: int, batch: int) -> int:
    """The number of training images (ten equal classes), after checking it and --epochs."""
    if args.epochs < 2:
        parser.error(f"--epochs {args.epochs} is too few: the first epoch (start-up, compilation) is not counted, "
                     f"so give at least 2")
    given = args.train_images or (50000 if device.type == "cuda" else cpu_default)
    if 10 * (given // 10) < batch:
        parser.error(f"--train-images {given} is fewer than the batch ({batch}): give at least {10 * -(-batch // 10)}")
    return 10 * (given // 10)


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def write_data(root: Path, train_images: int) -> Path:
    """Synthetic CIFAR-10 with ``train_images`` training images and a fifth as many test images (100 at least)."""
    from synthetic_cifar import write_synthetic_cifar10

    write_synthetic_cifar10(root, train_per_class=train_images // 10, test_per_class=max(train_images // 50, 10))
    return root


def train_overrides(model: str, batch: int, data_dir: Path, device: torch.device, epochs: int, extra=()) -> list[str]:
    return [
        # every image trains: the same images as the conventional loop it is compared with
        "dataset=cifar10", f"paths.data_dir={data_dir}", "dataset.download=false", "dataset.val_fraction=0", f"model={model}",
        f"trainer.batch_size={batch}", f"trainer.epochs={epochs}", "trainer.progress=false", f"trainer.device={device}",
        *extra,
    ]


def lossbench_epoch_times(model: str, batch: int, data_dir: Path, device: torch.device, epochs: int,
                          extra=()) -> list[float]:
    """Seconds per training epoch of ``lossbench train``'s own loop, as its metrics.csv records them."""
    from lossbench.training.run import run_training

    cfg = compose_train(train_overrides(model, batch, data_dir, device, epochs, extra))
    with tempfile.TemporaryDirectory() as run_dir:
        run_training(cfg, Path(run_dir))
        with open(Path(run_dir) / "metrics.csv", newline="") as f:
            return [float(row["epoch_time_s"]) for row in csv.DictReader(f)]


def conventional_epoch_times(model_name: str, batch: int, data_dir: Path, device: torch.device, epochs: int,
                             workers: int = CONVENTIONAL_WORKERS) -> list[float]:
    """Seconds per training epoch of the usual torchvision + DataLoader pipeline."""
    import torchvision.transforms as T
    from torch.utils.data import DataLoader
    from torchvision.datasets import CIFAR10

    from lossbench.models import build_model
    from lossbench.training.device import resolve_precision
    from lossbench.training.optim import build_optimizer

    class SyntheticCIFAR10(CIFAR10):
        # torchvision checks every file against the real CIFAR-10's MD5; these are synthetic
        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    cfg = compose_train(train_overrides(model_name, batch, data_dir, device, epochs))
    transform = T.Compose([
        T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
        T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ])
    loader = DataLoader(
        SyntheticCIFAR10(str(data_dir), train=True, transform=transform), batch_size=batch, shuffle=True,
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
    )
    # as lossbench's runs set it (and leave it set for what follows in this process)
    torch.backends.cudnn.benchmark = True
    torch.use_deterministic_algorithms(False)
    memory_format = torch.channels_last if resolve_channels_last(cfg.trainer.channels_last, device) else torch.contiguous_format
    model = build_model(model_name, 3, 10).to(device, memory_format=memory_format)
    optimizer = build_optimizer(model.parameters(), cfg.optim, device)
    precision = resolve_precision("auto", device)
    times = []
    for _ in range(epochs):
        model.train()
        synchronize(device)
        start = time.perf_counter()
        for images, labels in loader:
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            with precision.autocast(device):
                loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def training_flops_per_image(model_name: str, images: int = 4) -> float:
    """Forward and backward FLOPs of one 32x32 image (a count, so the device does not matter)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lossbench.models import build_model

    model = build_model(model_name, 3, 10)
    x, y = torch.randn(images, 3, 32, 32), torch.randint(0, 10, (images,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / images


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype, repeats: int = 10) -> float:
    """The rate of a large square matmul in ``dtype``: what dense compute reaches on this device."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def steady(times: list[float]) -> float:
    return statistics.median(times[1:] if len(times) > 1 else times)


def bench(models: list[str], batches: dict[str, int], device: torch.device, train_images: int, epochs: int,
          compile_mode) -> dict:
    from lossbench.training.device import resolve_precision

    precision = resolve_precision("auto", device)
    dtype = precision.autocast_dtype or torch.float32
    rate = matmul_flops_per_s(device, dtype)
    results = {
        "device": device_label(device), "date": date.today().isoformat(), "torch": torch.__version__,
        "python": sys.version.split()[0], "precision": precision.name, "train_images": train_images,
        "epochs": epochs, "matmul_tflops": rate / 1e12, "rows": [],
    }
    with tempfile.TemporaryDirectory() as data_root:
        data_dir = write_data(Path(data_root), train_images)
        for model in models:
            batch = batches[model]
            floor = rate / training_flops_per_image(model)
            loops = [("conventional", conventional_epoch_times(model, batch, data_dir, device, epochs)),
                     ("lossbench", lossbench_epoch_times(model, batch, data_dir, device, epochs))]
            if compile_mode:
                spelled = str(compile_mode).lower()
                loops.append((f"lossbench compile={spelled}",
                              lossbench_epoch_times(model, batch, data_dir, device, epochs, [f"trainer.compile={spelled}"])))
            conventional = train_images / steady(loops[0][1])
            for loop, times in loops:
                images_per_s = train_images / steady(times)
                results["rows"].append({
                    "model": model, "batch": batch, "loop": loop, "images_per_s": images_per_s,
                    "epoch_s": steady(times), "first_epoch_s": times[0], "vs_conventional": images_per_s / conventional,
                    "floor_images_per_s": floor, "of_floor": images_per_s / floor,
                })
    return results


def checked_compile(parser: argparse.ArgumentParser, value: str):
    """--compile as trainer.compile takes it; "" or false: not timed."""
    from lossbench.errors import UserError
    from lossbench.training.validate import compile_mode

    value = {"true": True, "false": False, "": False}.get(value.lower(), value)
    try:
        compile_mode(value)
    except UserError as e:
        parser.error(str(e).replace("trainer.compile=", "--compile "))
    return value


def format_table(results: dict) -> str:
    lines = [
        f"## {results['device']}, {results['precision']}, torch {results['torch']}, {results['date']}",
        "",
        f"{results['train_images']} training images per epoch, median of epochs 2 to {results['epochs']}; "
        f"matmul rate {results['matmul_tflops']:.2f} TFLOP/s",
        "",
        "| model | batch | loop | images/s | epoch (s) | first epoch (s) | vs conventional | floor images/s | of floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['loop']} | {r['images_per_s']:.0f} | {r['epoch_s']:.2f} | "
            f"{r['first_epoch_s']:.2f} | {r['vs_conventional']:.2f}x | {r['floor_images_per_s']:.0f} | {r['of_floor']:.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--models", nargs="+", choices=sorted(BATCH_SIZES), default=list(BATCH_SIZES))
    parser.add_argument("--batch", type=int, default=None,
                        help="one batch for every model (default: 128 for resnet32, 512 for the others)")
    parser.add_argument("--train-images", type=int, default=None, help="default: 50000 on CUDA, 2560 on CPU")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop; the first is not counted")
    parser.add_argument("--compile", default="", help="also time trainer.compile=MODE (true, reduce-overhead, max-autotune)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = checked_device(parser, args.device)
    batches = {m: checked_batch(parser, args.batch, BATCH_SIZES[m]) for m in args.models}
    train_images = checked_sizes(parser, args, device, 2560, max(batches.values()))
    compile_mode = checked_compile(parser, args.compile)
    results = bench(args.models, batches, device, train_images, args.epochs, compile_mode)
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
