"""dataset=imagenet_lt and dataset=places_lt: small ImageNet and Places365
trees of real JPEGs, with split lists in the format of the published
ImageNet_LT_*.txt and Places_LT_*.txt, listed, decoded, trained on and refused."""

import csv
import json

import pytest
import torch
from PIL import Image

from helpers.cli import assert_one_line_error, lossbench
from helpers.training import compose_train
from lossbench.data.dataset import load_dataset
from lossbench.data.sources import num_classes_in, source_of
from lossbench.data.image_files import FILE_SOURCES, SPLIT_LIST_SOURCES, list_files
from lossbench.data.split_lists import BENCHMARKS
from lossbench.errors import UserError
from lossbench.training.hydra_app import train_main
from lossbench.training.run import run_training
from lossbench.training.validate import validate_config

CPU = torch.device("cpu")
# in label order, as ImageNet-LT's (sorted WordNet ids); a long tail of training images
WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")
TRAIN = (6, 4, 2, 1)
VAL, TEST = 2, 3
COLOURS = ((200, 10, 10), (10, 200, 10), (10, 10, 200), (200, 200, 10))
# Places365's label order is not the sorted names': desert_road (116) comes before desert-sand (117)
PLACES = ("airfield", "desert_road", "desert-sand", "basketball_court-indoor")
# the same categories in Places365's data_256 layout, under first-letter folders
PLACES_256 = ("a/airfield", "d/desert_road", "d/desert/sand", "b/basketball_court/indoor")


def _jpeg(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), colour).save(path, "JPEG")


def _write_lists(folder, prefix, lines):
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        (folder / f"{prefix}_{split}.txt").write_text("".join(f"{path} {label}\n" for path, label in rows))


def _imagenet(root, lists=None):
    """ImageNet's train/<wnid>/ and val/<wnid>/ (the validation images in class
    folders), with an unlisted image in each training folder; the lists in root
    (or ``lists``)."""
    lines = {"train": [], "val": [], "test": []}
    number = 0
    for label, (wnid, n, colour) in enumerate(zip(WNIDS, TRAIN, COLOURS)):
        for i in range(n + VAL + 1):
            path = f"train/{wnid}/{wnid}_{i}.JPEG"
            _jpeg(root / path, colour)
            if i < n + VAL:
                lines["train" if i < n else "val"].append((path, label))
        for _ in range(TEST):
            number += 1
            path = f"val/{wnid}/ILSVRC2012_val_{number:08d}.JPEG"
            _jpeg(root / path, colour)
            lines["test"].append((path, label))
    _write_lists(lists or root, "ImageNet_LT", lines)
    return root


def _places(root, layout):
    """Places365-Standard's train/<category>/ and val/<category>/ with lists
    like those published, or data_256's first-letter folders with Places365's
    own leading-slash paths and a flat val_256/ for the test list."""
    lines = {"train": [], "val": [], "test": []}
    number = 0
    for label, (name, name_256, n, colour) in enumerate(zip(PLACES, PLACES_256, TRAIN, COLOURS)):
        for i in range(n + VAL):
            written = f"train/{name}/{i + 1:08d}.jpg" if layout == "standard" else f"/{name_256}/{i + 1:08d}.jpg"
            _jpeg(root / written.lstrip("/"), colour)
            lines["train" if i < n else "val"].append((written, label))
        for _ in range(TEST):
            number += 1
            folder = f"val/{name}" if layout == "standard" else "val_256"
            written = f"{folder}/Places365_val_{number:08d}.jpg"
            _jpeg(root / written, colour)
            lines["test"].append((written, label))
    _write_lists(root, "Places_LT", lines)
    return root


def _cfg(name, *overrides):
    # four classes, not the benchmarks' 1,000 or 365; small images, the quick recipe
    return compose_train(f"dataset={name}", "dataset.num_classes=4", "dataset.image_size=8", "model=small_cnn",
                         "trainer=quick", "sched=cosine", *overrides)


def _lines(path):
    return path.read_text().splitlines()


@pytest.fixture
def imagenet(tmp_path):
    return _imagenet(tmp_path / "imagenet")


def test_the_datasets_are_registered():
    assert SPLIT_LIST_SOURCES == tuple(BENCHMARKS) == ("imagenet_lt", "places_lt")
    assert set(SPLIT_LIST_SOURCES) <= set(FILE_SOURCES)
    assert source_of("imagenet_lt") == "imagenet_lt" and source_of("places_lt") == "places_lt"
    with pytest.raises(UserError, match=r"valid datasets are .*image_folder, csv, imagenet_lt, places_lt"):
        source_of("imagenet")


def test_imagenet_listing(imagenet):
    listing = list_files(_cfg("imagenet_lt", f"dataset.root={imagenet}").dataset)
    assert listing.class_names == list(WNIDS)
    assert {split: len(files) for split, files in listing.splits.items()} == {"train": 13, "val": 8, "test": 12}
    first = listing.splits["train"][0]
    assert (first.path, first.key, first.label) == (imagenet / "train/n01440764/n01440764_0.JPEG",
                                                    "train/n01440764/n01440764_0.JPEG", 0)
    assert [f.label for f in listing.splits["train"]] == [0] * 6 + [1] * 4 + [2] * 2 + [3]
    # the validation split: the _val list, from ImageNet's training images; the test split: its validation images
    assert listing.splits["val"][-1].key == "train/n01491361/n01491361_2.JPEG"
    assert listing.splits["test"][3].key == "val/n01443537/ILSVRC2012_val_00000004.JPEG"
    assert listing.splits["test"][3].label == 1
    # only listed images: the unlisted one in each class folder is left out
    listed = {f.key for files in listing.splits.values() for f in files}
    assert "train/n01440764/n01440764_8.JPEG" not in listed and all(f.path.is_file() for f in listing.splits["test"])


def test_lists_in_their_own_folder(tmp_path):
    root = _imagenet(tmp_path / "imagenet", lists=tmp_path / "ImageNet_LT")
    listing = list_files(_cfg("imagenet_lt", f"dataset.root={root}", f"dataset.split_dir={tmp_path / 'ImageNet_LT'}")
                         .dataset)
    assert listing.class_names == list(WNIDS) and len(listing.splits["test"]) == 12


@pytest.mark.parametrize("layout, names", [("standard", list(PLACES)), ("data_256", [
    "airfield", "desert_road", "desert/sand", "basketball_court/indoor"])])
def test_places_classes_in_label_order(tmp_path, layout, names):
    root = _places(tmp_path / "places", layout)
    listing = list_files(_cfg("places_lt", f"dataset.root={root}").dataset)
    assert listing.class_names == names and names != sorted(names)
    assert [len(files) for files in listing.splits.values()] == [13, 8, 12]
    test = listing.splits["test"][-1]
    assert test.label == 3 and test.path == root / test.key and test.path.is_file()
    if layout == "data_256":  # Places365's own /a/airfield/... paths: relative to the root too
        assert listing.splits["train"][0].path == root / "a/airfield/00000001.jpg"
        assert test.key == "val_256/Places365_val_00000012.jpg"


def test_loaded_as_given(tmp_path, imagenet):
    cfg = _cfg("imagenet_lt", f"dataset.root={imagenet}", "dataset.val_fraction=0.5")
    validate_config(cfg)
    data = load_dataset(cfg.dataset, tmp_path / "data", CPU)
    assert data.class_names == list(WNIDS) and data.num_classes == 4
    # the training list's own long tail; nothing held out of it (the _val list is the validation split)
    assert data.class_counts == list(TRAIN) and data.long_tailed
    assert data.val.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and len(data.test) == 12
    assert data.train.images.shape == (13, 3, 8, 8)
    assert data.test.images[-1, :, 0, 0].tolist() == pytest.approx(COLOURS[3], abs=8)  # a JPEG, near its colour
    assert list((tmp_path / "data" / "cache").glob("imagenet_lt-*"))


def test_class_count_is_known_before_loading(tmp_path, imagenet):
    cfg = _cfg("imagenet_lt", f"dataset.root={imagenet}", "loss=sparse_softmax", "loss.k=5",
               f"paths.data_dir={tmp_path / 'data'}")
    assert num_classes_in(cfg.dataset) == 4
    with pytest.raises(UserError, match=r"loss.k=5 is invalid.*the number of classes is 4"):
        validate_config(cfg)
    assert not (tmp_path / "data").exists()  # nothing decoded


@pytest.mark.slow
def test_trains_on_imagenet_lt(tmp_path, imagenet):
    summary = run_training(_cfg("imagenet_lt", f"dataset.root={imagenet}", f"paths.data_dir={tmp_path / 'data'}",
                                "trainer.epochs=1", "trainer.batch_size=4"), tmp_path / "run")
    assert summary["status"] == "finished" and summary["class_names"] == list(WNIDS)
    recorded = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert recorded["class_counts"] == list(TRAIN) and recorded["val_counts"] == [VAL] * 4
    with open(tmp_path / "run" / "per_class.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["class"], r["name"], r["train_count"]) for r in rows] == [
        (str(c), WNIDS[c], str(TRAIN[c])) for c in range(4)]
    # long-tailed as given: the classes fall into head, medium and tail groups
    assert [r["group"] for r in rows] == ["head", "head", "medium", "tail"]
    assert all(r["test_acc_last"] != "" for r in rows)


# ---- refusals, one line each ---------------------------------------------------


def refusal(capsys, monkeypatch, tmp_path, *overrides) -> str:
    """The one line ``lossbench train`` prints for a refused command (exit code 2)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        train_main(["model=small_cnn", "trainer=quick", "trainer.progress=false", "dataset.image_size=8",
                    f"paths.data_dir={tmp_path / 'data'}", *overrides])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lossbench train: error: "), lines
    assert not list((tmp_path / "results").rglob("*.csv")), "a refused command started a run"
    return lines[0].removeprefix("lossbench train: error: ")


def test_missing_root(capsys, monkeypatch, tmp_path):
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=imagenet_lt", f"dataset.root={tmp_path / 'nowhere'}")
    assert line == (f"dataset.root={tmp_path / 'nowhere'} does not exist: it must be your ImageNet (ILSVRC 2012) "
                    f"folder holding train/<wnid>/ and val/<wnid>/ (the validation images sorted into class folders)")


def test_missing_split_lists(capsys, monkeypatch, tmp_path, imagenet):
    (imagenet / "ImageNet_LT_val.txt").unlink()
    (imagenet / "ImageNet_LT_test.txt").unlink()
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=imagenet_lt", "dataset.num_classes=4",
                   f"dataset.root={imagenet}")
    assert line.startswith(
        f"dataset.root={imagenet} has no ImageNet_LT_val.txt or ImageNet_LT_test.txt: ImageNet-LT needs "
        f"ImageNet_LT_train.txt, ImageNet_LT_val.txt and ImageNet_LT_test.txt there (dataset.split_dir, default "
        f"dataset.root), the split lists from the Google Drive folder linked from the README of "
        f"github.com/zhmiao/OpenLongTailRecognition-OLTR")
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=places_lt", f"dataset.root={imagenet}",
                   f"dataset.split_dir={imagenet}")
    assert line.startswith(f"dataset.split_dir={imagenet} has no Places_LT_train.txt, Places_LT_val.txt or "
                           f"Places_LT_test.txt: Places-LT needs")


@pytest.mark.parametrize("bad", ["train/n01440764/n01440764_9.JPEG", "train/n01440764/n01440764_9.JPEG zero",
                                 "train/n01440764/n01440764_9.JPEG -1"])
def test_malformed_line(capsys, monkeypatch, tmp_path, imagenet, bad):
    path = imagenet / "ImageNet_LT_test.txt"
    lines = _lines(path)
    path.write_text("\n".join(lines[:4] + [bad] + lines[4:]) + "\n")
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=imagenet_lt", "dataset.num_classes=4",
                   f"dataset.root={imagenet}")
    assert line == (f"{path} line 5 is {bad!r}: every line must be `<image path relative to dataset.root> "
                    f"<integer label>`, e.g. `train/n01440764/n01440764_190.JPEG 0`")


def test_missing_images(capsys, monkeypatch, tmp_path, imagenet):
    for gone in ("train/n01443537/n01443537_1.JPEG", "val/n01491361/ILSVRC2012_val_00000012.JPEG"):
        (imagenet / gone).unlink()
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=imagenet_lt", "dataset.num_classes=4",
                   f"dataset.root={imagenet}")
    assert line.startswith(
        f"2 of the 33 images the ImageNet-LT lists name are missing under dataset.root={imagenet}, the first "
        f"{imagenet / 'train/n01443537/n01443537_1.JPEG'} (ImageNet_LT_train.txt line 8): check dataset.root: "
        f"it must be your ImageNet")
    assert line.endswith("; these lists' paths start with train/ and val/")


def test_wrong_number_of_classes(capsys, monkeypatch, tmp_path, imagenet):
    # the benchmark's 1,000 classes expected; these lists have 4
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=imagenet_lt", f"dataset.root={imagenet}")
    assert line == (f"{imagenet / 'ImageNet_LT_train.txt'} has training images of 4 classes, expected 1000 "
                    f"(dataset.num_classes=1000; label 4 has none): every class needs training images; the list "
                    f"is incomplete or not ImageNet-LT's")
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=imagenet_lt", "dataset.num_classes=3",
                   f"dataset.root={imagenet}")
    assert line.startswith(f"{imagenet / 'ImageNet_LT_train.txt'} line 13 has label 3, but there are 3 classes, "
                           f"labels 0..2 (dataset.num_classes=3)")


def test_another_long_tail_is_refused(capsys, monkeypatch, tmp_path, imagenet):
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=places_lt", "dataset.num_classes=4",
                   f"dataset.root={imagenet}", "dataset.imbalance_ratio=10")
    assert line == ("dataset.imbalance_ratio=10 does not apply to places_lt: Places_LT_train.txt is long-tailed "
                    "already (its own counts are trained on); leave it at 1")


@pytest.mark.parametrize("split, at, line, fragment", [
    ("train", None, "train/n01443537/n01443537_5.JPEG 0",
     "line 14 gives label 0 to an image in n01443537, but line 1 gives it to one in n01440764: a label must name "
     "one class folder"),
    ("train", 13, "train/n01484850/n01484850_9.JPEG 3",
     "line 13 gives label 3 to an image in n01484850, but line 11 gives label 2 to one in that folder: a class "
     "folder must hold one class"),
    ("train", 13, "n01491361_0.JPEG 3", "line 13 names 'n01491361_0.JPEG', an image outside any class folder"),
    ("test", None, "val/n01443537/ILSVRC2012_val_00000099.JPEG 2",
     "line 13 gives label 2 (n01484850) to an image in the folder of class 1 (n01443537): the lists disagree"),
    ("val", None, "train/n01443537/n01443537_5.JPEG 4", "line 9 has label 4, but there are 4 classes, labels 0..3"),
])
def test_labels_that_disagree_with_the_folders(tmp_path, imagenet, split, at, line, fragment):
    path = imagenet / f"ImageNet_LT_{split}.txt"
    lines = _lines(path)
    if at is None:
        lines.append(line)
    else:
        lines[at - 1] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=f"^{path} ") as refused:
        list_files(_cfg("imagenet_lt", f"dataset.root={imagenet}").dataset)
    assert fragment in str(refused.value)


@pytest.mark.slow
def test_the_installed_command_names_the_lists(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    result = lossbench("train", "dataset=places_lt", f"dataset.root={root}", cwd=tmp_path)
    assert_one_line_error(result, f"dataset.root={root} has no Places_LT_train.txt, Places_LT_val.txt or "
                                  "Places_LT_test.txt", "zhmiao/OpenLongTailRecognition-OLTR")
