"""dataset=image_folder and dataset=csv: real image files written here, decoded,
cached, checked and trained on."""

import csv
import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.cli import assert_one_line_error, lossbench
from helpers.training import compose_train
from lossbench.data.dataset import load_dataset
from lossbench.data.sources import num_classes_in
from lossbench.data.long_tail import long_tail_indices
from lossbench.errors import UserError
from lossbench.training.run import run_training
from lossbench.training.validate import validate_config

CPU = torch.device("cpu")
COLOURS = {"cat": (200, 10, 10), "dog": (10, 200, 10), "emu": (10, 10, 200)}


def _write(path, colour, fmt="PNG", size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, fmt)


def _folder(root, train=6, test=2, val=0):
    for split, n in (("train", train), ("test", test), ("val", val)):
        for name, colour in COLOURS.items():
            for i in range(n):
                # one JPEG per class: a JPEG of one colour decodes to within a step or two of it
                fmt = "JPEG" if i == n - 1 and split == "train" else "PNG"
                _write(root / split / name / f"{i}.{fmt.lower().replace('jpeg', 'jpg')}", colour, fmt)
    return root


def _cfg(kind, *overrides):
    # the small network and quick recipe of the digits config, on any data
    return compose_train(f"dataset={kind}", "model=small_cnn", "trainer=quick", "sched=cosine", *overrides)


def _load(tmp_path, *overrides, kind="image_folder"):
    cfg = _cfg(kind, *overrides)
    validate_config(cfg)
    return load_dataset(cfg.dataset, tmp_path / "data", CPU)


@pytest.fixture
def folder(tmp_path):
    return _folder(tmp_path / "images")


def test_folder_decodes_labels_and_resizes(tmp_path, folder):
    data = _load(tmp_path, f"dataset.root={folder}", "dataset.val_fraction=0", "dataset.image_size=16")
    assert data.class_names == ["cat", "dog", "emu"] and data.num_classes == 3
    assert data.class_counts == [6, 6, 6] and data.val is None
    assert data.train.images.shape == (18, 3, 16, 16) and data.train.images.dtype == torch.uint8
    assert data.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for image, label in zip(data.test.images, data.test.labels):
        colour = torch.tensor(COLOURS[data.class_names[label]], dtype=torch.uint8)
        assert torch.equal(image, colour[:, None, None].expand(3, 16, 16))  # PNG: exact after resizing
    jpeg_error = (data.train.images.int() - torch.tensor([COLOURS[data.class_names[y]] for y in data.train.labels])
                  .int()[:, :, None, None]).abs().max()
    assert jpeg_error <= 6
    # per-channel statistics of the training images
    expected = torch.tensor([sum(c[i] for c in COLOURS.values()) / 3 / 255 for i in range(3)])
    torch.testing.assert_close(data.mean, expected, atol=0.01, rtol=0)


def test_grey_images(tmp_path, folder):
    data = _load(tmp_path, f"dataset.root={folder}", "dataset.channels=1", "dataset.image_size=8")
    assert data.channels == 1 and data.test.images.shape == (6, 1, 8, 8)
    # ITU-R 601-2 luma, as PIL converts to "L": 0.299 R + 0.587 G + 0.114 B
    assert data.test.images[0].unique().tolist() == [67]


def test_val_folder_is_the_validation_split(tmp_path):
    root = _folder(tmp_path / "images", val=1)
    data = _load(tmp_path, f"dataset.root={root}", "dataset.val_fraction=0.5")
    assert data.class_counts == [6, 6, 6]  # nothing carved out of train/
    assert data.val.labels.tolist() == [0, 1, 2]
    assert data.val.images[2, :, 0, 0].tolist() == list(COLOURS["emu"])


def test_val_fraction_without_val_folder(tmp_path, folder):
    data = _load(tmp_path, f"dataset.root={folder}", "dataset.val_fraction=0.2")
    assert data.class_counts == [5, 5, 5] and len(data.val) == 3


def test_extra_test_class_is_named(tmp_path, folder):
    _write(folder / "test" / "yak" / "0.png", (1, 2, 3))
    with pytest.raises(UserError, match=r"test/yak is a class that .*train does not have.*cat, dog, emu"):
        _load(tmp_path, f"dataset.root={folder}")


@pytest.mark.parametrize("layout, message", [
    ("missing", r"does not exist: it must be a directory laid out as DIR/train/<class>"),
    ("file", r"is not a directory"),
    ("no_test", r"has no test/: it must be laid out as DIR/train/<class>/<images>, DIR/test/"),
])
def test_bad_root_is_named_before_loading(tmp_path, layout, message):
    root = tmp_path / "images"
    if layout == "file":
        root.write_text("not a folder")
    elif layout == "no_test":
        _write(root / "train" / "cat" / "0.png", (0, 0, 0))
    with pytest.raises(UserError, match=f"dataset.root={root} {message}"):
        validate_config(_cfg("image_folder", f"dataset.root={root}"))


def test_class_count_is_known_before_loading(tmp_path, folder):
    cfg = _cfg("image_folder", f"dataset.root={folder}", "loss=sparse_softmax", "loss.k=5")
    assert num_classes_in(cfg.dataset) == 3
    with pytest.raises(UserError, match=r"loss.k=5 is invalid.*the number of classes is 3"):
        validate_config(cfg)
    assert not (tmp_path / "data").exists()  # nothing decoded


def test_csv_paths_labels_and_class_order(tmp_path, folder):
    lists = tmp_path / "lists"
    lists.mkdir()
    train = [("path", "label")] + [(f"../images/train/{n}/{i}.png", n) for n in ("emu", "cat") for i in range(3)]
    # an absolute path, and labels in no particular order
    test = [("path", "label"), (str(folder / "test" / "dog" / "0.png"), "cat"), ("../images/test/emu/1.png", "emu")]
    for name, rows in (("train.csv", train), ("test.csv", test)):
        with open(lists / name, "w", newline="") as f:
            csv.writer(f).writerows(rows)
    data = _load(tmp_path, f"dataset.train_csv={lists / 'train.csv'}", f"dataset.test_csv={lists / 'test.csv'}",
                 "dataset.val_fraction=0", kind="csv")
    assert data.class_names == ["cat", "emu"] and data.class_counts == [3, 3]
    assert data.test.labels.tolist() == [0, 1]
    assert data.test.images[0, :, 0, 0].tolist() == list(COLOURS["dog"])  # labelled as the CSV says
    assert data.train.images[data.train.labels == 1][:, :, 0, 0].tolist() == [list(COLOURS["emu"])] * 3

    (lists / "test.csv").write_text("path,label\n../images/test/dog/0.png,dog\n")
    with pytest.raises(UserError, match=r"test.csv line 2 has label 'dog', which the training CSV does not have"):
        _load(tmp_path, f"dataset.train_csv={lists / 'train.csv'}", f"dataset.test_csv={lists / 'test.csv'}",
              kind="csv")
    (lists / "test.csv").write_text("file,class\nx.png,cat\n")
    with pytest.raises(UserError, match=r"must start with the header row path,label"):
        _load(tmp_path, f"dataset.train_csv={lists / 'train.csv'}", f"dataset.test_csv={lists / 'test.csv'}",
              kind="csv")


def test_second_load_reads_the_cache_and_a_changed_image_is_decoded(tmp_path, folder, monkeypatch):
    overrides = (f"dataset.root={folder}", "dataset.val_fraction=0")
    first = _load(tmp_path, *overrides)
    (cache,) = (tmp_path / "data" / "cache").glob("image_folder-*[0-9a-f]")
    written = cache.stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was opened although the cache holds it")

    with monkeypatch.context() as patch:
        patch.setattr(Image, "open", no_decoding)
        second = _load(tmp_path, *overrides)
    assert torch.equal(first.train.images, second.train.images) and torch.equal(first.test.labels, second.test.labels)
    assert cache.stat().st_mtime_ns == written
    assert not list(cache.parent.glob("*.tmp"))

    changed = folder / "test" / "cat" / "0.png"
    _write(changed, (1, 2, 3))
    os.utime(changed, ns=(written + 10**9, written + 10**9))
    third = _load(tmp_path, *overrides)
    assert third.test.images[0, :, 0, 0].tolist() == [1, 2, 3]
    assert len(list(cache.parent.glob("image_folder-*[0-9a-f]"))) == 2
    # other decoding settings are cached apart
    assert _load(tmp_path, *overrides, "dataset.image_size=4").train.images.shape[-1] == 4


def test_broken_image_is_refused_or_skipped(tmp_path, folder, caplog):
    broken = folder / "train" / "dog" / "2.png"
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(UserError, match=rf"{broken} cannot be read as an image \(.*\): replace or remove it, or set "
                                        r"dataset.on_bad_image=skip"):
        _load(tmp_path, f"dataset.root={folder}")
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        data = _load(tmp_path, f"dataset.root={folder}", "dataset.on_bad_image=skip", "dataset.val_fraction=0")
    assert data.class_counts == [6, 5, 6]
    assert [r.getMessage() for r in caplog.records if str(broken) in r.getMessage()][0].startswith(f"skipping {broken}")
    # the cache remembers the skipped file: refused again without skip, named again with it
    with pytest.raises(UserError, match=str(broken)):
        _load(tmp_path, f"dataset.root={folder}")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lossbench"):
        _load(tmp_path, f"dataset.root={folder}", "dataset.on_bad_image=skip")
    assert any(str(broken) in r.getMessage() for r in caplog.records)


def test_class_with_only_broken_images_is_named(tmp_path):
    root = _folder(tmp_path / "images", train=1)
    (root / "train" / "emu" / "0.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match=r"every training image of class 'emu' was left out as unreadable"):
        _load(tmp_path, f"dataset.root={root}", "dataset.on_bad_image=skip", "dataset.val_fraction=0")


@pytest.mark.parametrize("profile", ["exp", "step"])
def test_long_tail_applies(tmp_path, folder, profile):
    data = _load(tmp_path, f"dataset.root={folder}", "dataset.imbalance_ratio=3", f"dataset.profile={profile}",
                 "dataset.val_fraction=0")
    labels = np.repeat(np.arange(3), 6)
    expected = np.bincount(labels[long_tail_indices(labels, 3, 3.0, profile, 0)], minlength=3).tolist()
    assert data.class_counts == expected and expected[0] == 6 and expected[2] == 2
    assert data.long_tailed


def test_builtin_class_names(cifar_dir):
    digits = load_dataset(compose_train().dataset, None, CPU)
    assert digits.class_names == [str(c) for c in range(10)]
    cifar = load_dataset(compose_train("dataset=cifar10", "dataset.download=false").dataset, cifar_dir, CPU)
    assert cifar.class_names[:3] == ["airplane", "automobile", "bird"] and len(cifar.class_names) == 10


@pytest.mark.slow
def test_trains_on_a_folder(tmp_path):
    root = _folder(tmp_path / "images", train=8)
    summary = run_training(_cfg("image_folder", f"dataset.root={root}", f"paths.data_dir={tmp_path / 'data'}",
                                "trainer.epochs=2", "trainer.batch_size=8", "dataset.image_size=12"),
                           tmp_path / "run")
    assert summary["status"] == "finished" and summary["class_names"] == ["cat", "dog", "emu"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["class_names"] == ["cat", "dog", "emu"]
    with open(tmp_path / "run" / "per_class.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["class"], r["name"]) for r in rows] == [("0", "cat"), ("1", "dog"), ("2", "emu")]
    assert all(r["test_acc_last"] != "" for r in rows)


@pytest.mark.slow
def test_missing_root_is_one_line(tmp_path):
    assert_one_line_error(lossbench("train", "dataset=image_folder", cwd=tmp_path),
                          "dataset.root has no value", "dataset.root=VALUE")
