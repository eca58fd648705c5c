"""Your own images, as files: torchvision's ImageFolder layout
(``root/train/<class>/<image>``, ``root/test/...``, optionally ``root/val/...``)
or CSV files of ``path,label`` rows.

Images are decoded once with PIL, converted to RGB or grey, resized to a square
and held as uint8 (N, C, H, W) arrays like the other datasets. The decoded
arrays are cached under ``<data_dir>/cache/``, keyed by every file's path,
size and modification time and by the decoding settings, so a later run with
unchanged files decodes nothing.
"""

import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lossbench.errors import UserError

log = logging.getLogger("lossbench")

# ImageNet-LT and Places-LT: split lists over your ImageNet / Places365 (split_lists.py)
SPLIT_LIST_SOURCES = ("imagenet_lt", "places_lt")
FILE_SOURCES = ("image_folder", "csv", *SPLIT_LIST_SOURCES)
SPLITS = ("train", "val", "test")
# the suffixes torchvision's ImageFolder reads; anything else in a class folder is ignored
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
BAD_IMAGE_CHOICES = ("error", "skip")
CHANNEL_MODES = {1: "L", 3: "RGB"}
FOLDER_LAYOUT = "DIR/train/<class>/<images>, DIR/test/<class>/<images> and optionally DIR/val/<class>/<images>"
# bump when the decoding changes, so that older caches are not read
CACHE_VERSION = 2
# images decoded per batch of threads; a progress bar from this many images
DECODE_CHUNK = 512
DECODE_PROGRESS_FROM = 2000


@dataclass(frozen=True)
class ImageFile:
    path: Path
    key: str  # the path as the dataset names it (relative to its root or CSV), for the cache key and messages
    label: int


@dataclass
class FileListing:
    class_names: list[str]
    splits: dict[str, list[ImageFile]]  # train, test and val where given


@dataclass
class DecodedSplit:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64


# ---- listing ----------------------------------------------------------------


def _image_files_under(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_root(cfg) -> Path:
    root = Path(str(cfg.root)).expanduser()
    if not root.exists():
        raise UserError(f"dataset.root={root} does not exist: it must be a directory laid out as {FOLDER_LAYOUT}")
    if not root.is_dir():
        raise UserError(f"dataset.root={root} is not a directory: it must be laid out as {FOLDER_LAYOUT}")
    missing = [name + "/" for name in ("train", "test") if not (root / name).is_dir()]
    if missing:
        raise UserError(
            f"dataset.root={root} has no {' or '.join(missing)}: it must be laid out as {FOLDER_LAYOUT}"
        )
    return root


def folder_class_names(cfg) -> list[str]:
    """The sorted class folders of ``root/train/``: cheap, for checks before loading."""
    root = _folder_root(cfg)
    names = _class_folders(root / "train")
    if not names:
        raise UserError(f"{root / 'train'} has no class folders: it must be laid out as {FOLDER_LAYOUT}")
    return names


def list_image_folder(cfg) -> FileListing:
    root = _folder_root(cfg)
    class_names = folder_class_names(cfg)
    index = {name: i for i, name in enumerate(class_names)}
    splits = {}
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        folders = _class_folders(split_dir)
        extra = [name for name in folders if name not in index]
        if extra:
            raise UserError(
                f"{split_dir / extra[0]} is a class that {root / 'train'} does not have: the classes of {split}/ "
                f"must be among train/'s ({', '.join(class_names)}); add it to train/ or remove it"
            )
        files = []
        for name in folders:
            found = _image_files_under(split_dir / name)
            if split == "train" and not found:
                raise UserError(
                    f"{split_dir / name} has no images ({', '.join(IMAGE_SUFFIXES)}): every class needs "
                    f"training images; add some or remove the folder"
                )
            files += [ImageFile(p, p.relative_to(root).as_posix(), index[name]) for p in found]
        splits[split] = files
    return FileListing(class_names, splits)


def _csv_keys(cfg) -> dict[str, str]:
    keys = {"train": "train_csv", "test": "test_csv"}
    if cfg.get("val_csv"):
        keys["val"] = "val_csv"
    return keys


def _read_csv_rows(key: str, value) -> list[tuple[int, str, str]]:
    """(line number, path, label) of each row of a ``path,label`` CSV."""
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise UserError(f"dataset.{key}={path} is not a file: it must be a CSV with a header path,label and one "
                        f"row per image")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read dataset.{key}={path}: {e}") from None
    if not rows or [c.strip() for c in rows[0]] != ["path", "label"]:
        got = ",".join(rows[0]) if rows else "nothing"
        raise UserError(f"{path} must start with the header row path,label (it starts with {got})")
    found = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise UserError(f"{path} line {line} is {','.join(row)!r}: every row must be path,label")
        found.append((line, row[0].strip(), row[1].strip()))
    if not found:
        raise UserError(f"{path} has no rows: it must list images as path,label after its header")
    return found


def csv_class_names(cfg) -> list[str]:
    """The sorted labels of the training CSV: cheap, for checks before loading."""
    return sorted({label for _, _, label in _read_csv_rows("train_csv", cfg.train_csv)})


def list_csv(cfg) -> FileListing:
    class_names = csv_class_names(cfg)
    index = {name: i for i, name in enumerate(class_names)}
    splits = {}
    for split, key in _csv_keys(cfg).items():
        csv_path = Path(str(cfg[key])).expanduser()
        files = []
        for line, written, label in _read_csv_rows(key, cfg[key]):
            if label not in index:
                raise UserError(
                    f"{csv_path} line {line} has label {label!r}, which the training CSV does not have: the labels "
                    f"of dataset.{key} must be among {', '.join(class_names)}"
                )
            image = Path(written).expanduser()
            files.append(ImageFile(image if image.is_absolute() else csv_path.parent / image, written, index[label]))
        splits[split] = files
    return FileListing(class_names, splits)


def file_class_names(cfg) -> list[str]:
    if str(cfg.name) in SPLIT_LIST_SOURCES:
        from lossbench.data.split_lists import split_list_class_names  # here: split_lists imports this module

        return split_list_class_names(cfg)
    return folder_class_names(cfg) if str(cfg.name) == "image_folder" else csv_class_names(cfg)


def list_files(cfg) -> FileListing:
    if str(cfg.name) in SPLIT_LIST_SOURCES:
        from lossbench.data.split_lists import list_split_files

        return list_split_files(cfg)
    return list_image_folder(cfg) if str(cfg.name) == "image_folder" else list_csv(cfg)


# ---- decoding -----------------------------------------------------------------


def decode_image(path: Path, size: int, channels: int) -> np.ndarray:
    """(C, size, size) uint8; raises OSError (and PIL's other decoding errors) for a broken file."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert(CHANNEL_MODES[channels]).resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _decoding_errors() -> tuple:
    import struct

    from PIL import Image

    # a damaged PNG can raise SyntaxError while its data is read
    return OSError, ValueError, SyntaxError, EOFError, struct.error, Image.DecompressionBombError


def _refuse(file: ImageFile, reason: str) -> UserError:
    return UserError(
        f"{file.path} cannot be read as an image ({reason}): replace or remove it, or set "
        f"dataset.on_bad_image=skip to leave unreadable images out"
    )


def _warn_skipped(file_path: str, reason: str) -> None:
    log.warning("skipping %s: cannot be read as an image (%s)", file_path, reason)


def _decode_or_reason(file: ImageFile, size: int, channels: int, errors: tuple):
    try:
        return decode_image(file.path, size, channels), None
    except errors as e:
        return None, str(e) or type(e).__name__


def decoding_threads() -> int:
    # PIL releases the GIL while it decodes and resizes, so threads scale with the cores
    return max(1, min(8, os.cpu_count() or 1))


def _decode_into(images: np.ndarray, files: list[ImageFile], size: int, channels: int, on_bad_image: str,
                 skipped: list, desc: str) -> np.ndarray:
    """Decode ``files`` into the rows of ``images`` (an array or a memmap)
    and return the mask of the files that decoded."""
    errors = _decoding_errors()
    decoded = np.ones(len(files), dtype=bool)
    with ThreadPoolExecutor(decoding_threads()) as pool, \
            tqdm(total=len(files), desc=desc, unit="img", leave=False, dynamic_ncols=True,
                 disable=len(files) < DECODE_PROGRESS_FROM) as bar:
        # in chunks, so that decoded images never pile up far ahead of their copy
        for first in range(0, len(files), DECODE_CHUNK):
            chunk = files[first:first + DECODE_CHUNK]
            results = pool.map(lambda file: _decode_or_reason(file, size, channels, errors), chunk)
            for i, (file, (pixels, reason)) in enumerate(zip(chunk, results), start=first):
                if pixels is not None:
                    images[i] = pixels
                    continue
                if on_bad_image == "error":
                    raise _refuse(file, reason)
                _warn_skipped(str(file.path), reason)
                skipped.append((str(file.path), reason))
                decoded[i] = False
            bar.update(len(chunk))
    return decoded


def _labels_of(files: list[ImageFile], decoded: np.ndarray) -> np.ndarray:
    return np.asarray([f.label for f in files], dtype=np.int64)[decoded]


def _decode_split(files: list[ImageFile], size: int, channels: int, on_bad_image: str, skipped: list,
                  split: str) -> DecodedSplit:
    """Decoded into memory (no cache folder to write to)."""
    images = np.zeros((len(files), channels, size, size), np.uint8)
    decoded = _decode_into(images, files, size, channels, on_bad_image, skipped, f"decoding {split}")
    return DecodedSplit(images[decoded], _labels_of(files, decoded))


# ---- cache --------------------------------------------------------------------
# One folder per listing and decoding: <split>_images.npy (N, C, H, W) uint8,
# <split>_labels.npy and skipped.json. Plain .npy files, so that a split larger
# than memory is read as a memmap, and streamed from there.


def _cache_key(listing: FileListing, size: int, channels: int) -> str:
    """A digest of everything the decoded arrays depend on. A file that cannot
    be stat-ed is keyed as missing; decoding then names it."""
    entries = []
    for split, files in sorted(listing.splits.items()):
        for file in files:
            try:
                stat = file.path.stat()
                seen = [stat.st_size, stat.st_mtime_ns]
            except OSError:
                seen = None
            entries.append([split, file.key, file.label, seen])
    text = json.dumps([CACHE_VERSION, size, channels, listing.class_names, entries])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cache_path(cfg, data_dir: Path, listing: FileListing) -> Path:
    key = _cache_key(listing, int(cfg.image_size), int(cfg.channels))
    return data_dir / "cache" / f"{cfg.name}-{key}"


def _read_cache(folder: Path, splits) -> tuple[dict, list] | None:
    """(the splits as memmaps, the skipped files), or None where there is no complete cache."""
    if not folder.is_dir():
        return None
    try:
        decoded = {split: DecodedSplit(np.load(folder / f"{split}_images.npy", mmap_mode="r"),
                                       np.load(folder / f"{split}_labels.npy"))
                   for split in splits}
        skipped = [tuple(entry) for entry in json.loads((folder / "skipped.json").read_text())]
    except (OSError, ValueError, EOFError) as e:
        log.warning("ignoring the unreadable image cache %s (%s): decoding the images again", folder, e)
        return None
    return decoded, skipped


def _decode_to_cache(folder: Path, listing: FileListing, size: int, channels: int, on_bad_image: str,
                     skipped: list) -> bool:
    """Decode every split into a temporary folder beside ``folder`` and rename
    it into place, so that a concurrent run never reads half a cache. False
    where the cache cannot be written (the caller decodes into memory)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    except OSError as e:
        log.warning("cannot cache the decoded images in %s (%s): they will be decoded again next time",
                    folder.parent, e.strerror or e)
        return False
    try:
        for split, files in listing.splits.items():
            path = tmp / f"{split}_images.npy"
            images = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8,
                                               shape=(len(files), channels, size, size))
            decoded = _decode_into(images, files, size, channels, on_bad_image, skipped, f"decoding {split}")
            if not decoded.all():
                _keep_rows(path, images, decoded)
            del images  # flushed and closed
            np.save(tmp / f"{split}_labels.npy", _labels_of(files, decoded))
        (tmp / "skipped.json").write_text(json.dumps(skipped))
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
            shutil.rmtree(tmp)  # another run cached the same files first
        return True
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        log.warning("cannot write the image cache %s (%s): the images will be decoded again next time",
                    folder, e.strerror or e)
        return False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _keep_rows(path: Path, images: np.ndarray, keep: np.ndarray) -> None:
    """Rewrite the .npy at ``path`` with only the rows of ``keep``, a chunk at a time."""
    compact_path = path.with_name("kept_" + path.name)
    rows = np.flatnonzero(keep)
    compact = np.lib.format.open_memmap(compact_path, mode="w+", dtype=np.uint8, shape=(len(rows),) + images.shape[1:])
    for first in range(0, len(rows), DECODE_CHUNK):
        compact[first:first + DECODE_CHUNK] = images[rows[first:first + DECODE_CHUNK]]
    compact.flush()
    del compact
    os.replace(compact_path, path)


def _check_every_class_kept(train: DecodedSplit, class_names: list[str]) -> None:
    counts = np.bincount(train.labels, minlength=len(class_names))
    if (counts == 0).any():
        name = class_names[int(np.flatnonzero(counts == 0)[0])]
        raise UserError(
            f"every training image of class {name!r} was left out as unreadable: every class needs training "
            f"images; replace the broken files"
        )


def load_image_files(cfg, data_dir: Path | None):
    """(splits, class_names): the decoded ``train`` and ``test`` splits, and
    ``val`` where the files give one. No cache without a data_dir."""
    splits, class_names = _decoded_or_cached(cfg, data_dir)
    _check_every_class_kept(splits["train"], class_names)
    return splits, class_names


def _decoded_or_cached(cfg, data_dir: Path | None):
    listing = list_files(cfg)
    size, channels, on_bad_image = int(cfg.image_size), int(cfg.channels), str(cfg.on_bad_image)
    folder = cache_path(cfg, data_dir, listing) if data_dir is not None else None
    cached = _read_cache(folder, listing.splits) if folder is not None else None
    decoded_now = cached is None
    if cached is None and folder is not None:
        if _decode_to_cache(folder, listing, size, channels, on_bad_image, []):
            cached = _read_cache(folder, listing.splits)
    if cached is None:
        skipped = []
        splits = {split: _decode_split(files, size, channels, on_bad_image, skipped, split)
                  for split, files in listing.splits.items()}
        return splits, listing.class_names
    splits, skipped = cached
    if skipped and on_bad_image == "error":
        raise _refuse(ImageFile(Path(skipped[0][0]), skipped[0][0], -1), skipped[0][1])
    if not decoded_now:  # decoding warned already
        for file_path, reason in skipped:
            _warn_skipped(file_path, reason)
    return splits, listing.class_names
