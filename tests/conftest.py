import os
from pathlib import Path

import pytest

from synthetic_cifar import write_synthetic_cifar10


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    """A data directory holding a small CIFAR-10 in the real format (300 train, 100 test)."""
    write_synthetic_cifar10(tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    # Keep CPU tests from oversubscribing a 2-core machine.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
