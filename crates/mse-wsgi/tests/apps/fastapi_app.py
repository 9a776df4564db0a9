"""An unchanged FastAPI app: lifespan, JSON, request-body streaming, streaming responses."""
import hashlib
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

MARKER = os.environ.get("MSE_TEST_MARKER")


@asynccontextmanager
async def lifespan(app):
    app.state.started = True
    if MARKER:
        with open(MARKER, "w") as f:
            f.write("startup;")
    yield
    if MARKER:
        with open(MARKER, "a") as f:
            f.write("shutdown;")


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}")
async def item(item_id: int, request: Request, q: str | None = None):
    return {"id": item_id, "q": q, "started": request.app.state.started,
            "http_version": request.scope["http_version"], "path": request.url.path}


@app.get("/sync")
def sync_route():
    return {"sync": True}


@app.post("/echo")
async def echo(request: Request):
    body = await request.body()
    return {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@app.post("/stream-upload")
async def stream_upload(request: Request):
    n = 0
    h = hashlib.sha256()
    async for chunk in request.stream():
        n += len(chunk)
        h.update(chunk)
    return {"len": n, "sha256": h.hexdigest()}


@app.get("/stream")
async def stream():
    async def gen():
        for i in range(5):
            yield f"line {i}\n".encode()
    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/forever")
async def forever():
    async def gen():
        while True:
            yield b"f" * 65536
    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/boom")
async def boom():
    raise ValueError("asgi-secret-detail")
