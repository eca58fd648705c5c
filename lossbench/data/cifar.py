"""CIFAR-10 and CIFAR-100 in their python pickle format (Krizhevsky 2009), in
torchvision's layout: ``<data_dir>/cifar-10-batches-py/`` and
``<data_dir>/cifar-100-python/``.

The archive's MD5 is verified when it is downloaded; the structure of every
batch file (keys, array shape and type, label range, matching counts) is
validated at every load, so a truncated or foreign file is named instead of
surfacing later as a shape error.
"""

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lossbench.errors import UserError

IMAGE_SHAPE = (3, 32, 32)
CIFAR10_CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class CifarLayout:
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str


LAYOUTS = {
    10: CifarLayout("CIFAR-10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels"),
    100: CifarLayout("CIFAR-100", "cifar-100-python", ("train",), ("test",), "fine_labels"),
}


def _fix_hint(layout: CifarLayout) -> str:
    return (
        f"delete it and run again to re-download, or copy an intact {layout.folder}/ from the "
        f"python version of {layout.title} there"
    )


def read_batch_file(path: Path, layout: CifarLayout, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one batch file, validated."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise UserError(f"{path} is corrupt or truncated (cannot unpickle: {e or type(e).__name__}): {_fix_hint(layout)}") from None
    if not isinstance(entry, dict):
        raise UserError(f"{path} is not a CIFAR batch (a {type(entry).__name__}, not a dict): {_fix_hint(layout)}")
    # The original files were pickled by Python 2; their keys may arrive as bytes.
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    missing = [k for k in ("data", layout.label_key) if k not in entry]
    if missing:
        raise UserError(f"{path} is not a {layout.title} batch (no {' or '.join(missing)} entry): {_fix_hint(layout)}")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry[layout.label_key])
    pixels = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        raise UserError(
            f"{path} has images of shape {data.shape} and type {data.dtype}, expected (N, {pixels}) uint8: {_fix_hint(layout)}"
        )
    if labels.ndim != 1 or len(labels) != len(data):
        raise UserError(f"{path} has {len(data)} images but {labels.size} labels: {_fix_hint(layout)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(
            f"{path} has labels in [{labels.min()}, {labels.max()}], expected [0, {num_classes - 1}]: {_fix_hint(layout)}"
        )
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def _read_split(folder: Path, files: tuple[str, ...], layout: CifarLayout, num_classes: int):
    parts = [read_batch_file(folder / name, layout, num_classes) for name in files]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _download(layout: CifarLayout, data_dir: Path, url: str, md5: str, missing: list[str]) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    where = data_dir / layout.folder
    how = (
        f"copy the python version of {layout.title} (extracted) to {where}, "
        f"or point paths.data_dir=DIR (or LOSSBENCH_DATA) at the directory that holds {layout.folder}/"
    )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(url, download_root=str(data_dir), md5=md5)
    except PermissionError as e:
        raise UserError(f"cannot download {layout.title} into {data_dir}: not writable ({e.strerror}); {how}") from None
    except RuntimeError as e:
        if "corrupted" in str(e):
            raise UserError(
                f"the {layout.title} archive downloaded from {url} failed its MD5 check (expected {md5}); "
                f"delete it from {data_dir} and try again, or {how}"
            ) from None
        raise UserError(f"{layout.title} not found in {where} and downloading {url} failed ({e}); {how}") from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise UserError(
            f"{layout.title} not found in {where} ({', '.join(missing)} missing) and downloading {url} failed "
            f"({reason}); {how}"
        ) from None


def load_cifar(data_dir: Path, num_classes: int, download: bool, url: str, md5: str):
    """(train_images, train_labels, test_images, test_labels) as numpy arrays."""
    if num_classes not in LAYOUTS:
        raise UserError(f"dataset.num_classes={num_classes} is not a CIFAR variant: valid values are 10 and 100")
    layout = LAYOUTS[num_classes]
    folder = data_dir / layout.folder
    missing = [name for name in layout.train_files + layout.test_files if not (folder / name).is_file()]
    if missing:
        if not download:
            raise UserError(
                f"{layout.title} not found: {', '.join(missing)} missing in {folder} (download is off); copy the "
                f"python version of {layout.title} there, point paths.data_dir=DIR (or LOSSBENCH_DATA) at the "
                f"directory that holds {layout.folder}/, or set dataset.download=true"
            )
        _download(layout, data_dir, url, md5, missing)
    train = _read_split(folder, layout.train_files, layout, num_classes)
    test = _read_split(folder, layout.test_files, layout, num_classes)
    return (*train, *test)


def cifar_class_names(data_dir: Path, num_classes: int) -> list[str]:
    """CIFAR-10's class names; CIFAR-100's as its ``meta`` file lists them, or
    the class numbers where that file is missing or unreadable (the names only
    label outputs)."""
    if num_classes == 10:
        return list(CIFAR10_CLASS_NAMES)
    try:
        with open(data_dir / LAYOUTS[num_classes].folder / "meta", "rb") as f:
            names = pickle.load(f, encoding="latin1")["fine_label_names"]
        if len(names) == num_classes and all(isinstance(n, str) for n in names):
            return list(names)
    except Exception:  # noqa: BLE001 - any unreadable meta file falls back to numbers
        pass
    return [str(c) for c in range(num_classes)]
