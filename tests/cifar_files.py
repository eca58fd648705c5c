"""CIFAR batch files in the real pickle format, written by the tests themselves
(the real files were pickled by Python 2, so their keys are bytes)."""

import pickle
from pathlib import Path

import numpy as np


def write_cifar10(root: Path, train_per_class: int = 30, test_per_class: int = 10, seed: int = 0) -> Path:
    """<root>/cifar-10-batches-py/ with five training batches, a test batch and the meta file.
    Each class has its own mean intensity, so the images are learnable."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def images_for(labels):
        base = (labels[:, None] * 23 + 20).astype(np.int16)
        noise = rng.integers(-20, 21, size=(len(labels), 3072))
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    train_labels = rng.permutation(np.repeat(np.arange(10), train_per_class))
    test_labels = rng.permutation(np.repeat(np.arange(10), test_per_class))
    for i, part in enumerate(np.array_split(train_labels, 5), start=1):
        _dump(folder / f"data_batch_{i}", {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": part.tolist(),
            b"data": images_for(part),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(len(part))],
        })
    _dump(folder / "test_batch", {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": test_labels.tolist(),
        b"data": images_for(test_labels),
        b"filenames": [f"test_{j}.png".encode() for j in range(len(test_labels))],
    })
    _dump(folder / "batches.meta", {
        b"label_names": [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")],
        b"num_cases_per_batch": len(train_labels) // 5,
        b"num_vis": 3072,
    })
    return folder


def _dump(path: Path, entry: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
