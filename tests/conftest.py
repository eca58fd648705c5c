import logging
import sys
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


def _loggers() -> list[logging.Logger]:
    return [logging.getLogger(), *(logger for logger in logging.Logger.manager.loggerDict.values()
                                   if isinstance(logger, logging.Logger))]


@pytest.fixture(autouse=True)
def _logging_restored():
    """Hydra gives an in-process run's job its logging (a handler to the run's
    train.log): taken back after each test, as a separate process would end
    with it, so that no later test logs into a folder that is gone."""
    saved = {logger: (list(logger.handlers), logger.level, logger.propagate, logger.disabled) for logger in _loggers()}
    yield
    for logger in _loggers():
        handlers, level, propagate, disabled = saved.get(logger, ([], logging.NOTSET, True, False))
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


@pytest.fixture(autouse=True)
def _figures_closed():
    """Figures a test made and did not save (to read their axes) are closed
    after it, so that they do not pile up in a worker that runs many tests."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
