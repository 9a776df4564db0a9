"""The smallest WSGI app: the raw-WSGI benchmark and basic tests."""


def app(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
