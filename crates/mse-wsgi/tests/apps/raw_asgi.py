"""A bare ASGI 3 app: reads the whole request body, streams the response in two parts (the first
a bytearray), then checks that receive() answers http.disconnect once the response is over."""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        body += message["body"]
        if not message["more_body"]:
            break
    headers = [(b"x-len", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": bytearray(b"ab"), "more_body": True})
    await send({"type": "http.response.body", "body": body[:3]})
    message = await receive()
    assert message == {"type": "http.disconnect"}, message
    print("raw-asgi: disconnect after the response", flush=True)
