import os
from pathlib import Path

import pytest

from helpers.cli import lossbench
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


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    # Keep CPU tests from oversubscribing a 2-core machine.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
