"""What a dataset config names: the data it reads and how many classes it
has, known from the config alone, before any image is read (and before torch
is imported: the command line's checks use these)."""

from lossbench.data.image_files import FILE_SOURCES, SPLIT_LIST_SOURCES, file_class_names
from lossbench.errors import UserError

# each source and its number of classes
SOURCES = {"digits": 10, "cifar10": 10, "cifar100": 100, "mnist": 10, "fashion_mnist": 10, "svhn": 10}


def source_of(name: str) -> str:
    """The data a dataset config reads: ``cifar10_lt`` reads ``cifar10``."""
    if name in FILE_SOURCES:
        return name
    source = name.removesuffix("_lt")
    if source not in SOURCES:
        valid = ", ".join([s + suffix for s in SOURCES for suffix in ("", "_lt")] + list(FILE_SOURCES))
        raise UserError(f"dataset.name={name!r} is unknown: valid datasets are {valid}")
    return source


def num_classes_of(name: str) -> int:
    """The classes of a built-in dataset; a dataset of your own files has as
    many as its files name (``num_classes_in``)."""
    return SOURCES[source_of(name)]


def num_classes_in(cfg) -> int:
    """The classes a dataset config will load, known before any image is read."""
    if source_of(str(cfg.name)) in FILE_SOURCES:
        return len(file_class_names(cfg))
    return num_classes_of(str(cfg.name))


def reports_groups(name: str, imbalance_ratio: float) -> bool:
    """Whether a dataset's head, medium and tail classes are reported: a long
    tail subsampled here, or ImageNet-LT's and Places-LT's lists, long-tailed as given."""
    return imbalance_ratio > 1 or name in SPLIT_LIST_SOURCES
