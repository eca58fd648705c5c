"""Aggregate training throughput of several resnet32 runs sharing one device.

A step of resnet32 at batch 128 is too small to keep a large GPU busy, so a
sweep gets more done by running jobs side by side. For each count N this starts
N ``lossbench train`` processes together (as a sweep with
``hydra/launcher=joblib hydra.launcher.n_jobs=N`` does) on the same synthetic
CIFAR-10, and reads each run's metrics.csv. A run's images/s is the median over
its epochs after the first; the aggregate is their sum. The table also gives
the wall time of the N runs together and the speed-up over one run.

    python scripts/bench_concurrent.py                     # CUDA when present: 1 2 4 8 runs
    python scripts/bench_concurrent.py --device cpu --runs 1 2 --train-images 1280 --epochs 3
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lossbench.launch.slots import cores_of_this_process

from bench_throughput import (
    BATCH_SIZES, checked_batch, checked_device, checked_sizes, device_label, steady, train_overrides, write_data,
)

MODEL = "resnet32"


def lossbench_command() -> str:
    return shutil.which("lossbench") or str(Path(sys.executable).with_name("lossbench"))


def available_cores() -> int:
    return len(cores_of_this_process())


def threads_per_run(count: int, device) -> int | None:
    """On a CPU the cores are split between the runs; None: left as the environment says."""
    return max(1, available_cores() // count) if device.type == "cpu" else None


def concurrent_runs(count: int, data_dir: Path, out_dir: Path, device, epochs: int, train_images: int, batch: int) -> dict:
    env = dict(os.environ)
    threads = threads_per_run(count, device)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    processes = []
    start = time.perf_counter()
    for i in range(count):
        run_dir = out_dir / f"{count}-runs" / f"run{i}"
        overrides = train_overrides(MODEL, batch, data_dir, device, epochs, [f"seed={i}", f"hydra.run.dir={run_dir}"])
        processes.append((run_dir, subprocess.Popen([lossbench_command(), "train", *overrides], env=env,
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    per_run = []
    try:
        for run_dir, process in processes:
            _, stderr = process.communicate()
            if process.returncode != 0:
                raise SystemExit(f"a run of {count} failed (exit {process.returncode}):\n{stderr[-2000:]}")
            with open(run_dir / "metrics.csv", newline="") as f:
                times = [float(row["epoch_time_s"]) for row in csv.DictReader(f)]
            per_run.append(train_images / steady(times))
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return {"runs": count, "threads": threads, "per_run_images_per_s": per_run, "aggregate_images_per_s": sum(per_run),
            "wall_s": time.perf_counter() - start}


def format_table(rows: list[dict], device_name: str, train_images: int, epochs: int, batch: int) -> str:
    single = rows[0]["aggregate_images_per_s"] / rows[0]["runs"]
    lines = [
        f"## {device_name}: {MODEL}, batch {batch}, {train_images} images per epoch, {epochs} epochs per run",
        "",
        "| concurrent runs | threads per run | aggregate images/s | images/s per run (mean) | vs one run | wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        mean = r["aggregate_images_per_s"] / r["runs"]
        threads = r["threads"] or os.environ.get("OMP_NUM_THREADS", "default")
        lines.append(f"| {r['runs']} | {threads} | {r['aggregate_images_per_s']:.0f} | {mean:.0f} | "
                     f"{r['aggregate_images_per_s'] / single:.2f}x | {r['wall_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 2, 4, 8], help="how many runs at once, in turn")
    parser.add_argument("--batch", type=int, default=None, help=f"default: {BATCH_SIZES[MODEL]}")
    parser.add_argument("--train-images", type=int, default=None, help="default: 50000 on CUDA, 1280 on CPU")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; the first is not counted")
    args = parser.parse_args()
    device = checked_device(parser, args.device)
    if min(args.runs) < 1:
        parser.error(f"--runs {' '.join(map(str, args.runs))} is invalid: every count must be at least 1")
    batch = checked_batch(parser, args.batch, BATCH_SIZES[MODEL])
    train_images = checked_sizes(parser, args, device, 1280, batch)
    with tempfile.TemporaryDirectory() as work:
        data_dir = write_data(Path(work) / "data", train_images)
        rows = [concurrent_runs(n, data_dir, Path(work), device, args.epochs, train_images, batch) for n in args.runs]
    label = device_label(device) if device.type == "cuda" else f"CPU, {available_cores()} cores"
    print(format_table(rows, label, train_images, args.epochs, batch))


if __name__ == "__main__":
    main()
