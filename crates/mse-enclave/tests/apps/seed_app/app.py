"""The seeds' example app (whoami, date write/read), shared by the enclave tests and the VM tests
(crates/mse-launch/tests/vm_support), plus what the VM tests probe: the no-fork/no-subprocess
limitation and a canary written to the encrypted $HOME."""
import os
import json
import subprocess

from http import HTTPStatus
from pathlib import Path
from datetime import datetime
from flask import Flask, Response, request

app = Flask(__name__)

WORKFILE: Path = Path(os.getenv("HOME")) / "date.txt"


@app.route('/whoami')
def whoami():
    """A simple example manipulating secrets."""
    secrets = json.loads(Path(os.getenv("SECRETS_PATH")).read_text())
    return secrets["login"]


@app.post('/')
def write_date():
    """A simple example of file writting."""
    WORKFILE.write_text(str(datetime.now()))
    return Response(status=HTTPStatus.OK)


@app.route('/')
def read_date():
    """A simple example of file reading."""
    if not WORKFILE.exists():
        return Response(response="You should write before read",
                        status=HTTPStatus.NOT_FOUND)

    txt = WORKFILE.read_text()
    WORKFILE.unlink()
    return txt


@app.route('/fork')
def fork():
    try:
        os.fork()
    except PermissionError as e:
        return f"PermissionError: {e}"
    return "forked"


@app.route('/subprocess')
def run():
    try:
        subprocess.run(["true"])
    except PermissionError as e:
        return f"PermissionError: {e}"
    return "ran"


@app.post('/canary')
def canary():
    value = request.get_data(as_text=True)
    path = Path(os.getenv("HOME")) / "canary.txt"
    path.write_text(value * 64)
    os.sync()
    return str(path.stat().st_size)


@app.route('/health')
def health():
    return "OK"
