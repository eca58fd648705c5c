"""The CPU threads a test's training may use: the machine's cores shared
between pytest-xdist's workers, at most 2 (more only oversubscribe a small
machine while the tests' networks are this small)."""

import os

WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
TEST_THREADS = os.environ.get("OMP_NUM_THREADS") or str(max(1, min(2, (os.cpu_count() or 2) // WORKERS)))
