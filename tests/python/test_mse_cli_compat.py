"""The original client (PyPI mse-cli 1.3, in its own venv MSE_CLI_VENV) provisions our
mse-enclave over RA-TLS with its own bootstrap code, and the app then serves."""

import hashlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from launch_spec import launch_spec  # noqa: E402
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
    venv = Path(os.environ.get("MSE_TEST_VENV", str(ROOT / ".venv")))
    package = tmp_path / "pkg" / "app.tar"
    spec = launch_spec(APP_ID, package, venv, enclave_bin, int(time.time()) + 3600)
    enclave = subprocess.Popen(
        [str(enclave_bin), "--spec", "-", "--package", str(package), "--env", str(venv),
         "--host", "127.0.0.1", "--port", str(port),
         "--sim-seed", str(seed), "--state-dir", str(tmp_path / "state"), "--timeout", "120"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
    enclave.stdin.write(spec)
    enclave.stdin.close()
    try:
        deadline = time.time() + 60
        measurement = None
        while measurement is None and time.time() < deadline:
            time.sleep(0.05)
            m = re.search(r"measurement=([0-9a-f]{64})", (tmp_path / "enclave.log").read_text())
            measurement = m and m.group(1)
        assert measurement, (tmp_path / "enclave.log").read_text()
        # The sim TEE's measurement is the spec hash.
        assert measurement == hashlib.sha256(spec).hexdigest()
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
