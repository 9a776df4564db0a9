"""The FastAPI benchmark app: a plain-text hello at / and a small JSON document at /json."""
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def hello():
    return "Hello, World!"


@app.get("/json")
async def json_hello():
    return {"message": "Hello, World!", "id": 1, "tags": ["a", "b"], "ok": True}
