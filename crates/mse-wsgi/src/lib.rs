//! HTTP/1.1 + HTTP/2 + TLS server for WSGI and ASGI apps, embedding CPython.
