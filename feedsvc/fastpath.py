"""A bare WSGI layer in front of Flask that answers GET/HEAD of pre-built documents directly.

Like WhiteNoise for static files: per request it does a dict lookup and header selection, no
routing, no request object, no rendering. Everything else (other methods, unknown paths,
/healthz) falls through to the Flask app. Both share conditional.respond, so they answer alike.
"""

from __future__ import annotations

from .conditional import respond
from .publisher import Publisher


class FastPath:
    """WSGI middleware serving ``publisher.current.documents``."""

    def __init__(self, app, publisher: Publisher):
        self.app = app
        self.publisher = publisher

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        if method == "GET" or method == "HEAD":
            representation = self.publisher.current.documents.get(environ.get("PATH_INFO", ""))
            if representation is not None:
                status, headers, body = respond(representation, environ)
                start_response(status, list(headers))
                return [body]
        return self.app(environ, start_response)
