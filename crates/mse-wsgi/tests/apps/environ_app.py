"""A raw WSGI app exercising PEP 3333 corners; each path is one probe."""
import hashlib
import json
import threading
import time

STATE = {"produced": 0, "closed": 0}
SLEEPING = [0]
BARRIER = threading.Barrier(2)
LOCK = threading.Lock()


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj, sort_keys=True).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class Closing:
    """An iterable whose close() is counted, to prove the server always calls it."""

    def __init__(self, chunks, fail_after=None):
        self.chunks = chunks
        self.fail_after = fail_after

    def __iter__(self):
        for i, c in enumerate(self.chunks):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("iteration failed on purpose")
            yield c

    def close(self):
        with LOCK:
            STATE["closed"] += 1


def app(environ, start_response):
    path = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    if path.startswith("/env"):
        env = {k: v for k, v in environ.items() if isinstance(v, str)}
        env["wsgi.multithread"] = environ["wsgi.multithread"]
        env["wsgi.input_terminated"] = environ.get("wsgi.input_terminated")
        env["wsgi.version"] = list(environ["wsgi.version"])
        return _json(start_response, env)
    if path == "/utf8":
        # Apps read and write text with the default encoding (the seeds' read_text() of
        # secrets.json): it must be UTF-8 whatever the host's locale.
        import locale
        import sys
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("h\u00e9llo \u2713")
        with open(f.name) as g:
            text = g.read()
        print("stdout: h\u00e9llo \u2713", flush=True)
        return _json(start_response, {
            "text": text,
            "preferred": locale.getpreferredencoding(False),
            "stdout": sys.stdout.encoding,
            "errors": environ["wsgi.errors"].encoding,
        })
    if path == "/input/read5":
        a = inp.read(5)
        b = inp.read()
        return _json(start_response, [a.decode(), b.decode()])
    if path == "/input/lines":
        first = inp.readline()
        part = inp.readline(3)
        rest = [line.decode() for line in inp]
        return _json(start_response, [first.decode(), part.decode(), rest])
    if path == "/input/readlines":
        return _json(start_response, [line.decode() for line in inp.readlines()])
    if path == "/upload":
        h = hashlib.sha256()
        n = 0
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        return _json(start_response, {"len": n, "sha256": h.hexdigest()})
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written-")
        return [b"returned"]
    if path == "/write-forever":
        # Until the client goes away: write() then raises OSError, which the app lets through.
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        while True:
            write(b"w" * 65536)
    if path == "/lazy":
        def gen():
            start_response("201 Created", [("Content-Type", "text/plain"), ("X-Lazy", "yes")])
            yield b"lazy body"
        return gen()
    if path == "/empty-then-late":
        def gen():
            yield b""
            start_response("202 Accepted", [("Content-Type", "text/plain")])
            yield b"late"
        return gen()
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"a", b"b", b"c"])
    if path == "/close-fail":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing([b"a", b"b"], fail_after=0)
    if path == "/overlong":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return Closing([b"abc", b"def"])
    if path == "/state":
        with LOCK:
            return _json(start_response, dict(STATE))
    if path == "/excinfo":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("handled")
        except KeyError:
            import sys
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"replaced by the error page"]
    if path == "/boom":
        raise ValueError("secret-detail-xyz")
    if path == "/boom-late":
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b"first chunk;"
            raise ValueError("late failure")
        return gen()
    if path == "/bad-status":
        start_response("OK", [])
        return [b"never"]
    if path == "/stream":
        # Streams `n` chunks of `size` bytes and records how far it got (slow-reader probe).
        qs = dict(p.split("=") for p in environ["QUERY_STRING"].split("&") if "=" in p)
        n, size = int(qs.get("n", "10")), int(qs.get("size", "1024"))
        with LOCK:
            STATE["produced"] = 0
        chunk = b"x" * size
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(n * size))])

        def gen():
            for _ in range(n):
                with LOCK:
                    STATE["produced"] += 1
                yield chunk
        return Closing(gen())
    if path == "/barrier":
        # Passes only if two requests are inside the app at the same time.
        BARRIER.wait(timeout=20)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"passed"]
    if path == "/sleeping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(SLEEPING[0]).encode()]
    if path == "/sleep":
        with LOCK:
            SLEEPING[0] += 1
        time.sleep(float(environ["QUERY_STRING"] or "1"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
