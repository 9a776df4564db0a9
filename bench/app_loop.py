"""The "loop limit" of an app: calls it in a tight loop in this process, no HTTP, no server, for
DURATION seconds, and prints calls per second. ASGI apps run on uvloop when it is installed (as
the servers do), one `await app(scope, receive, send)` after the other in one task; WSGI apps are
called with a minimal environ and start_response and their body iterated.

Usage: python bench/app_loop.py APP_DIR module:app PATH [DURATION] [wsgi|asgi]
"""
import asyncio
import importlib
import io
import sys
import time


def main():
    app_dir, spec, path = sys.argv[1:4]
    duration = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    kind = sys.argv[5] if len(sys.argv) > 5 else "asgi"
    sys.path.insert(0, app_dir)
    module, name = spec.split(":")
    app = getattr(importlib.import_module(module), name)
    run = asgi_loop if kind == "asgi" else wsgi_loop
    run(app, path, 0.5)  # warm-up
    n, elapsed = run(app, path, duration)
    print(f"{n / elapsed:.0f}")
    print(f"{n} calls in {elapsed:.2f} s", file=sys.stderr)


def wsgi_loop(app, path, duration):
    base = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }

    def start_response(status, headers, exc_info=None):
        return None

    n = 0
    start = time.perf_counter()
    end = start + duration
    while True:
        for _ in range(100):
            env = dict(base)
            env["wsgi.input"] = io.BytesIO(b"")
            result = app(env, start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        n += 100
        now = time.perf_counter()
        if now >= end:
            return n, now - start


def asgi_loop(app, path, duration):
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    scope_base = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": [(b"host", b"127.0.0.1:8000")],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive():
        return request

    async def send(message):
        return None

    async def main():
        n = 0
        start = time.perf_counter()
        end = start + duration
        while True:
            for _ in range(100):
                await app(dict(scope_base), receive, send)
            n += 100
            now = time.perf_counter()
            if now >= end:
                return n, now - start

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


if __name__ == "__main__":
    main()
