"""A CIFAR-10 directory of synthetic images in the real file format: for
benchmarks and tests that must read CIFAR files without downloading them. Each
class has its own mean intensity, so the images are learnable.

The real files were pickled by Python 2, whose keys and names are byte strings
(Python 2 ``str``): read with ``encoding="latin1"`` they come back as ``str``,
with ``encoding="bytes"`` as ``bytes``. Python 3 cannot pickle a value that
way, so a small pickler writes those opcodes itself.
"""

import pickle
import struct
from pathlib import Path

import numpy as np

LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FILES = 5


def write_synthetic_cifar10(root: Path, train_per_class: int = 30, test_per_class: int = 10, seed: int = 0) -> Path:
    """``<root>/cifar-10-batches-py/``: five training batches, a test batch and the meta file."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def images_for(labels: np.ndarray) -> np.ndarray:
        noise = rng.integers(-20, 21, size=(len(labels), 3072), dtype=np.int16)
        return np.clip(noise + (labels[:, None] * 23 + 20).astype(np.int16), 0, 255).astype(np.uint8)

    train_labels = rng.permutation(np.repeat(np.arange(10), train_per_class))
    test_labels = rng.permutation(np.repeat(np.arange(10), test_per_class))
    for i, part in enumerate(np.array_split(train_labels, TRAIN_FILES), start=1):
        _dump(folder / f"data_batch_{i}", {
            b"batch_label": f"training batch {i} of {TRAIN_FILES}".encode(),
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
        b"label_names": [n.encode() for n in LABEL_NAMES],
        b"num_cases_per_batch": len(train_labels) // TRAIN_FILES,
        b"num_vis": 3072,
    })
    return folder


def write_synthetic_cifar100(root: Path, train_per_class: int = 5, test_per_class: int = 2, seed: int = 0) -> Path:
    """``<root>/cifar-100-python/``: the train and test files (fine and coarse labels) and no meta file."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(100), per_class))
        noise = rng.integers(-20, 21, size=(len(labels), 3072), dtype=np.int16)
        images = np.clip(noise + (labels[:, None] * 2 + 20).astype(np.int16), 0, 255).astype(np.uint8)
        _dump(folder / name, {
            b"filenames": [f"{name}_{j}.png".encode() for j in range(len(labels))],
            b"batch_label": f"{name}ing batch 1 of 1".encode(),
            b"fine_labels": labels.tolist(),
            b"coarse_labels": (labels // 5).tolist(),
            b"data": images,
        })
    return folder


class _Py2Str(bytes):
    """A byte string to be pickled as Python 2's ``str``."""


class _Py2Pickler(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: _Py2Str) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + bytes(obj))
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + bytes(obj))
        self.memoize(obj)

    dispatch[_Py2Str] = save_py2_str


def _py2(value):
    if isinstance(value, bytes):
        return _Py2Str(value)
    if isinstance(value, list):
        return [_py2(v) for v in value]
    return value


def _dump(path: Path, entry: dict) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump({_py2(k): _py2(v) for k, v in entry.items()})
