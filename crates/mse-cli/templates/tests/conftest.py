"""Where the app under test runs: TEST_REMOTE_URL (set by `mse test` and `mse localtest`)."""

import json
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def url() -> str:
    return os.getenv("TEST_REMOTE_URL", "http://localhost:5000").rstrip("/")


@pytest.fixture(scope="session")
def secrets() -> dict:
    path = os.getenv("TEST_SECRET_JSON") or Path(__file__).parent.parent / "secrets.json"
    return json.loads(Path(path).read_text())
