"""MNIST, Fashion-MNIST and SVHN read through torchvision from small files
written here in the real formats: IDX (big-endian header) and MATLAB .mat."""

import functools
import hashlib
import http.server
import struct
import threading

import numpy as np
import pytest
import scipy.io
import torch

from helpers.training import compose_train, read_rows
from lossbench.data.dataset import load_dataset
from lossbench.data.sources import source_of
from lossbench.data.torchvision_sets import load_torchvision_set
from lossbench.errors import UserError
from lossbench.training.run import run_training

IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def write_idx_images(path, images: np.ndarray) -> None:
    # magic 2051: unsigned bytes (type 0x08), three dimensions
    path.write_bytes(struct.pack(">iiii", 2051, *images.shape) + images.astype(np.uint8).tobytes())


def write_idx_labels(path, labels: np.ndarray) -> None:
    # magic 2049: unsigned bytes, one dimension
    path.write_bytes(struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def balanced_labels(per_class: int, rng) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(10), per_class))


def write_idx_set(data_dir, name: str, train_per_class: int = 30, test_per_class: int = 2, seed: int = 0):
    """Images and labels in the IDX files torchvision reads: {"train": (x, y), "test": (x, y)}."""
    rng = np.random.default_rng(seed)
    raw = data_dir / IDX_FOLDERS[name] / "raw"
    raw.mkdir(parents=True)
    written = {}
    for split, prefix, per_class in (("train", "train", train_per_class), ("test", "t10k", test_per_class)):
        labels = balanced_labels(per_class, rng)
        images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
        written[split] = (images, labels)
    return written


def write_svhn(data_dir, train_per_class: int = 30, test_per_class: int = 2, seed: int = 0):
    """.mat files as published: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
    rng = np.random.default_rng(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        digits = balanced_labels(per_class, rng)
        x = rng.integers(0, 256, (32, 32, 3, len(digits)), dtype=np.uint8)
        y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]
        scipy.io.savemat(data_dir / f"{split}_32x32.mat", {"X": x, "y": y})
        written[split] = (x, digits)
    return written


def dataset_config(name: str, **settings):
    return compose_train(f"dataset={name}", "dataset.download=false",
                         *(f"dataset.{key}={value}" for key, value in settings.items())).dataset


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_files_round_trip(tmp_path, name):
    written = write_idx_set(tmp_path, name)
    train_x, train_y, test_x, test_y = load_torchvision_set(name, tmp_path, download=False)
    assert train_x.shape == (300, 1, 28, 28) and train_x.dtype == np.uint8
    assert test_x.shape == (20, 1, 28, 28) and test_y.dtype == np.int64
    images, labels = written["train"]
    assert np.array_equal(train_x[:, 0], images) and np.array_equal(train_y, labels)
    assert train_x[17, 0, 5, 21] == images[17, 5, 21] and train_y[17] == labels[17]
    assert np.array_equal(test_x[:, 0], written["test"][0]) and np.array_equal(test_y, written["test"][1])
    assert np.bincount(train_y).tolist() == [30] * 10


def test_svhn_round_trips_with_ten_as_zero(tmp_path):
    written = write_svhn(tmp_path)
    train_x, train_y, test_x, test_y = load_torchvision_set("svhn", tmp_path, download=False)
    assert train_x.shape == (300, 3, 32, 32) and train_x.dtype == np.uint8 and train_x.flags.c_contiguous
    x, digits = written["train"]
    # image n's pixel at row r, column c, channel ch is X[r, c, ch, n] in the file
    assert train_x[7, 2, 3, 29] == x[3, 29, 2, 7]
    assert np.array_equal(train_x, x.transpose(3, 2, 0, 1))
    assert np.array_equal(train_y, digits) and train_y.dtype == np.int64
    assert np.bincount(train_y).tolist() == [30] * 10
    zero = int(np.flatnonzero(digits == 0)[0])
    assert scipy.io.loadmat(tmp_path / "train_32x32.mat")["y"][zero, 0] == 10 and train_y[zero] == 0
    assert np.array_equal(test_x, written["test"][0].transpose(3, 2, 0, 1)) and np.array_equal(test_y, written["test"][1])


@pytest.mark.parametrize(
    "name, folder, files",
    [
        ("mnist", "MNIST/raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"),
        ("fashion_mnist", "FashionMNIST/raw", "train-images-idx3-ubyte"),
        ("svhn", "", "train_32x32.mat, test_32x32.mat"),
    ],
)
def test_missing_files_say_where_and_how(tmp_path, name, folder, files):
    with pytest.raises(UserError) as info:
        load_dataset(dataset_config(name), tmp_path, torch.device("cpu"))
    message = str(info.value)
    where = tmp_path / folder if folder else tmp_path
    assert f"missing in {where} (download is off)" in message
    assert files in message and "dataset.download=true" in message and "paths.data_dir" in message
    assert "\n" not in message


def test_missing_test_files_only_are_named(tmp_path):
    write_idx_set(tmp_path, "mnist")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match=r"MNIST not found: t10k-labels-idx1-ubyte missing in "):
        load_torchvision_set("mnist", tmp_path, download=False)


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    # nothing listens on port 9 of the loopback: the download fails at once, offline too
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.raises(UserError) as info:
        load_torchvision_set("mnist", tmp_path, download=True)
    message = str(info.value)
    assert message.startswith(f"MNIST not found in {tmp_path / 'MNIST' / 'raw'} (train-images-idx3-ubyte")
    assert "downloading it failed (Error downloading train-images-idx3-ubyte.gz: Tried http://127.0.0.1:9/" in message
    assert "\n" not in message


@pytest.fixture
def served_svhn(tmp_path, monkeypatch):
    """SVHN's two .mat files served over HTTP on the loopback, torchvision's URLs
    and MD5s pointed at them: the written arrays."""
    from torchvision.datasets import SVHN

    site = tmp_path / "site"
    written = write_svhn(site)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # a client that refuses a download hangs up mid-file: expected, not an error to print
    server.handle_error = lambda request, client_address: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for split in ("train", "test"):
        filename = f"{split}_32x32.mat"
        md5 = hashlib.md5((site / filename).read_bytes()).hexdigest()
        monkeypatch.setitem(SVHN.split_list, split, [f"http://127.0.0.1:{server.server_port}/{filename}", filename, md5])
    yield written
    server.shutdown()


def test_svhn_download_is_checked_and_read(tmp_path, served_svhn):
    data_dir = tmp_path / "data"
    train_x, train_y, test_x, _ = load_torchvision_set("svhn", data_dir, download=True)
    assert (data_dir / "train_32x32.mat").is_file() and (data_dir / "test_32x32.mat").is_file()
    assert np.array_equal(train_x, served_svhn["train"][0].transpose(3, 2, 0, 1))
    assert np.array_equal(train_y, served_svhn["train"][1]) and len(test_x) == 20


def test_svhn_download_with_wrong_checksum_is_refused(tmp_path, served_svhn, monkeypatch):
    from torchvision.datasets import SVHN

    url, filename, _ = SVHN.split_list["test"]
    monkeypatch.setitem(SVHN.split_list, "test", [url, filename, "f" * 32])
    with pytest.raises(UserError) as info:
        load_torchvision_set("svhn", tmp_path / "data", download=True)
    message = str(info.value)
    assert message.startswith(f"the SVHN test file in {tmp_path / 'data'} failed its MD5 check after downloading")
    assert "\n" not in message


def test_truncated_idx_file_is_named(tmp_path):
    write_idx_set(tmp_path, "mnist")
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match=r"the MNIST training files in .*MNIST/raw cannot be read \(.*\): delete them"):
        load_torchvision_set("mnist", tmp_path, download=False)


def test_images_and_labels_must_match(tmp_path):
    write_idx_set(tmp_path, "fashion_mnist")
    write_idx_labels(tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte", np.arange(10))
    with pytest.raises(UserError, match="the Fashion-MNIST test files in .* hold 20 images but 10 labels"):
        load_torchvision_set("fashion_mnist", tmp_path, download=False)


def test_svhn_labels_out_of_range_are_named(tmp_path):
    write_svhn(tmp_path)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])})
    with pytest.raises(UserError, match=r"the SVHN test files in .* hold labels in \[1, 11\], expected \[0, 9\]"):
        load_torchvision_set("svhn", tmp_path, download=False)


@pytest.mark.parametrize("name", ["mnist_lt", "svhn_lt"])
def test_long_tailed_variant(tmp_path, name):
    if name == "svhn_lt":
        write_svhn(tmp_path)
    else:
        write_idx_set(tmp_path, "mnist")
    data = load_dataset(dataset_config(name, imbalance_ratio=10, val_fraction=0), tmp_path, torch.device("cpu"))
    expected = [int(np.floor(30 * 10 ** (-c / 9) + 1e-9)) for c in range(10)]
    assert data.class_counts == expected == [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]
    assert torch.bincount(data.train.labels, minlength=10).tolist() == expected
    assert data.long_tailed and len(data.test) == 20 and data.name == name


def test_configs_of_the_long_tailed_variants():
    for source in ("mnist", "fashion_mnist", "svhn"):
        cfg = compose_train(f"dataset={source}_lt").dataset
        assert cfg.name == f"{source}_lt" and cfg.imbalance_ratio == 100 and cfg.download is True


def test_unknown_dataset_lists_every_name_in_one_line():
    with pytest.raises(UserError) as info:
        source_of("bogus")
    message = str(info.value)
    valid = message.split("valid datasets are ")[1].split(", ")
    assert {"mnist", "mnist_lt", "fashion_mnist", "fashion_mnist_lt", "svhn", "svhn_lt", "cifar10_lt", "digits"} <= set(valid)
    assert "\n" not in message


@pytest.mark.slow
def test_one_epoch_on_mnist_with_its_default_model(tmp_path):
    write_idx_set(tmp_path / "data", "mnist", train_per_class=6, test_per_class=2)
    cfg = compose_train(
        "dataset=mnist", f"paths.data_dir={tmp_path / 'data'}", "dataset.download=false",
        "trainer.epochs=1", "trainer.batch_size=16", "trainer.device=cpu", "sched.warmup_epochs=0",
    )
    assert cfg.model.name == "resnet20"
    summary = run_training(cfg, tmp_path / "run")
    assert summary["status"] == "finished" and summary["dataset"] == "mnist"
    assert summary["data_dir"] == str(tmp_path / "data")
    assert sum(summary["class_counts"]) + sum(summary["val_counts"]) == 60 and summary["test_counts"] == [2] * 10
    (row,) = read_rows(tmp_path / "run")
    assert row["epoch"] == "1" and np.isfinite(float(row["train_loss"]))


def test_fashion_mnist_classes_are_named():
    from lossbench.data.dataset import _class_names

    names = _class_names("fashion_mnist", 10, None)
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot" and len(set(names)) == 10
    assert _class_names("mnist", 10, None) == [str(d) for d in range(10)]
