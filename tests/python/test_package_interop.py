"""The code package interoperates both ways with PyPI mse-lib-crypto 1.4 (the original's library)."""

import json
import os
import tarfile
from pathlib import Path

import pytest
from mse_lib_crypto.xsalsa20_poly1305 import decrypt_directory, encrypt_directory

FILES = {
    "app.py": b"from flask import Flask\napp = Flask(__name__)\n",
    "requirements.txt": b"requests==2.32.3\n",
    "pkg/__init__.py": b"",
    "pkg/models/weights.bin": os.urandom(300_000),
    "pkg/requirements.txt": b"numpy\n",
    "static/deep/a b.css": "body { content: 'é' }".encode(),
}


def make_app(root: Path, files=FILES) -> Path:
    """An app directory as `mse scaffold` lays it out, with a richer code directory."""
    code = root / "mse_src"
    for rel, data in files.items():
        (code / rel).parent.mkdir(parents=True, exist_ok=True)
        (code / rel).write_bytes(data)
    (root / "mse.toml").write_text(
        'name = "interop"\npython_application = "app:app"\nhealthcheck_endpoint = "/"\n'
        'tests_cmd = "pytest"\ntests_requirements = []\n\n[cloud]\ncode = "mse_src"\n'
        'tests = "tests"\ndocker = "mse-flask"\nproject = "default"\nhardware = "4g-eu-001"\n'
    )
    return root / "mse.toml"


def read_tree(root: Path) -> dict:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def fingerprint_of(stdout: str) -> str:
    lines = [l for l in stdout.splitlines() if l.strip().startswith("fingerprint:")]
    assert len(lines) == 1, stdout
    return lines[0].split()[-1]


def test_ours_decrypted_by_mse_lib_crypto(tmp_path, mse):
    toml = make_app(tmp_path / "app")
    out = tmp_path / "out"
    r = mse("package", "--path", toml, "--output", out)
    assert r.returncode == 0, r.stderr
    tar_path = out / "interop.tar"
    with tarfile.open(tar_path, "r:") as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert names == [
            "app.py.enc",
            "pkg/__init__.py.enc",
            "pkg/models/weights.bin.enc",
            "pkg/requirements.txt",
            "requirements.txt",
            "static/deep/a b.css.enc",
        ]
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.mode) == (0, 0, 0, 0o644)
        tar.extractall(tmp_path / "extracted", filter="data")
    # requirements.txt stays in clear, byte for byte.
    assert (tmp_path / "extracted/requirements.txt").read_bytes() == FILES["requirements.txt"]
    key = (out / "interop.key").read_bytes()
    assert len(key) == 32
    decrypt_directory(tmp_path / "extracted", key, ".enc", tmp_path / "plain")
    plain = read_tree(tmp_path / "plain")
    expected = {k: v for k, v in FILES.items() if not k.endswith("requirements.txt")}
    assert plain == expected


def test_mse_lib_crypto_decrypted_by_ours(tmp_path, mse):
    src = tmp_path / "src"
    for rel, data in FILES.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    key = os.urandom(32)
    enc = tmp_path / "enc"
    encrypt_directory(src, "*", key, None, ["requirements.txt"], [], enc)
    tar_path = tmp_path / "theirs.tar"
    with tarfile.open(tar_path, "w:") as tar:
        for p in sorted(enc.rglob("*")):
            if p.is_file():
                tar.add(p, arcname=str(p.relative_to(enc)))
    (tmp_path / "key").write_bytes(key)
    r = mse("decrypt", "--package", tar_path, "--key", tmp_path / "key", "--output", tmp_path / "dec")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Decrypted 6 files")
    assert read_tree(tmp_path / "dec") == FILES


def test_same_key_and_nonces_give_the_same_bytes_as_the_original(tmp_path, mse):
    toml = make_app(tmp_path / "app")
    r1 = mse("package", "--path", toml, "--output", tmp_path / "o1")
    assert r1.returncode == 0, r1.stderr
    key, nonces = tmp_path / "o1/interop.key", tmp_path / "o1/interop.nonces.json"
    r2 = mse("package", "--path", toml, "--output", tmp_path / "o2", "--key", key, "--nonces", nonces)
    assert r2.returncode == 0, r2.stderr
    assert fingerprint_of(r1.stdout) == fingerprint_of(r2.stdout)
    assert (tmp_path / "o1/interop.tar").read_bytes() == (tmp_path / "o2/interop.tar").read_bytes()
    # mse-lib-crypto, given the same key and nonces, writes exactly our .enc bytes.
    recorded = {k: bytes.fromhex(v) for k, v in json.loads(nonces.read_text()).items()}
    enc = tmp_path / "theirs"
    encrypt_directory(tmp_path / "app/mse_src", "*", key.read_bytes(), recorded, ["requirements.txt"], [], enc)
    with tarfile.open(tmp_path / "o1/interop.tar") as tar:
        ours = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert ours == read_tree(enc)


def test_changed_code_without_nonce_is_refused(tmp_path, mse):
    toml = make_app(tmp_path / "app")
    assert mse("package", "--path", toml, "--output", tmp_path / "o1").returncode == 0
    (tmp_path / "app/mse_src/new.py").write_text("x = 1\n")
    r = mse(
        "package", "--path", toml, "--output", tmp_path / "o2",
        "--key", tmp_path / "o1/interop.key", "--nonces", tmp_path / "o1/interop.nonces.json",
    )
    assert r.returncode == 1
    assert r.stderr == (
        'Error: no nonce recorded for "new.py": the code changed since the package was first built\n'
    )
    assert not (tmp_path / "o2/interop.tar").exists()


@pytest.mark.parametrize("member", ["app.py.enc", "pkg/models/weights.bin.enc"])
@pytest.mark.parametrize("where", ["nonce", "tag", "body", "last"])
def test_flipped_byte_is_an_integrity_error(tmp_path, mse, member, where):
    toml = make_app(tmp_path / "app")
    out = tmp_path / "out"
    assert mse("package", "--path", toml, "--output", out).returncode == 0
    with tarfile.open(out / "interop.tar") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    data = bytearray(members[member])
    index = {"nonce": 3, "tag": 30, "body": 45, "last": len(data) - 1}[where]
    data[index] ^= 0x20
    members[member] = bytes(data)
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w:") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, __import__("io").BytesIO(blob))
    r = mse("decrypt", "--package", bad, "--key", out / "interop.key", "--output", tmp_path / "dec")
    assert r.returncode == 1
    assert r.stderr == (
        f"Error: cannot decrypt {bad}: member {member!r}: integrity check failed: "
        "the file was modified or the key is wrong\n".replace("'", '"')
    )
    # Nothing was left behind, not even the files decrypted before the bad one.
    assert not (tmp_path / "dec").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
