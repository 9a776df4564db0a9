"""Test app for the sandbox: each route tries one forbidden thing and reports what happened."""

import ctypes
import json
import multiprocessing
import os
import subprocess
from pathlib import Path

from flask import Flask

app = Flask(__name__)


def outcome(fn):
    try:
        result = fn()
    except BaseException as e:  # noqa: BLE001 - the test wants to see exactly what was raised
        return f"{type(e).__name__}: {e}"
    return f"returned {result!r}"


def _child():
    pass


@app.route("/health")
def health():
    return "ok"


@app.route("/subprocess")
def run_subprocess():
    return outcome(lambda: subprocess.run(["/bin/true"], check=False))


@app.route("/fork")
def fork():
    return outcome(os.fork)


@app.route("/system")
def system():
    return outcome(lambda: os.system("true"))


@app.route("/popen")
def popen():
    return outcome(lambda: os.popen("true").read())


@app.route("/posix_spawn")
def posix_spawn():
    return outcome(lambda: os.posix_spawn("/bin/true", ["/bin/true"], {}))


@app.route("/execv")
def execv():
    return outcome(lambda: os.execv("/bin/true", ["/bin/true"]))


@app.route("/multiprocessing")
def multiprocessing_fork():
    return outcome(lambda: multiprocessing.Process(target=_child).start())


@app.route("/multiprocessing-spawn")
def multiprocessing_spawn():
    ctx = multiprocessing.get_context("spawn")
    return outcome(lambda: ctx.Process(target=_child).start())


@app.route("/posixsubprocess")
def posixsubprocess():
    # Below the audit hook: only seccomp stops it.
    import _posixsubprocess

    def call():
        return _posixsubprocess.fork_exec(
            [b"/bin/true"], [b"/bin/true"], True, (), None, None,
            -1, -1, -1, -1, -1, -1, *os.pipe(), False, False, -1, None, None, None, -1, None, False,
        )

    return outcome(call)


@app.route("/ctypes-fork")
def ctypes_fork():
    libc = ctypes.CDLL(None, use_errno=True)
    ret = libc.fork()
    return json.dumps({"ret": ret, "errno": ctypes.get_errno()})


@app.route("/ctypes-execve")
def ctypes_execve():
    libc = ctypes.CDLL(None, use_errno=True)
    argv = (ctypes.c_char_p * 2)(b"/bin/true", None)
    ret = libc.execve(b"/bin/true", argv, None)
    return json.dumps({"ret": ret, "errno": ctypes.get_errno()})


@app.route("/thread")
def thread():
    import threading

    box = []
    t = threading.Thread(target=lambda: box.append(1))
    t.start()
    t.join()
    return f"thread ran {len(box)}"


@app.route("/alloc/<int:mib>")
def alloc(mib):
    return outcome(lambda: len(bytearray(mib * 1024 * 1024)))


@app.route("/env")
def env():
    names = ["HOME", "SECRETS_PATH", "SEALED_SECRETS_PATH", "TMP_PATH", "MODULE_PATH", "KEY_PATH", "TMPDIR"]
    return json.dumps({n: os.environ.get(n) for n in names})


@app.route("/whoami")
def whoami():
    secrets = json.loads(Path(os.getenv("SECRETS_PATH")).read_text())
    return secrets["login"]


@app.route("/canary/<word>", methods=["POST"])
def canary(word):
    Path(os.getenv("HOME"), "canary.txt").write_text(word * 64)
    return Path(os.getenv("HOME"), "canary.txt").read_text()[: len(word)]


@app.route("/statvfs/<var>")
def statvfs(var):
    st = os.statvfs(os.environ[var])
    return str(st.f_blocks * st.f_frsize)


@app.route("/tmp-write/<name>", methods=["POST"])
def tmp_write(name):
    Path(os.environ["TMP_PATH"], name).write_text("x")
    return "ok"


@app.route("/tmp-list")
def tmp_list():
    return json.dumps(sorted(os.listdir(os.environ["TMP_PATH"])))


@app.route("/host-calls")
def host_calls():
    """Calls the hardening list refuses, straight through libc (no audit event). Each is
    harmless if it went through (own tmpfs, own namespace, chroot to /)."""
    libc = ctypes.CDLL(None, use_errno=True)

    def call(fn, *args):
        ctypes.set_errno(0)
        ret = fn(*args)
        return [ret, ctypes.get_errno()]

    tmp = os.environ["TMP_PATH"].encode()
    results = {
        "mount": call(libc.mount, b"none", tmp, b"tmpfs", 0, None),
        "unshare": call(libc.unshare, 0x00020000),  # CLONE_NEWNS
        "chroot": call(libc.chroot, b"/"),
        "mknod-char": call(libc.mknod, tmp + b"/null", 0o20600, 0x103),  # S_IFCHR, 1:3
        "mkfifo": call(libc.mkfifo, tmp + b"/fifo", 0o600),
    }
    return json.dumps(results, sort_keys=True)


_held = []


@app.route("/hold-open", methods=["POST"])
def hold_open():
    """Keeps a file in $HOME open for the rest of the process (as a global sqlite connection
    would): stopping must not wait for it."""
    f = open(Path(os.environ["HOME"], "held.txt"), "w")
    f.write("held")
    f.flush()
    _held.append(f)
    return "held"


@app.route("/hold-mmap", methods=["POST"])
def hold_mmap():
    """Keeps a shared, dirty mapping of a $HOME file (and, through mmap, a descriptor)."""
    import mmap

    path = Path(os.environ["HOME"], "mapped.bin")
    path.write_bytes(b"\0" * 8192)
    with open(path, "r+b") as f:
        m = mmap.mmap(f.fileno(), 8192)
    m[:6] = b"mapped"
    _held.append(m)
    return "mapped"
