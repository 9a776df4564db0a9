"""`mse scaffold` makes an app that packages, runs and passes its own tests."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

EXPECTED_FILES = [
    "mse.toml",
    "mse_src/.mseignore",
    "mse_src/app.py",
    "mse_src/requirements.txt",
    "secrets.json",
    "tests/conftest.py",
    "tests/test_app.py",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scaffold_layout_and_refusals(tmp_path, mse):
    r = mse("scaffold", tmp_path / "hello")
    assert r.returncode == 0, r.stderr
    files = sorted(str(p.relative_to(tmp_path / "hello")) for p in (tmp_path / "hello").rglob("*") if p.is_file())
    assert files == EXPECTED_FILES
    assert (tmp_path / "hello/mse.toml").read_text().startswith('name = "hello"\n')
    ignore = (tmp_path / "hello/mse_src/.mseignore").read_text().split()
    assert ignore == ["mse.toml", "secrets.json", "secrets_to_seal.json", ".mseignore", "__pycache__",
                      "*.py[cod]", ".git*", ".vscode/", ".idea/", "*.egg-info/", "*.egg", ".venv", ".env"]
    # `mse cloud scaffold` is the same command; an existing directory is never touched.
    r = mse("cloud", "scaffold", tmp_path / "hello")
    assert r.returncode == 1
    assert r.stderr == f"Error: {tmp_path / 'hello'} already exists: choose another name or remove it\n"
    r = mse("scaffold", tmp_path / "bad name")
    assert r.returncode == 1
    assert r.stderr.startswith('Error: invalid app name "')
    assert not (tmp_path / "bad name").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello"]


def test_scaffolded_app_packages_without_secrets(tmp_path, mse):
    assert mse("scaffold", tmp_path / "hello").returncode == 0
    r = mse("package", "--path", tmp_path / "hello/mse.toml", "--output", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "Packaged 2 files" in r.stdout
    import tarfile

    with tarfile.open(tmp_path / "out/hello.tar") as tar:
        assert tar.getnames() == ["app.py.enc", "requirements.txt"]


def test_bad_config_is_one_line_with_file_and_line(tmp_path, mse):
    assert mse("scaffold", tmp_path / "hello").returncode == 0
    toml = tmp_path / "hello/mse.toml"
    toml.write_text(toml.read_text().replace('"app:app"', '"app"'))
    r = mse("package", "--path", toml, "--output", tmp_path / "out")
    assert r.returncode == 1
    assert r.stderr == f'Error: {toml}:2: python_application must be "module:variable", got "app"\n'
    assert not (tmp_path / "out").exists()


def test_scaffolded_app_passes_its_own_tests(tmp_path, mse):
    assert mse("scaffold", tmp_path / "hello").returncode == 0
    app_dir = tmp_path / "hello"
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = dict(os.environ, HOME=str(home), SECRETS_PATH=str(app_dir / "secrets.json"))
    server = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=app_dir / "mse_src",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "the scaffolded app did not start"
                assert server.poll() is None, "the scaffolded app exited"
                time.sleep(0.1)
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=app_dir,
            env=dict(os.environ, TEST_REMOTE_URL=f"http://127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "4 passed" in r.stdout
    finally:
        server.terminate()
        server.wait(timeout=10)
