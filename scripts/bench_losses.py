"""Time of every loss relative to cross entropy, two ways.

The loss alone (default): what a training step spends beyond the backbone,
from a batch of embeddings (batch x 128) to the gradient, i.e. a linear head
plus the loss for logit losses, and the loss with its own class weights (and,
for supcon, its projection head) for the margin losses.

The whole step (``--model resnet32``): ``lossbench train``'s own loop with each
loss on synthetic CIFAR-10 (batch 128), its time per step (median over the
epochs after the first) relative to ce's. The loss is tiny next to the network;
what could cost is an extra kernel per step or a host sync. Losses that train
on two views per image (supcon) do twice the network's work per step, and are
compared per image as well.

    python scripts/bench_losses.py                  # CPU, and CUDA when present
    python scripts/bench_losses.py --device cpu --classes 10 100
    python scripts/bench_losses.py --model resnet32 --device cuda
    python scripts/bench_losses.py --model resnet32 --device cpu --train-images 1280 --losses ce focal ldam
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench_throughput import BATCH_SIZES, checked_batch, checked_sizes, device_label, lossbench_epoch_times, steady, write_data

from lossbench.losses.registry import LOSSES, build_loss
from lossbench.models import MODELS
from lossbench.training.device import synchronize

EMBEDDING_DIM = 128


def make_step(name: str, num_classes: int, batch: int, device: torch.device):
    torch.manual_seed(0)
    counts = [max(1, int(5000 * (0.01 ** (c / max(num_classes - 1, 1))))) for c in range(num_classes)]
    knobs = {"k": min(10, num_classes)} if name == "sparse_softmax" else {}
    loss = build_loss(name, num_classes=num_classes, embedding_dim=EMBEDDING_DIM, class_counts=counts, **knobs).to(device)
    head = torch.nn.Linear(EMBEDDING_DIM, num_classes).to(device)
    embeddings = torch.randn(batch * loss.views, EMBEDDING_DIM, device=device, requires_grad=True)
    target = torch.randint(0, num_classes, (batch,), device=device).repeat(loss.views)

    def step():
        if loss.inputs == "embeddings":
            value = loss(embeddings, target)
        elif loss.inputs == "log_probs":
            value = loss(torch.log_softmax(head(embeddings), dim=1), target)
        else:
            value = loss(head(embeddings), target)
        value.backward()

    return step


def time_step(step, device: torch.device, repeats: int, inner: int) -> float:
    """Median seconds per call over ``repeats`` blocks of ``inner`` calls."""
    for _ in range(5):
        step()
    samples = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(inner):
            step()
        synchronize(device)
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def bench(device: torch.device, classes: list[int], batch: int, repeats: int, inner: int) -> None:
    print(f"\n## {device_label(device)}: forward+backward, batch {batch}, embedding {EMBEDDING_DIM}; time relative to ce (same run)\n")
    results = {n: [time_step(make_step(n, k, batch, device), device, repeats, inner) for k in classes] for n in LOSSES}
    header = "| loss | " + " | ".join(f"K={k}" for k in classes) + " |"
    print(header)
    print("|" + "---|" * (len(classes) + 1))
    print("| ce (absolute) | " + " | ".join(f"{t * 1e6:.0f} us" for t in results["ce"]) + " |")
    for name, times in results.items():
        print(f"| {name} | " + " | ".join(f"{t / base:.2f}x" for t, base in zip(times, results["ce"])) + " |")


def bench_training_step(model: str, losses: list[str], device: torch.device, train_images: int, epochs: int,
                        rounds: int, batch: int) -> None:
    steps = -(-train_images // batch)
    with tempfile.TemporaryDirectory() as root:
        data_dir = write_data(Path(root), train_images)
        # rounds over the whole list, each loss keeping its fastest: drifts in the
        # machine's speed then touch every loss alike
        times = {}
        for _ in range(rounds):
            for name in losses:
                seconds = steady(lossbench_epoch_times(model, batch, data_dir, device, epochs, [f"loss={name}"]))
                times[name] = min(times.get(name, seconds), seconds)
    views = {name: LOSSES[name].views for name in losses}
    print(f"\n## {device_label(device)}: lossbench train's step, {model}, batch {batch}, {train_images} images per epoch;"
          f" best of {rounds} rounds; time relative to ce (same run)\n")
    print("| loss | ms per step | vs ce | views | vs ce per image |")
    print("|---|---|---|---|---|")
    base = times["ce"] / steps
    for name, seconds in times.items():
        step = seconds / steps
        print(f"| {name} | {step * 1e3:.2f} | {step / base:.3f}x | {views[name]} | {step / views[name] / base:.3f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--batch", type=int, default=None, help="default: 512 for the loss alone; with --model, the model's own (128 for resnet32)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=10)
    parser.add_argument("--model", choices=sorted(MODELS), help="time lossbench train's whole step with this model (e.g. resnet32)")
    parser.add_argument("--losses", nargs="+", choices=sorted(LOSSES), default=None, help="with --model: these (ce first)")
    parser.add_argument("--train-images", type=int, default=None, help="with --model; default 50000 on CUDA, 1280 on CPU")
    parser.add_argument("--epochs", type=int, default=3, help="with --model; the first is not counted")
    parser.add_argument("--rounds", type=int, default=2, help="with --model: passes over the losses; each keeps its best")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here; use --device cpu")
    if args.model:
        if args.rounds < 1:
            parser.error(f"--rounds {args.rounds} is invalid: give at least 1")
        device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
        losses = ["ce"] + [n for n in (args.losses or LOSSES) if n != "ce"]
        batch = checked_batch(parser, args.batch, BATCH_SIZES.get(args.model, 128))
        images = checked_sizes(parser, args, device, 1280, batch)
        bench_training_step(args.model, losses, device, images, args.epochs, args.rounds, batch)
        return
    devices = []
    if args.device in ("all", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    for device in devices:
        bench(device, args.classes, checked_batch(parser, args.batch, 512), args.repeats, args.inner)


if __name__ == "__main__":
    main()
