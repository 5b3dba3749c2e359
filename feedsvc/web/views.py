"""Thin Flask views: find the pre-built representation for the path and answer conditionally."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import Blueprint, Response, current_app, json, redirect, request

from ..representation import Representation
from .conditional import respond

if TYPE_CHECKING:
    from ..live.publisher import Publisher

bp = Blueprint("feeds", __name__)


def get_publisher() -> Publisher:
    """Return the app's Publisher (the one accessor views use)."""
    return current_app.extensions["feedsvc"]


class PrebuiltResponse(Response):
    """A response whose headers were laid out at build time: Werkzeug must send them as they are.

    (Its default would drop Last-Modified from a 304 and recompute Content-Length for HEAD,
    and the Flask views must answer exactly like the fast path.)
    """

    automatically_set_content_length = False

    def get_wsgi_headers(self, environ):
        return self.headers


def _response(representation: Representation) -> Response:
    status, headers, body = respond(representation, request.environ)
    return PrebuiltResponse(body, status=status, headers=list(headers))


@bp.get("/healthz")
def healthz() -> Response:
    """Report the content version being served and any content problem (JSON, never cached)."""
    status = get_publisher().status()
    response = current_app.response_class(json.dumps(status), content_type="application/json; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


ALLOWED_METHODS = "GET, HEAD, OPTIONS"


@bp.route("/", defaults={"path": ""}, methods=["GET", "OPTIONS"], provide_automatic_options=False)
@bp.route("/<path:path>", methods=["GET", "OPTIONS"], provide_automatic_options=False)
def document(path: str) -> Response:
    """Serve any pre-built document; entry pages without their trailing slash redirect to it.

    OPTIONS (RFC 9110 §9.3.7) answers 204 with ``Allow`` for a document that exists, 404 otherwise.
    """
    publication = get_publisher().current
    asked = request.environ.get("PATH_INFO", "")  # as asked for (routing merges the leading slashes of "//feed.xml")
    if "//" in asked:  # one URL per document: a path with doubled slashes leads to the one it means (RFC 3986 §6)
        meant = re.sub("//+", "/", asked.encode("latin-1").decode("utf-8", "replace"))  # PEP 3333: WSGI strings carry bytes
        return redirect(publication.content.site.url(meant), code=308)
    site_path = "/" + path
    representation = publication.document(site_path)
    if request.method == "OPTIONS":
        if representation is None and not publication.exists(site_path + "/"):
            return _response(publication.not_found)
        return Response(status=204, headers={"Allow": ALLOWED_METHODS, "Cache-Control": "no-store"})
    if representation is not None:
        return _response(representation)
    if publication.exists(site_path + "/"):
        # the public base URL comes from configuration, never from the Host header
        return redirect(publication.content.site.url(site_path + "/"), code=308)
    return _response(publication.not_found)


def not_found(error) -> Response:
    """Answer unknown paths (and Flask's own 404s) with the styled 404 page."""
    return _response(get_publisher().current.not_found)


def server_error(error) -> Response:
    """Answer an unexpected failure with a plain 500: no traceback, no internals."""
    return Response("Internal server error\n", status=500, mimetype="text/plain", headers={"Cache-Control": "no-store"})


def unavailable(error) -> Response:
    """Answer a document whose body the state lost while its file changed: the reload that follows serves it (RFC 9110 §15.6.4)."""
    headers = {"Cache-Control": "no-store", "Retry-After": "1"}
    return Response(
        "Service unavailable: this document is being published again; retry in a second\n",
        status=503,
        mimetype="text/plain",
        headers=headers,
    )
