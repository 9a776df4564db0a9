"""The original client (PyPI mse-cli 1.3, in its own venv MSE_CLI_VENV) provisions our
mse-enclave over RA-TLS with its own bootstrap code, and the app then serves."""

import os
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP_ID = "6f1d0d3c-3a51-4c6e-9a7e-0c2b8e4b7d11"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mse_cli_python() -> Path:
    venv = Path(os.environ.get("MSE_CLI_VENV", ROOT / ".venv-mse-cli"))
    python = venv / "bin" / "python"
    assert python.is_file(), f"{python} missing: run `make venv` (tests/requirements-mse-cli.txt)"
    return python


def test_original_client_provisions_the_enclave(tmp_path, mse, mse_bin, mse_cli_python):
    enclave_bin = mse_bin.with_name("mse-enclave")
    assert enclave_bin.is_file(), f"{enclave_bin} not built: run `make test`"
    assert mse("scaffold", tmp_path / "app").returncode == 0
    out = mse("package", "--path", tmp_path / "app" / "mse.toml", "--output", tmp_path / "pkg")
    assert out.returncode == 0, out.stderr
    key = (tmp_path / "pkg" / "app.key").read_bytes().hex()
    seed = tmp_path / "seed"
    seed.write_bytes(secrets.token_bytes(32))
    port = free_port()
    log = open(tmp_path / "enclave.log", "w+")
    enclave = subprocess.Popen(
        [str(enclave_bin), "--size", "1024", "--san", "localhost", "--id", APP_ID,
         "--application", "app:app", "--expiration", str(int(time.time()) + 3600),
         "--package", str(tmp_path / "pkg" / "app.tar"),
         "--env", os.environ.get("MSE_TEST_VENV", str(ROOT / ".venv")),
         "--host", "127.0.0.1", "--port", str(port), "--tee", "sim",
         "--sim-seed", str(seed), "--state-dir", str(tmp_path / "state"), "--timeout", "120"],
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 60
        measurement = None
        while measurement is None and time.time() < deadline:
            time.sleep(0.05)
            m = re.search(r"measurement=([0-9a-f]{64})", (tmp_path / "enclave.log").read_text())
            measurement = m and m.group(1)
        assert measurement, (tmp_path / "enclave.log").read_text()
        client = subprocess.run(
            [str(mse_cli_python), str(Path(__file__).parent / "compat" / "mse_cli_client.py"),
             f"https://localhost:{port}", APP_ID, key, measurement, str(tmp_path / "cert.pem")],
            capture_output=True, text=True, timeout=180, check=False)
        assert client.returncode == 0, client.stderr + (tmp_path / "enclave.log").read_text()
        assert client.stdout == "compat-user\n"
        # The app's files as the enclave sees them (through its private mount namespace).
        env = re.search(r"SEALED_SECRETS_PATH=(\S+)", (tmp_path / "enclave.log").read_text())
        sealed = Path(f"/proc/{enclave.pid}/root{env.group(1)}")
        assert sealed.read_text() == '{"api_token":"s3cr3t"}'
    finally:
        enclave.terminate()
        enclave.wait(timeout=30)
        log.close()
