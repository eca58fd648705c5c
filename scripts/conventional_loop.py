"""The conventional PyTorch training loop that the benchmarks compare
lossbench with, as long-tail codebases write it (LDAM-DRW's ``cifar_train.py``
is the model): torchvision's CIFAR10 with per-sample RandomCrop(32, 4),
RandomHorizontalFlip, ToTensor and Normalize; a DataLoader that shuffles;
a plain step; and after every epoch an evaluation of the test set through a
DataLoader in batches of 100, its accuracy read back per batch.

Run as a script, it trains the reference long-tail recipe's network and loss
on CIFAR-10-LT and prints its timings as JSON, so that a benchmark can time it
end to end as a separate process, as it times ``lossbench train``:

    python scripts/conventional_loop.py DATA_DIR --epochs 2 --workers 2 --imbalance-ratio 100
"""

import argparse
import json
import time
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

EVAL_BATCH = 100
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def cifar10(data_dir, train: bool, augment: bool, keep: np.ndarray | None = None):
    """torchvision's CIFAR10 of ``data_dir`` (no checksum: benchmark files are synthetic), ``keep``'s images only."""
    import torchvision.transforms as T
    from torchvision.datasets import CIFAR10

    class UncheckedCIFAR10(CIFAR10):
        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()] if augment else []
    dataset = UncheckedCIFAR10(str(data_dir), train=train, transform=T.Compose([*steps, T.ToTensor(), T.Normalize(MEAN, STD)]))
    if keep is not None:
        dataset.data, dataset.targets = dataset.data[keep], [dataset.targets[i] for i in keep]
    return dataset


def loader(dataset, batch: int, shuffle: bool, workers: int, device: torch.device):
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_size=batch, shuffle=shuffle, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=workers > 0)


class ConventionalLoop:
    """``model`` (ending in logits, or in embeddings that ``loss_fn.logits`` scores) trained by ``optimizer``."""

    def __init__(self, model, loss_fn, optimizer, precision, device: torch.device, channels_last: bool):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.precision, self.device = precision, device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.to_logits = getattr(loss_fn, "logits", None) if getattr(loss_fn, "inputs", "") == "embeddings" else None

    def _batch(self, images, labels):
        return (images.to(self.device, non_blocking=True, memory_format=self.memory_format),
                labels.to(self.device, non_blocking=True))

    def train_epoch(self, batches) -> float:
        from lossbench.training.device import synchronize

        self.model.train()
        synchronize(self.device)
        start = time.perf_counter()
        for images, labels in batches:
            images, labels = self._batch(images, labels)
            with self.precision.autocast(self.device):
                loss = self.loss_fn(self.model(images), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        synchronize(self.device)
        return time.perf_counter() - start

    def evaluate(self, batches) -> tuple[float, float]:
        """(seconds, accuracy) of one pass over ``batches``."""
        self.model.eval()
        correct = seen = 0
        start = time.perf_counter()
        with torch.no_grad():
            for images, labels in batches:
                images, labels = self._batch(images, labels)
                with self.precision.autocast(self.device):
                    outputs = self.model(images)
                    logits = self.to_logits(outputs) if self.to_logits else outputs
                correct += int((logits.argmax(1) == labels).sum().cpu())
                seen += len(labels)
        return time.perf_counter() - start, correct / max(seen, 1)


def cross_entropy_loop(model, optimizer, precision, device, channels_last) -> ConventionalLoop:
    return ConventionalLoop(model, F.cross_entropy, optimizer, precision, device, channels_last)


def recipe(data_dir: str, epochs: int, workers: int, imbalance_ratio: float, device: torch.device) -> dict:
    """The reference recipe's network (resnet32), loss (LDAM) and optimizer,
    built by lossbench's own builders from its config, trained by this loop in
    the memory layout the authors' script uses (the default, NCHW)."""
    from lossbench.data.long_tail import ldam_drw_indices
    from lossbench.training.compose import compose_train
    from lossbench.training.device import resolve_precision
    from lossbench.training.optim import build_optimizer
    from lossbench.training.run import build_network

    started = time.perf_counter()
    cfg = compose_train(["experiment=ldam_drw_cifar10_lt", "trainer.channels_last=false", f"trainer.device={device}"])
    train_set = cifar10(data_dir, train=True, augment=True)
    labels = np.asarray(train_set.targets)
    # the images lossbench's recipe keeps (the authors' selection), so that both loops train on the same ones
    keep = ldam_drw_indices(labels, 10, imbalance_ratio, "exp")
    counts = np.bincount(labels[keep], minlength=10).tolist()
    train_set = cifar10(data_dir, train=True, augment=True, keep=keep)
    test_set = cifar10(data_dir, train=False, augment=False)
    data = SimpleNamespace(channels=3, num_classes=10, image_size=32, class_counts=counts)
    model, loss_fn, _ = build_network(cfg, data, device)
    optimizer = build_optimizer(list(model.parameters()) + list(loss_fn.parameters()), cfg.optim, device)
    loop = ConventionalLoop(model, loss_fn, optimizer, resolve_precision("auto", device), device, channels_last=False)
    train_batches = loader(train_set, int(cfg.trainer.batch_size), True, workers, device)
    test_batches = loader(test_set, EVAL_BATCH, False, workers, device)
    epochs_run = []
    for _ in range(epochs):
        train_s = loop.train_epoch(train_batches)
        eval_s, accuracy = loop.evaluate(test_batches)
        epochs_run.append({"train_s": train_s, "eval_s": eval_s, "test_acc": accuracy})
    return {"train_images": len(train_set), "test_images": len(test_set), "epochs": epochs_run,
            "in_process_s": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", help="a folder holding cifar-10-batches-py/")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--imbalance-ratio", type=float, default=100)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(json.dumps(recipe(args.data_dir, args.epochs, args.workers, args.imbalance_ratio, torch.device(args.device))))


if __name__ == "__main__":
    main()
