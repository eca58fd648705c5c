import functools
import hashlib
import http.server
import pickle
import tarfile
import threading

import numpy as np
import pytest
import torch

from helpers.training import compose_train
from synthetic_cifar import write_synthetic_cifar10
from lossbench.data.cifar import LAYOUTS, load_cifar, read_batch_file
from lossbench.data.dataset import load_dataset
from lossbench.errors import UserError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def test_reads_real_format_files(cifar_dir):
    train_x, train_y, test_x, test_y = load_cifar(cifar_dir, 10, download=False, url=URL, md5="")
    assert train_x.shape == (300, 3, 32, 32) and train_x.dtype == np.uint8
    assert test_x.shape == (100, 3, 32, 32)
    assert np.bincount(train_y).tolist() == [30] * 10
    with open(cifar_dir / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    # rows are R, G, B planes of 32x32 in row-major order
    first = np.asarray(raw[b"data"][0])
    assert np.array_equal(train_x[0, 0].ravel(), first[:1024])
    assert np.array_equal(train_x[0, 2].ravel(), first[2048:])
    assert train_y[: len(raw[b"labels"])].tolist() == raw[b"labels"]


def test_truncated_file_is_named(cifar_dir):
    path = cifar_dir / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match=r"data_batch_3 is corrupt or truncated.*re-download"):
        load_cifar(cifar_dir, 10, download=False, url=URL, md5="")


@pytest.mark.parametrize(
    "entry, message",
    [
        ({b"data": np.zeros((4, 100), np.uint8), b"labels": [0, 1, 2, 3]}, r"shape \(4, 100\).*expected \(N, 3072\)"),
        ({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2]}, "4 images but 3 labels"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"labels in \[0, 10\], expected \[0, 9\]"),
        ({b"labels": [0]}, "no data entry"),
        ([1, 2, 3], "not a CIFAR batch"),
    ],
)
def test_structure_is_validated(tmp_path, entry, message):
    path = tmp_path / "batch"
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
    with pytest.raises(UserError, match=message):
        read_batch_file(path, LAYOUTS[10], 10)


def test_missing_without_download_says_where_and_how(tmp_path):
    with pytest.raises(UserError) as info:
        load_cifar(tmp_path, 10, download=False, url=URL, md5="")
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "paths.data_dir" in message and "LOSSBENCH_DATA" in message
    assert "\n" not in message


def test_failed_download_says_where_and_how(tmp_path):
    # nothing listens on port 9 of the loopback: the download fails at once, offline too
    with pytest.raises(UserError) as info:
        load_cifar(tmp_path, 10, download=True, url="http://127.0.0.1:9/cifar-10-python.tar.gz", md5="0" * 32)
    message = str(info.value)
    assert "downloading http://127.0.0.1:9/cifar-10-python.tar.gz failed" in message
    assert str(tmp_path / "cifar-10-batches-py") in message and "paths.data_dir" in message


@pytest.fixture
def served_archive(tmp_path):
    """A CIFAR-10 archive served over HTTP on the loopback: (url, md5)."""
    site = tmp_path / "site"
    write_synthetic_cifar10(tmp_path / "source")
    site.mkdir()
    archive = site / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "source" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # a client that refuses a download hangs up mid-file: expected, not an error to print
    server.handle_error = lambda request, client_address: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/{archive.name}", hashlib.md5(archive.read_bytes()).hexdigest()
    server.shutdown()


def test_download_verifies_checksum_and_extracts(tmp_path, served_archive):
    url, md5 = served_archive
    data_dir = tmp_path / "data"
    train_x, train_y, test_x, _ = load_cifar(data_dir, 10, download=True, url=url, md5=md5)
    assert len(train_x) == 300 and len(test_x) == 100
    assert (data_dir / "cifar-10-batches-py" / "test_batch").is_file()


def test_download_with_wrong_checksum_is_refused(tmp_path, served_archive):
    url, _ = served_archive
    wrong = "f" * 32
    with pytest.raises(UserError, match=f"failed its MD5 check \\(expected {wrong}\\)"):
        load_cifar(tmp_path / "data", 10, download=True, url=url, md5=wrong)
    assert not (tmp_path / "data" / "cifar-10-batches-py").exists()


def test_long_tailed_cifar_from_config(cifar_dir):
    cfg = compose_train("dataset=cifar10_lt", "dataset.imbalance_ratio=10", "dataset.val_fraction=0").dataset
    data = load_dataset(cfg, cifar_dir, torch.device("cpu"))
    expected = [int(np.floor(30 * 10 ** (-c / 9) + 1e-9)) for c in range(10)]
    assert data.class_counts == expected == [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]
    assert torch.bincount(data.train.labels, minlength=10).tolist() == expected
    assert len(data.test) == 100 and data.long_tailed
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (3, 32, 32)
