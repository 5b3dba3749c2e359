"""A bare WSGI layer in front of Flask that answers GET/HEAD of pre-built documents directly.

Like WhiteNoise for static files: per request it does a dict lookup and header selection, no
routing, no request object, no rendering. Everything else (other methods, unknown paths, archive
pages not rendered yet, /healthz) falls through to the Flask app. Conditional requests go through
conditional.respond, which the Flask views use too, so both answer alike (tests run both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..representation import Representation
from .conditional import respond, select_variant

if TYPE_CHECKING:
    from ..live.publisher import Publisher


def answer(representation: Representation, environ: dict, start_response):
    """Answer a GET or HEAD of a pre-built representation (the WSGI application's return value)."""
    if (
        "HTTP_IF_NONE_MATCH" in environ
        or "HTTP_IF_MODIFIED_SINCE" in environ
        or "HTTP_IF_MATCH" in environ
        or "HTTP_IF_UNMODIFIED_SINCE" in environ
    ):
        status, headers, body = respond(representation, environ)
    else:  # an unconditional GET: only the content coding to choose
        variant = select_variant(representation, environ)
        status, headers, body = representation.status, variant.headers, variant.body if environ["REQUEST_METHOD"] == "GET" else b""
    start_response(status, list(headers))
    return [body]


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
                return answer(representation, environ, start_response)
        return self.app(environ, start_response)
