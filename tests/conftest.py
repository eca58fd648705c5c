from pathlib import Path

import pytest
import torch

from helpers.cli import lossbench
from helpers.threads import TEST_THREADS
from synthetic_cifar import write_synthetic_cifar10


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    """A data directory holding a small CIFAR-10 in the real format (300 train, 100 test)."""
    write_synthetic_cifar10(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(scope="session")
def diverged_run(tmp_path_factory):
    """`lossbench train` at a learning rate that makes the loss non-finite in its
    first epoch, in a run directory named as by default: (the finished process,
    the run directory). Made once; the tests only read it."""
    cwd = tmp_path_factory.mktemp("diverged")
    result = lossbench("train", "dataset=digits", "optim.lr=1e8", "trainer.epochs=4", cwd=cwd)
    (run,) = (cwd / "results" / "runs").glob("*/*")
    return result, run


# Keep CPU tests from oversubscribing the machine, in this process and the
# processes it starts.
torch.set_num_threads(int(TEST_THREADS))


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", TEST_THREADS)
