"""A WSGI app with Flask's CPU weight and almost none of its memory footprint (benchmark): a
fixed busy loop of pure Python, then the raw app's answer. Its "/limit" in bench/wsgi.sh is what
a server reaches when the app is not slowed by the I/O sharing its CPU caches."""

import os

# ~39 us on the benchmark machine, Flask hello's loop limit there (bench/RESULTS.md).
SPIN = int(os.environ.get("MSE_BENCH_SPIN", "3200"))
BODY = b"Hello, World!"


def app(environ, start_response):
    for _ in range(SPIN):
        pass
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [BODY]
