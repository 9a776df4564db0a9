"""A Flask app ready for an enclave: nothing in it is specific to MSE.

The enclave gives the app the environment variables of the documentation: HOME (encrypted,
sealed to this code version), SECRETS_PATH (your secrets.json), TMP_PATH, MODULE_PATH.
"""

import json
import os
from datetime import datetime
from http import HTTPStatus
from pathlib import Path

from flask import Flask, Response

app = Flask(__name__)

WORKFILE: Path = Path(os.getenv("HOME", ".")) / "date.txt"


@app.get("/health")
def health():
    """The healthcheck endpoint named in mse.toml."""
    return Response(status=HTTPStatus.OK)


@app.get("/")
def hello():
    """A simple hello."""
    return "Hello world"


@app.route("/whoami")
def whoami():
    """A simple example manipulating secrets."""
    secrets = json.loads(Path(os.getenv("SECRETS_PATH")).read_text())
    return secrets["login"]


@app.post("/date")
def write_date():
    """A simple example of file writing."""
    WORKFILE.write_text(str(datetime.now()))
    return Response(status=HTTPStatus.OK)


@app.get("/date")
def read_date():
    """A simple example of file reading."""
    if not WORKFILE.exists():
        return Response(response="You should write before read", status=HTTPStatus.NOT_FOUND)

    txt = WORKFILE.read_text()
    WORKFILE.unlink()
    return txt
