"""A FastAPI app reading the sealed secrets and the paths the enclave gives it."""
import json
import os
from pathlib import Path

from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health():
    return {"ok": True}


@app.get("/sealed")
async def sealed():
    return json.loads(Path(os.environ["SEALED_SECRETS_PATH"]).read_text())


@app.get("/paths")
async def paths():
    names = ["HOME", "SECRETS_PATH", "SEALED_SECRETS_PATH", "TMP_PATH", "MODULE_PATH", "KEY_PATH"]
    return {n: os.environ[n] for n in names}


@app.get("/spawn")
async def spawn():
    """The enclave allows no subprocess: the app gets a clean error and keeps serving."""
    import subprocess
    try:
        subprocess.run(["true"], check=False)
    except PermissionError as e:
        return {"error": str(e)}
    return {"error": None}
