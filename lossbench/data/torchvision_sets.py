"""MNIST, Fashion-MNIST and SVHN, read and downloaded through torchvision's own
dataset classes, in the folders those classes use under ``paths.data_dir``:
``MNIST/raw/`` and ``FashionMNIST/raw/`` (the four IDX files, uncompressed) and
``train_32x32.mat`` / ``test_32x32.mat`` in ``paths.data_dir`` itself for SVHN.

Downloads are checked against torchvision's MD5s. Local files are read as they
are, their structure (image shape and type, label range, matching counts)
validated, as with CIFAR: torchvision's MNIST only checks that its raw files
exist, and its SVHN would refuse any .mat that is not byte for byte the
published one before reading it. With ``dataset.download=false`` that MD5 check
is left out, so a re-saved copy of SVHN reads too; with ``dataset.download=true``
torchvision checks it and downloads again a file that differs.
"""

from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np

from lossbench.errors import UserError, one_line

# what a damaged or foreign file raises inside torchvision's readers: IDX
# headers are checked with asserts, a short IDX body fails a tensor reshape
# (scipy's MatReadError, a bare Exception, is added where scipy is imported)
_READ_ERRORS = (RuntimeError, OSError, ValueError, AssertionError, KeyError, TypeError, IndexError, EOFError, URLError)


def _read_idx(class_name: str, data_dir: Path, train: bool, download: bool):
    import torchvision.datasets

    dataset = getattr(torchvision.datasets, class_name)(str(data_dir), train=train, download=download)
    return dataset.data.numpy()[:, None], dataset.targets.numpy()


def _read_svhn(data_dir: Path, train: bool, download: bool):
    from torchvision.datasets import SVHN

    class LocalSVHN(SVHN):
        """torchvision's SVHN, whose MD5 check of a local file applies only when downloading."""

        def _check_integrity(self) -> bool:
            if download:
                return super()._check_integrity()
            return (Path(self.root) / self.filename).is_file()

    dataset = LocalSVHN(str(data_dir), split="train" if train else "test", download=download)
    return dataset.data, dataset.labels


@dataclass(frozen=True)
class TorchvisionSet:
    title: str
    folder: str  # where torchvision looks, relative to paths.data_dir
    files: tuple[str, ...]
    image_shape: tuple[int, int, int]
    class_name: str  # in torchvision.datasets

    def read_split(self, data_dir: Path, train: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
        if self.class_name == "SVHN":
            return _read_svhn(data_dir, train, download)
        return _read_idx(self.class_name, data_dir, train, download)


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

TORCHVISION_SETS = {
    "mnist": TorchvisionSet("MNIST", "MNIST/raw", _IDX_FILES, (1, 28, 28), "MNIST"),
    "fashion_mnist": TorchvisionSet("Fashion-MNIST", "FashionMNIST/raw", _IDX_FILES, (1, 28, 28), "FashionMNIST"),
    "svhn": TorchvisionSet("SVHN", ".", ("train_32x32.mat", "test_32x32.mat"), (3, 32, 32), "SVHN"),
}


def _read_errors() -> tuple[type[BaseException], ...]:
    from scipy.io.matlab import MatReadError

    return (*_READ_ERRORS, MatReadError)


def _one_line(error: BaseException) -> str:
    reason = getattr(error, "reason", None) if isinstance(error, URLError) else None
    return one_line(reason or error) or type(error).__name__


def _missing(folder: Path, files: tuple[str, ...]) -> list[str]:
    return [name for name in files if not (folder / name).is_file()]


def _checked(source: TorchvisionSet, folder: Path, split: str, images: np.ndarray, labels: np.ndarray, num_classes: int):
    images, labels = np.ascontiguousarray(images), np.asarray(labels)
    where = f"the {source.title} {split} files in {folder}"
    fix = "delete them and set dataset.download=true to download them again, or copy intact ones there"
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != source.image_shape:
        shape = "(N, " + ", ".join(map(str, source.image_shape)) + ")"
        raise UserError(f"{where} hold images of shape {images.shape} and type {images.dtype}, expected {shape} uint8: {fix}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise UserError(f"{where} hold {len(images)} images but {labels.size} labels: {fix}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UserError(f"{where} hold labels in [{labels.min()}, {labels.max()}], expected [0, {num_classes - 1}]: {fix}")
    return images, labels.astype(np.int64)


def load_torchvision_set(name: str, data_dir: Path, download: bool, num_classes: int = 10):
    """(train_images, train_labels, test_images, test_labels) as numpy arrays:
    images (N, C, H, W) uint8, labels (N,) int64."""
    source = TORCHVISION_SETS[name]
    folder = data_dir if source.folder == "." else data_dir / source.folder
    holder = f"{source.folder}/" if source.folder != "." else ", ".join(source.files)
    how = (
        f"copy {', '.join(source.files)} into {folder}, or point paths.data_dir=DIR (or LOSSBENCH_DATA) "
        f"at the directory that holds {holder}"
    )
    missing = _missing(folder, source.files)
    if missing and not download:
        raise UserError(
            f"{source.title} not found: {', '.join(missing)} missing in {folder} (download is off); {how}, "
            f"or set dataset.download=true"
        )
    arrays = []
    for train, split in ((True, "training"), (False, "test")):
        try:
            images, labels = source.read_split(data_dir, train, download)
        except PermissionError as e:
            raise UserError(f"cannot download {source.title} into {folder}: not writable ({e.strerror}); {how}") from None
        except Exception as e:
            if not isinstance(e, _read_errors()):
                raise
            still_missing = _missing(folder, source.files)
            if still_missing:
                raise UserError(
                    f"{source.title} not found in {folder} ({', '.join(still_missing)} missing) and downloading it "
                    f"failed ({_one_line(e)}); {how}"
                ) from None
            if download and "corrupted" in str(e):
                raise UserError(
                    f"the {source.title} {split} file in {folder} failed its MD5 check after downloading; "
                    f"delete it and try again, or {how}"
                ) from None
            raise UserError(
                f"the {source.title} {split} files in {folder} cannot be read ({_one_line(e)}): delete them and set "
                f"dataset.download=true to download them again, or copy intact ones there"
            ) from None
        arrays += _checked(source, folder, split, images, labels, num_classes)
    return tuple(arrays)
