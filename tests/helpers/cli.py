"""The installed `lossbench` command, run as a user would."""

import os
import shutil
import subprocess
import sys

LOSSBENCH = shutil.which("lossbench") or os.path.join(os.path.dirname(sys.executable), "lossbench")


def lossbench(*args, cwd, env=None, timeout=240):
    full_env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    return subprocess.run(
        [LOSSBENCH, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
