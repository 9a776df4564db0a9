"""Shared fixtures: the `mse` binary built by `make test` (MSE_BIN_DIR) and helpers to run it."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mse_bin() -> Path:
    path = Path(os.environ.get("MSE_BIN_DIR", ROOT / "target" / "debug")) / "mse"
    assert path.is_file(), f"{path} not built: run `make test`"
    return path


@pytest.fixture
def mse(mse_bin):
    """Runs `mse ARGS...`; returns the CompletedProcess (text mode)."""

    def run(*args, cwd=None, env=None):
        return subprocess.run(
            [str(mse_bin), *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run
