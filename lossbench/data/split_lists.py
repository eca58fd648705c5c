"""ImageNet-LT and Places-LT (Liu et al., "Large-Scale Long-Tailed Recognition
in an Open World", CVPR 2019) over the user's own copy of ImageNet or Places365.

Each benchmark is three split lists, ``<Prefix>_train.txt``, ``_val.txt`` and
``_test.txt``, one image per line: ``<path relative to the image root> <label>``,
e.g. ``train/n01440764/n01440764_190.JPEG 0``. The training list is long-tailed
already; the validation and test lists are balanced. A class is named by its
images' folder in the training list (a WordNet id for ImageNet, a scene category
for Places) and the classes are in label order.

Nothing here decodes an image: the listing is a ``FileListing`` that
``image_files`` decodes and caches as it does for the other file datasets.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lossbench.checks import check_number
from lossbench.data.image_files import SPLIT_LIST_SOURCES, FileListing, ImageFile
from lossbench.errors import UserError

LIST_SPLITS = ("train", "val", "test")
LISTS_FROM = ("the Google Drive folder linked from the README of github.com/zhmiao/OpenLongTailRecognition-OLTR "
              "(Data Preparation)")
LINE_FORMAT = "<image path relative to dataset.root> <integer label>"


def _joined(names: list[str], word: str) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {word} {names[-1]}"


def _last_folder(folders: tuple[str, ...]) -> str:
    """ImageNet: ``train/n01440764/x.JPEG`` is class ``n01440764``."""
    return folders[-1]


def _places_category(folders: tuple[str, ...]) -> str:
    """Places365: the category under its first-letter folder where the layout
    has one (``data_256/b/basketball_court/indoor/x.jpg``: ``basketball_court/indoor``),
    else the image's folder (``train/basketball_court-indoor/x.jpg``)."""
    for i, part in enumerate(folders[:-1]):
        if len(part) == 1 and folders[i + 1].startswith(part):
            return "/".join(folders[i + 1:])
    return folders[-1]


@dataclass(frozen=True)
class Benchmark:
    title: str
    prefix: str  # of the list files: <prefix>_train.txt, ...
    root_is: str  # what dataset.root must be, for messages
    example: str  # a line of the training list
    class_name: Callable[[tuple[str, ...]], str]  # from the folders of an image's path

    def list_name(self, split: str) -> str:
        return f"{self.prefix}_{split}.txt"

    def list_names(self) -> str:
        return _joined([self.list_name(split) for split in LIST_SPLITS], "and")


BENCHMARKS = {
    "imagenet_lt": Benchmark(
        "ImageNet-LT", "ImageNet_LT",
        "your ImageNet (ILSVRC 2012) folder holding train/<wnid>/ and val/<wnid>/ (the validation images sorted "
        "into class folders)",
        "train/n01440764/n01440764_190.JPEG 0", _last_folder),
    "places_lt": Benchmark(
        "Places-LT", "Places_LT",
        "your Places365 folder that the lists' paths start from (for the usual lists, Places365-Standard's "
        "folder holding train/<category>/ and val/<category>/)",
        "train/airfield/00004851.jpg 0", _places_category),
}
assert tuple(BENCHMARKS) == SPLIT_LIST_SOURCES


@dataclass(frozen=True)
class Entry:
    line: int
    written: str  # the path as the list writes it
    label: int
    relative: str  # to the root: Places365's own lists write /a/airfield/..., relative all the same
    folders: tuple[str, ...]  # of the relative path, root side first


def _entry(line: int, written: str, label: int) -> Entry:
    relative = written.lstrip("/")
    return Entry(line, written, label, relative, tuple(p for p in relative.split("/")[:-1] if p not in ("", ".")))


# ---- the lists ------------------------------------------------------------------


def _root(cfg, bench: Benchmark) -> Path:
    root = Path(str(cfg.root)).expanduser()
    if not root.exists():
        raise UserError(f"dataset.root={root} does not exist: it must be {bench.root_is}")
    if not root.is_dir():
        raise UserError(f"dataset.root={root} is not a directory: it must be {bench.root_is}")
    return root


def _list_files(cfg, bench: Benchmark, root: Path) -> dict[str, Path]:
    given = cfg.get("split_dir")
    folder = root if given is None else Path(str(given)).expanduser()
    where = "dataset.root" if given is None else "dataset.split_dir"
    if not folder.is_dir():
        raise UserError(f"dataset.split_dir={folder} is not a directory: it must be the folder holding "
                        f"{bench.list_names()}, the {bench.title} split lists from {LISTS_FROM}")
    paths = {split: folder / bench.list_name(split) for split in LIST_SPLITS}
    missing = [path.name for path in paths.values() if not path.is_file()]
    if missing:
        raise UserError(
            f"{where}={folder} has no {_joined(missing, 'or')}: {bench.title} needs {bench.list_names()} there "
            f"(dataset.split_dir, default dataset.root), the split lists from {LISTS_FROM}"
        )
    return paths


def _read_list(path: Path, bench: Benchmark) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().rsplit(None, 1)
        label = parts[1] if len(parts) == 2 else ""
        if not (label.isascii() and label.isdigit()):
            raise UserError(f"{path} line {number} is {line!r}: every line must be `{LINE_FORMAT}`, "
                            f"e.g. `{bench.example}`")
        entries.append(_entry(number, parts[0], int(label)))
    if not entries:
        raise UserError(f"{path} lists no images: every line must be `{LINE_FORMAT}`, e.g. `{bench.example}`")
    return entries


def _num_classes(cfg) -> int:
    return check_number("dataset.num_classes", cfg.num_classes, 1, integer=True)


def _refuse_another_long_tail(cfg, bench: Benchmark) -> None:
    ratio = cfg.imbalance_ratio
    if ratio != 1:
        raise UserError(
            f"dataset.imbalance_ratio={ratio} does not apply to {cfg.name}: {bench.list_name('train')} is "
            f"long-tailed already (its own counts are trained on); leave it at 1"
        )


# ---- the classes ----------------------------------------------------------------


def _class_names(entries: list[Entry], path: Path, bench: Benchmark, num_classes: int) -> list[str]:
    """The class names in label order, from the training list: every label
    0..num_classes-1 has images, all in one folder that no other label uses."""
    for entry in entries:
        if entry.label >= num_classes:
            raise UserError(
                f"{path} line {entry.line} has label {entry.label}, but there are {num_classes} classes, labels "
                f"0..{num_classes - 1} (dataset.num_classes={num_classes}): are these {bench.title}'s lists?"
            )
    present = {entry.label for entry in entries}
    if len(present) != num_classes:
        absent = min(set(range(num_classes)) - present)
        raise UserError(
            f"{path} has training images of {len(present)} classes, expected {num_classes} "
            f"(dataset.num_classes={num_classes}; label {absent} has none): every class needs training images; "
            f"the list is incomplete or not {bench.title}'s"
        )
    named: dict[int, tuple[str, int]] = {}  # label: (class name, line first naming it)
    owner: dict[str, tuple[int, int]] = {}  # class name: (label, line first giving it)
    for entry in entries:
        if not entry.folders:
            raise UserError(f"{path} line {entry.line} names {entry.written!r}, an image outside any class folder: "
                            f"the training images must be in their class's folder, e.g. `{bench.example}`")
        name = bench.class_name(entry.folders)
        seen, seen_line = named.setdefault(entry.label, (name, entry.line))
        if seen != name:
            raise UserError(
                f"{path} line {entry.line} gives label {entry.label} to an image in {name}, but line {seen_line} "
                f"gives it to one in {seen}: a label must name one class folder"
            )
        label, label_line = owner.setdefault(name, (entry.label, entry.line))
        if label != entry.label:
            raise UserError(
                f"{path} line {entry.line} gives label {entry.label} to an image in {name}, but line {label_line} "
                f"gives label {label} to one in that folder: a class folder must hold one class"
            )
    return [named[label][0] for label in range(num_classes)]


def _check_labels(entries: list[Entry], path: Path, bench: Benchmark, class_names: list[str]) -> None:
    """A validation or test label is a class, and agrees with the image's
    folder where that folder is a class's (the usual test lists keep ImageNet's
    and Places' validation images in class folders; a flat folder is not checked)."""
    index = {name: label for label, name in enumerate(class_names)}
    for entry in entries:
        if entry.label >= len(class_names):
            raise UserError(
                f"{path} line {entry.line} has label {entry.label}, but there are {len(class_names)} classes, "
                f"labels 0..{len(class_names) - 1}: are these {bench.title}'s lists?"
            )
        folder_class = index.get(bench.class_name(entry.folders)) if entry.folders else None
        if folder_class is not None and folder_class != entry.label:
            raise UserError(
                f"{path} line {entry.line} gives label {entry.label} ({class_names[entry.label]}) to an image in "
                f"the folder of class {folder_class} ({class_names[folder_class]}): the lists disagree"
            )


def _checked_train(cfg) -> tuple[Benchmark, Path, dict[str, Path], list[Entry], list[str]]:
    bench = BENCHMARKS[str(cfg.name)]
    root = _root(cfg, bench)
    _refuse_another_long_tail(cfg, bench)
    num_classes = _num_classes(cfg)
    lists = _list_files(cfg, bench, root)
    train = _read_list(lists["train"], bench)
    return bench, root, lists, train, _class_names(train, lists["train"], bench, num_classes)


def split_list_class_names(cfg) -> list[str]:
    """The classes in label order, from the training list alone: cheap, for
    checks before loading."""
    return _checked_train(cfg)[-1]


# ---- the listing ----------------------------------------------------------------


def _check_present(root: Path, bench: Benchmark, listed: dict[str, list[Entry]]) -> None:
    missing = [(split, entry) for split, entries in listed.items() for entry in entries
               if not os.path.isfile(root / entry.relative)]
    if missing:
        total = sum(len(entries) for entries in listed.values())
        split, entry = missing[0]
        starts = sorted({e.relative.split("/")[0] + "/" for entries in listed.values() for e in entries
                         if "/" in e.relative})
        raise UserError(
            f"{len(missing):,} of the {total:,} images the {bench.title} lists name are missing under "
            f"dataset.root={root}, the first {root / entry.relative} ({bench.list_name(split)} line {entry.line}): "
            f"check dataset.root: it must be {bench.root_is}"
            + (f"; these lists' paths start with {_joined(starts, 'and')}" if 0 < len(starts) <= 4 else "")
        )


def list_split_files(cfg) -> FileListing:
    """Every image of the three lists, with its label; the validation split is
    the ``_val`` list and the test split the ``_test`` list."""
    bench, root, lists, train, class_names = _checked_train(cfg)
    listed = {"train": train}
    for split in ("val", "test"):
        listed[split] = _read_list(lists[split], bench)
        _check_labels(listed[split], lists[split], bench, class_names)
    _check_present(root, bench, listed)
    return FileListing(class_names, {
        split: [ImageFile(root / entry.relative, entry.relative, entry.label) for entry in entries]
        for split, entries in listed.items()
    })
