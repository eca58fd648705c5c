"""Your own images, measured: decoding into the cache, the start of a run that
finds the cache, and an epoch held on the device against one streamed to it.

It writes a folder of JPEGs in the ImageFolder layout (by default 20,000 64x64
images of 10 classes: 16,000 train / 4,000 test), then prints three tables:

1. decode-and-cache rate in images/s, with one decoding thread (the baseline)
   and with the default threads;
2. the start of a run as a user waits for it: from launching `lossbench train`
   until the data is ready (its "data:" log line), with an empty cache (the
   baseline) and with the cache of that first run;
3. the epoch time (training plus evaluation) of the same runs held on the
   device (the baseline) and streamed with 0 and with the default DataLoader
   workers, each the median over the epochs after the first.

The runs train small_cnn on the images resized to --train-size (16 by
default), so that four runs take minutes on a CPU; the cheaper the step, the
larger the share of an epoch the data path takes, so this is where streaming
costs the most. Their cache is the one of that size: the first run decodes.

    python scripts/bench_own_data.py
    python scripts/bench_own_data.py --images 4000 --epochs 2 --train-size 32
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench_concurrent import lossbench_command
from lossbench.data import image_files
from lossbench.data.placement import loader_workers
from lossbench.training.compose import compose_train

CLASSES = 10
DATA_LINE = re.compile(r"\[lossbench\]\[INFO\] - data: (.*)$")
EPOCH_LINE = re.compile(r"\[lossbench\]\[INFO\] - epoch \d+/\d+: ")


def write_jpegs(root: Path, images: int, size: int) -> None:
    """Noisy images of one bright patch per class, 80% in train/, 20% in test/."""
    rng = np.random.default_rng(0)
    for i in range(images):
        split = "test" if (i // CLASSES) % 5 == 4 else "train"
        label = i % CLASSES
        pixels = rng.integers(0, 120, size=(size, size, 3), dtype=np.uint8)
        row, col = divmod(label, 4)
        step = size // 4
        pixels[row * step:(row + 1) * step, col * step:(col + 1) * step] += 120
        folder = root / split / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i:06d}.jpg", quality=90)


def decode_rate(root: Path, data_dir: Path, size: int, threads: int) -> float:
    """Images per second of decoding the folder into an empty cache."""
    shutil.rmtree(data_dir / "cache", ignore_errors=True)
    cfg = compose_train([f"dataset=image_folder", f"dataset.root={root}", f"dataset.image_size={size}",
                         "trainer.progress=false"]).dataset
    original = image_files.decoding_threads
    image_files.decoding_threads = lambda: threads
    try:
        start = time.perf_counter()
        splits, _ = image_files.load_image_files(cfg, data_dir)
        elapsed = time.perf_counter() - start
    finally:
        image_files.decoding_threads = original
    return sum(len(s.labels) for s in splits.values()) / elapsed


def run(root: Path, data_dir: Path, out: Path, size: int, model: str, epochs: int, batch: int, *overrides: str) -> dict:
    """One `lossbench train`: seconds until its data is ready, the path it took
    and the epoch time as a user waits for it (between two epochs' log lines:
    training, evaluation and the files written)."""
    command = [lossbench_command(), "train", "dataset=image_folder", f"dataset.root={root}",
               f"dataset.image_size={size}", f"model={model}", "trainer=quick", "sched=cosine",
               f"trainer.epochs={epochs}", f"trainer.batch_size={batch}", "trainer.progress=false", f"paths.data_dir={data_dir}",
               f"hydra.run.dir={out}", *overrides]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ready, placement, epoch_ends, lines = None, None, [], []
    for line in process.stdout:
        lines.append(line)
        found = DATA_LINE.search(line.rstrip())
        if found and ready is None:
            ready, placement = time.perf_counter() - start, found.group(1)
        if EPOCH_LINE.search(line):
            epoch_ends.append(time.perf_counter())
    if process.wait() != 0 or len(epoch_ends) < 2:
        raise SystemExit(f"lossbench train failed:\n{''.join(lines[-20:])}")
    return {"ready_s": ready, "placement": placement, "epoch_s": statistics.median(np.diff(epoch_ends))}


def table(title: str, header: tuple, rows: list[tuple]) -> str:
    lines = [f"\n{title}\n", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64, help="the JPEGs' side, and the decoding table's dataset.image_size")
    parser.add_argument("--train-size", type=int, default=16, help="dataset.image_size of the runs")
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--epochs", type=int, default=3, help="at least 2")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--keep", type=Path, help="write the images here and keep them (default: a temporary folder)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_own_data."))
    root = args.keep or work / "images"
    try:
        if not (root / "train").is_dir():
            start = time.perf_counter()
            write_jpegs(root, args.images, args.size)
            print(f"wrote {args.images} {args.size}x{args.size} JPEGs to {root} in {time.perf_counter() - start:.1f} s")
        threads = image_files.decoding_threads()
        one = decode_rate(root, work / "decode", args.size, 1)
        many = decode_rate(root, work / "decode", args.size, threads)
        print(table(f"Decode and cache, {args.images} images", ("decoding threads", "images/s", "ratio"),
                    [(1, f"{one:,.0f}", "1.00 (baseline)"), (threads, f"{many:,.0f}", f"{many / one:.2f}")]))

        data_dir = work / "data"
        first = run(root, data_dir, work / "first", args.train_size, args.model, args.epochs, args.batch, "dataset.on_device=true")
        second = run(root, data_dir, work / "second", args.train_size, args.model, args.epochs, args.batch, "dataset.on_device=true")
        print(table(f"Start of a run at {args.train_size}x{args.train_size}: launch until the data is ready",
                    ("cache", "seconds", "ratio"),
                    [("empty (decodes)", f"{first['ready_s']:.1f}", "1.00 (baseline)"),
                     ("written by the first run", f"{second['ready_s']:.1f}",
                      f"{second['ready_s'] / first['ready_s']:.2f}")]))

        workers = loader_workers("auto")
        streamed = [run(root, data_dir, work / f"streamed{w}", args.train_size, args.model, args.epochs, args.batch,
                        "dataset.on_device=false", f"dataset.loader_workers={w}") for w in (0, workers)]
        rows = [("on the device", "-", f"{second['epoch_s']:.2f}", "1.00 (baseline)")]
        rows += [("streamed", w, f"{s['epoch_s']:.2f}", f"{s['epoch_s'] / second['epoch_s']:.2f}")
                 for w, s in zip((0, workers), streamed)]
        print(table(f"Epoch time, training and evaluation ({args.model} at {args.train_size}x{args.train_size}, "
                    f"median of epochs 2-{args.epochs})",
                    ("data", "loader workers", "seconds", "ratio"), rows))
        print(f"\n{os.cpu_count()} cores; the runs logged: {second['placement']!r}; {streamed[0]['placement']!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
