"""Whole epochs of lossbench's loop against a conventional PyTorch loop, and
the reference recipe end to end, each measured against its baseline in the
same run; with a floor, on each device, that no configuration of the model beats.

Table 1, per model: both loops train the same model with the same optimizer
(SGD, fused on CUDA), precision (bf16 autocast on CUDA, fp32 on CPU), memory
format and batch size, on the same synthetic CIFAR-10 written in the real file
format, and evaluate the test set after every epoch:

- lossbench: ``run_training``, the code ``lossbench train`` runs, with its
  defaults for the device (the dataset held on the device, augmented there,
  no host sync per step; evaluation at trainer.eval_batch_size=auto);
- conventional: scripts/conventional_loop.py, torchvision's CIFAR10 with
  per-sample transforms and a DataLoader with 4 workers, evaluating through a
  DataLoader in batches of 100.

An epoch is what a user waits for: training plus evaluation, the median over
the epochs after the first (which pays for worker start-up, cuDNN's autotuning
or compilation). Start-up is the rest of the run's wall time: reading the
data, building the model, writing files.

The floor: the training FLOPs of one image (forward and backward, counted by
torch.utils.flop_counter) at the best rate this device reaches on any of the
model's own convolutions (forward and backward, at the model's batch, in the
faster of the two memory layouts) or on a large matmul, whichever is higher.
Every FLOP of the model is a convolution's or the head's, and none runs faster
than the fastest of them alone, so no configuration of the model trains
faster than the floor.

Table 2 (--recipe-epochs N): the reference long-tail recipe on CIFAR-10-LT at
imbalance 100 (experiment=ldam_drw_cifar10_lt, deferred re-weighting off), each
configuration run as its own process and timed from launch to exit:
lossbench's defaults; lossbench with the CPU settings it had before they were
chosen by device (trainer.channels_last=false trainer.eval_batch_size=1024);
and the conventional loop with the same network, loss and optimizer.

    python scripts/bench_throughput.py                  # CUDA when present, 50k images
    python scripts/bench_throughput.py --device cpu --train-images 2560 --epochs 3
    python scripts/bench_throughput.py --device cpu --models resnet32 --recipe-epochs 2
    python scripts/bench_throughput.py --models resnet32 --compile reduce-overhead
"""

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import warnings

import torch
import torch.nn.functional as F

from lossbench.training.compose import compose_train
from lossbench.training.device import device_name, synchronize
from lossbench.training.fast_defaults import channels_last_choice

# 4 workers on a machine with fewer cores is the point of the comparison
warnings.filterwarnings("ignore", message="This DataLoader will create")

# the batch each model is benchmarked at: the long-tail recipe's 128 for
# resnet32, 512 for the larger networks
BATCH_SIZES = {"resnet32": 128, "resnet18": 512, "fastnet": 512}
CONVENTIONAL_WORKERS = 4
RECIPE = ["experiment=ldam_drw_cifar10_lt", "trainer.drw_epoch=null"]
# lossbench's CPU settings before trainer.channels_last and trainer.eval_batch_size became auto by device
FORMER_CPU_DEFAULTS = ["trainer.channels_last=false", "trainer.eval_batch_size=1024"]


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


def write_data(root: Path, train_images: int, test_images: int | None = None) -> Path:
    """Synthetic CIFAR-10: ``train_images`` training images and ``test_images`` test images (default a fifth, 100 at least)."""
    from synthetic_cifar import write_synthetic_cifar10

    test_per_class = (test_images // 10) if test_images else max(train_images // 50, 10)
    write_synthetic_cifar10(root, train_per_class=train_images // 10, test_per_class=test_per_class)
    return root


def train_overrides(model: str, batch: int, data_dir: Path, device: torch.device, epochs: int, extra=()) -> list[str]:
    return [
        # every image trains: the same images as the conventional loop it is compared with
        "dataset=cifar10", f"paths.data_dir={data_dir}", "dataset.download=false", "dataset.val_fraction=0", f"model={model}",
        f"trainer.batch_size={batch}", f"trainer.epochs={epochs}", "trainer.progress=false", f"trainer.device={device}",
        *extra,
    ]


def epochs_of(run_dir: Path) -> list[dict]:
    """A lossbench run's epochs as metrics.csv times them: training and evaluation seconds."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{"train_s": float(r["epoch_time_s"]), "eval_s": float(r["eval_time_s"])} for r in csv.DictReader(f)]


def timed(epochs: list[dict], wall_s: float) -> dict:
    """Epochs and the run's wall time: start-up is the time outside the epochs' training and evaluation."""
    return {"epochs": epochs, "wall_s": wall_s, "startup_s": wall_s - sum(e["train_s"] + e["eval_s"] for e in epochs)}


def lossbench_run(model: str, batch: int, data_dir: Path, device: torch.device, epochs: int, extra=()) -> dict:
    """``lossbench train``'s own loop, in this process."""
    from lossbench.training.run import run_training

    cfg = compose_train(train_overrides(model, batch, data_dir, device, epochs, extra))
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        run_training(cfg, Path(run_dir))
        wall = time.perf_counter() - start
        return timed(epochs_of(Path(run_dir)), wall)


def lossbench_epoch_times(model: str, batch: int, data_dir: Path, device: torch.device, epochs: int,
                          extra=()) -> list[float]:
    """Seconds per training epoch of ``lossbench train``'s own loop (evaluation excluded)."""
    return [e["train_s"] for e in lossbench_run(model, batch, data_dir, device, epochs, extra)["epochs"]]


def conventional_run(model_name: str, batch: int, data_dir: Path, device: torch.device, epochs: int,
                     workers: int = CONVENTIONAL_WORKERS) -> dict:
    """The conventional loop with cross entropy, in the memory layout lossbench uses on ``device``."""
    from conventional_loop import EVAL_BATCH, cifar10, cross_entropy_loop, loader

    from lossbench.models import build_model
    from lossbench.training.device import resolve_precision
    from lossbench.training.optim import build_optimizer

    start = time.perf_counter()
    cfg = compose_train(train_overrides(model_name, batch, data_dir, device, epochs))
    train_batches = loader(cifar10(data_dir, train=True, augment=True), batch, True, workers, device)
    test_batches = loader(cifar10(data_dir, train=False, augment=False), EVAL_BATCH, False, workers, device)
    # as lossbench's runs set it (and leave it set for what follows in this process)
    torch.backends.cudnn.benchmark = True
    torch.use_deterministic_algorithms(False)
    channels_last = channels_last_choice(cfg.trainer.channels_last, device).value
    model = build_model(model_name, 3, 10).to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    optimizer = build_optimizer(model.parameters(), cfg.optim, device)
    loop = cross_entropy_loop(model, optimizer, resolve_precision("auto", device), device, channels_last)
    run = []
    for _ in range(epochs):
        train_s = loop.train_epoch(train_batches)
        run.append({"train_s": train_s, "eval_s": loop.evaluate(test_batches)[0]})
    return timed(run, time.perf_counter() - start)


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


def convolution_shapes(model_name: str) -> dict[tuple, int]:
    """The model's distinct convolutions on a 32x32 image, (in, out, kernel, stride, padding, groups, bias, size): count."""
    from lossbench.models import build_model

    model, shapes = build_model(model_name, 3, 10), {}

    def record(conv, inputs, _output):
        key = (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.groups,
               conv.bias is not None, inputs[0].shape[-1])
        shapes[key] = shapes.get(key, 0) + 1

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    return shapes


def convolution_flops_per_s(shape: tuple, batch: int, device: torch.device, dtype: torch.dtype, repeats: int = 3) -> float:
    """The best rate of one convolution's forward and backward (input and weight gradients) at ``batch``, in
    either memory layout: its FLOPs (as torch.utils.flop_counter counts them) over the fastest of ``repeats`` runs."""
    from torch.utils.flop_counter import FlopCounterMode

    c_in, c_out, kernel, stride, padding, groups, bias, size = shape
    best = float("inf")
    for layout in (torch.contiguous_format, torch.channels_last):
        conv = torch.nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=bias)
        conv = conv.to(device, memory_format=layout)
        x = torch.randn(batch, c_in, size, size, device=device).to(memory_format=layout).requires_grad_()

        def step():
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                out = conv(x)
            out.backward(torch.ones_like(out))

        step()  # the first call picks and prepares its kernels
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            best = min(best, time.perf_counter() - start)
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / best


def floor_rate(model_name: str, batch: int, device: torch.device, dtype: torch.dtype, matmul_rate: float) -> dict:
    """The highest rate the device reaches on the model's convolutions or a large matmul."""
    rates = {shape: convolution_flops_per_s(shape, batch, device, dtype) for shape in convolution_shapes(model_name)}
    fastest = max(rates, key=rates.get)
    c_in, c_out, kernel, stride, _, _, _, size = fastest
    conv = f"{c_in}->{c_out} {kernel[0]}x{kernel[1]}/{stride[0]} at {size}x{size}"
    if rates[fastest] >= matmul_rate:
        return {"rate": rates[fastest], "by": f"convolution {conv}"}
    return {"rate": matmul_rate, "by": "matmul"}


def steady(values: list[float]) -> float:
    return statistics.median(values[1:] if len(values) > 1 else values)


def row_of(model: str, batch: int, loop: str, run: dict, train_images: int, floor: dict, training_flops: float) -> dict:
    epochs = run["epochs"]
    train_s, eval_s = steady([e["train_s"] for e in epochs]), steady([e["eval_s"] for e in epochs])
    floor_images_per_s = floor["rate"] / training_flops
    return {
        "model": model, "batch": batch, "loop": loop, "train_s": train_s, "eval_s": eval_s,
        "epoch_s": steady([e["train_s"] + e["eval_s"] for e in epochs]),
        "first_epoch_s": epochs[0]["train_s"] + epochs[0]["eval_s"], "startup_s": run["startup_s"],
        "images_per_s": train_images / train_s, "floor_images_per_s": floor_images_per_s, "floor_by": floor["by"],
        "of_floor": train_images / train_s / floor_images_per_s,
    }


def bench(models: list[str], batches: dict[str, int], device: torch.device, train_images: int, epochs: int,
          compile_mode) -> dict:
    from lossbench.training.device import resolve_precision

    precision = resolve_precision("auto", device)
    dtype = precision.autocast_dtype or torch.float32
    matmul = matmul_flops_per_s(device, dtype)
    results = {
        "device": device_label(device), "date": date.today().isoformat(), "torch": torch.__version__,
        "python": sys.version.split()[0], "precision": precision.name, "train_images": train_images,
        "epochs": epochs, "matmul_tflops": matmul / 1e12, "rows": [],
    }
    with tempfile.TemporaryDirectory() as data_root:
        data_dir = write_data(Path(data_root), train_images)
        results["test_images"] = max(train_images // 50, 10) * 10
        for model in models:
            batch = batches[model]
            floor, flops = floor_rate(model, batch, device, dtype, matmul), training_flops_per_image(model)
            loops = [("conventional", conventional_run(model, batch, data_dir, device, epochs)),
                     ("lossbench", lossbench_run(model, batch, data_dir, device, epochs))]
            if compile_mode:
                spelled = str(compile_mode).lower()
                loops.append((f"lossbench compile={spelled}",
                              lossbench_run(model, batch, data_dir, device, epochs, [f"trainer.compile={spelled}"])))
            rows = [row_of(model, batch, loop, run, train_images, floor, flops) for loop, run in loops]
            for row in rows:
                row["vs_conventional"] = rows[0]["epoch_s"] / row["epoch_s"]
            results["rows"] += rows
    return results


def recipe_configurations(device: torch.device, compile_mode) -> list[tuple[str, list[str]]]:
    """(name, the overrides added to the recipe's) of each lossbench configuration timed end to end."""
    configurations = [("lossbench defaults", [])]
    if device.type == "cpu":
        configurations.append(("lossbench, former CPU defaults", FORMER_CPU_DEFAULTS))
    if compile_mode:
        configurations.append((f"lossbench compile={str(compile_mode).lower()}", [f"trainer.compile={str(compile_mode).lower()}"]))
    return configurations


def lossbench_recipe(data_dir: Path, device: torch.device, epochs: int, extra: list[str], out: Path) -> dict:
    """``lossbench train`` on the recipe as a user types it, timed from launch to exit."""
    from bench_concurrent import lossbench_command

    command = [lossbench_command(), "train", *RECIPE, f"trainer.epochs={epochs}", f"paths.data_dir={data_dir}",
               "dataset.download=false", "trainer.progress=false", f"trainer.device={device}", f"hydra.run.dir={out}",
               *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    return {**timed(epochs_of(out), wall), "train_images": sum(summary["class_counts"]),
            "test_images": sum(summary["test_counts"])}


def conventional_recipe(data_dir: Path, device: torch.device, epochs: int, workers: int) -> dict:
    """The conventional loop on the recipe, as its own process, timed from launch to exit."""
    script = Path(__file__).with_name("conventional_loop.py")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), str(data_dir), "--epochs", str(epochs), "--workers", str(workers),
                           "--device", str(device)], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**timed(result["epochs"], wall), "train_images": result["train_images"], "test_images": result["test_images"]}


def bench_recipe(device: torch.device, epochs: int, per_class: int, compile_mode) -> dict:
    from bench_concurrent import available_cores

    workers = min(CONVENTIONAL_WORKERS, available_cores())
    results = {"epochs": epochs, "per_class": per_class, "workers": workers, "rows": []}
    with tempfile.TemporaryDirectory() as root:
        data_dir = write_data(Path(root), 10 * per_class, 2 * per_class if per_class < 5000 else 10000)
        runs = [(name, lossbench_recipe(data_dir, device, epochs, extra, Path(root) / f"run{i}"))
                for i, (name, extra) in enumerate(recipe_configurations(device, compile_mode))]
        runs.append((f"conventional loop ({workers} workers, evaluation batch 100)",
                     conventional_recipe(data_dir, device, epochs, workers)))
    for name, run in runs:
        epochs_run = run["epochs"]
        results["rows"].append({
            "configuration": name, "wall_s": run["wall_s"], "startup_s": run["startup_s"],
            "train_s": [e["train_s"] for e in epochs_run], "eval_s": [e["eval_s"] for e in epochs_run],
            "train_images": run["train_images"], "test_images": run["test_images"],
            "images_per_s": run["train_images"] * len(epochs_run) / sum(e["train_s"] for e in epochs_run),
        })
    baseline = next((r for r in results["rows"] if r["configuration"] == "lossbench, former CPU defaults"),
                    results["rows"][0])
    for row in results["rows"]:
        row["vs_baseline"] = baseline["wall_s"] / row["wall_s"]
    results["baseline"] = baseline["configuration"]
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


def machine_line(device: torch.device) -> str:
    from lossbench.training.device import resolve_precision

    return (f"## {device_label(device)}, {resolve_precision('auto', device).name}, torch {torch.__version__}, "
            f"Python {sys.version.split()[0]}, {date.today().isoformat()}")


def format_table(results: dict) -> str:
    lines = [
        f"{results['train_images']} training and {results['test_images']} test images per epoch, median of epochs 2 to "
        f"{results['epochs']}; matmul rate {results['matmul_tflops']:.3f} TFLOP/s",
        "",
        "| model | batch | loop | train (s) | eval (s) | epoch (s) | first epoch (s) | start-up (s) | vs conventional "
        "| train images/s | floor images/s | of floor | floor set by |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['loop']} | {r['train_s']:.2f} | {r['eval_s']:.2f} | {r['epoch_s']:.2f} | "
            f"{r['first_epoch_s']:.2f} | {r['startup_s']:.2f} | {r['vs_conventional']:.2f}x | {r['images_per_s']:.0f} | "
            f"{r['floor_images_per_s']:.0f} | {r['of_floor']:.1%} | {r['floor_by']} |"
        )
    return "\n".join(lines)


def format_recipe_table(results: dict) -> str:
    first = results["rows"][0]
    lines = [
        f"Reference recipe ({' '.join(RECIPE)}) on CIFAR-10-LT from {results['per_class']} images per class: "
        f"{first['train_images']} training and {first['test_images']} test images, {results['epochs']} epochs, "
        f"each configuration its own process, timed from launch to exit",
        "",
        "| configuration | wall (s) | start-up (s) | train per epoch (s) | eval per epoch (s) | train images/s "
        f"| vs {results['baseline']} |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        per_epoch = lambda values: " / ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {r['configuration']} | {r['wall_s']:.1f} | {r['startup_s']:.1f} | {per_epoch(r['train_s'])} | "
                     f"{per_epoch(r['eval_s'])} | {r['images_per_s']:.0f} | {r['vs_baseline']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--models", nargs="*", choices=sorted(BATCH_SIZES), default=list(BATCH_SIZES),
                        help="the models of table 1 (none: only the recipe table)")
    parser.add_argument("--batch", type=int, default=None,
                        help="one batch for every model (default: 128 for resnet32, 512 for the others)")
    parser.add_argument("--train-images", type=int, default=None, help="default: 50000 on CUDA, 2560 on CPU")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per loop; the first is not counted")
    parser.add_argument("--compile", default="", help="also time trainer.compile=MODE (true, reduce-overhead, max-autotune)")
    parser.add_argument("--recipe-epochs", type=int, default=0,
                        help="also run the reference recipe end to end for this many epochs (default 0: not run)")
    parser.add_argument("--recipe-per-class", type=int, default=5000,
                        help="the training images per class the long tail is cut from (default 5000: CIFAR-10's)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    device = checked_device(parser, args.device)
    batches = {m: checked_batch(parser, args.batch, BATCH_SIZES[m]) for m in args.models}
    train_images = checked_sizes(parser, args, device, 2560, max(batches.values(), default=1))
    compile_mode = checked_compile(parser, args.compile)
    if args.recipe_epochs < 0:
        parser.error(f"--recipe-epochs {args.recipe_epochs} is invalid: give 0 (no recipe table) or more")
    if args.recipe_per_class < 100:
        parser.error(f"--recipe-per-class {args.recipe_per_class} is too few: imbalance 100 needs at least 100")
    if not args.models and not args.recipe_epochs:
        parser.error("--models is empty and --recipe-epochs 0: give a model, or a number of recipe epochs")
    print(machine_line(device) + "\n", flush=True)
    results = {"device": device_label(device), "date": date.today().isoformat(), "torch": torch.__version__,
               "python": sys.version.split()[0]}
    if args.models:
        results |= bench(args.models, batches, device, train_images, args.epochs, compile_mode)
        print(format_table(results), flush=True)
    if args.recipe_epochs:
        results["recipe"] = bench_recipe(device, args.recipe_epochs, args.recipe_per_class, compile_mode)
        print(("\n" if args.models else "") + format_recipe_table(results["recipe"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
