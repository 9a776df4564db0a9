"""A LaunchSpec v1 for mse-enclave, written from its documentation (docs/enclave.md) with the
standard library only: used by tests/python (the original client provisions our enclave) and
bench/enclave_bench.py, which start mse-enclave without a node."""

import hashlib
import json
import os
import stat


def file_sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def environment_digest(root) -> str:
    """'Environment digest v1' (crates/mse-attest/src/measurement.rs)."""
    entries, stack = {}, [(b"", os.fspath(root))]
    while stack:
        rel, d = stack.pop()
        for e in os.scandir(d):
            name = os.fsencode(e.name)
            is_dir = e.is_dir(follow_symlinks=False)
            if (is_dir and name == b"__pycache__") or (not is_dir and name.endswith(b".pyc")):
                continue
            child = rel + b"/" + name if rel else name
            if is_dir:
                stack.append((child, e.path))
            entries[child] = e.path
    h = hashlib.sha256()
    for rel in sorted(entries):
        path = entries[rel]
        st = os.lstat(path)
        kind = b"d" if stat.S_ISDIR(st.st_mode) else b"f" if stat.S_ISREG(st.st_mode) else b"l"
        h.update(kind + (st.st_mode & 0o7777).to_bytes(4, "big") + len(rel).to_bytes(8, "big") + rel)
        if kind == b"f":
            h.update(bytes.fromhex(file_sha256(path)))
        elif kind == b"l":
            target = os.fsencode(os.readlink(path))
            h.update(len(target).to_bytes(8, "big") + target)
    return h.hexdigest()


def launch_spec(app_id, package, venv, enclave, expiration, memory_mb=1024) -> bytes:
    """The canonical bytes of a self-mode sim spec (fields in the documented order)."""
    spec = {
        "version": 1, "app_id": app_id, "san": "localhost", "application": "app:app",
        "memory_mb": memory_mb, "vcpus": 1, "tee": "sim", "tls": {"expiration": expiration},
        "package": {"sha256": file_sha256(package), "size": os.path.getsize(package)},
        "environment_sha256": environment_digest(venv),
        "runtime": {"process": {"enclave_sha256": file_sha256(enclave)}},
    }
    return json.dumps(spec, separators=(",", ":")).encode()
