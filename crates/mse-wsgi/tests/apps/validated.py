"""Apps wrapped in wsgiref.validate.validator, with its warnings turned into errors: any PEP 3333
violation by the server becomes an exception, hence a 500."""
import warnings
from wsgiref.validate import WSGIWarning, validator

warnings.simplefilter("error", WSGIWarning)


def _inner(environ, start_response):
    path = environ["PATH_INFO"]
    inp = environ["wsgi.input"]
    if path == "/read":
        data = inp.read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [data]
    if path == "/lines":
        out = [inp.readline(), inp.readline(-1)] + list(iter(inp))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"|".join(out)]
    if path == "/readlines":
        out = inp.readlines()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"|".join(out)]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"via write;")
        return [b"via iterable"]
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (c for c in [b"one;", b"two;", b"three"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"validated " + environ["SERVER_PROTOCOL"].encode()]


app = validator(_inner)
