"""Choose the answer to GET/HEAD for a pre-built Representation: content coding and RFC 9110 §13 conditionals.

Shared by the WSGI fast path and the Flask views, so both behave identically. The common poll
(a reader echoing the exact ETag it was given) is answered by string comparison; everything else
goes through Werkzeug's parsers.
"""

from __future__ import annotations

from functools import lru_cache

from werkzeug.http import parse_accept_header, parse_etags
from werkzeug.sansio.http import is_resource_modified

from .representation import Headers, Representation, Variant

NOT_MODIFIED = "304 Not Modified"
PRECONDITION_FAILED = "412 Precondition Failed"
_PRECONDITION_FAILED_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0"), ("Cache-Control", "no-store"))


@lru_cache(maxsize=256)  # clients send a handful of distinct values; parse each once
def accepts_gzip(accept_encoding: str) -> bool:
    """Tell whether an Accept-Encoding value admits gzip (q-values honoured, RFC 9110 §12.5.3)."""
    accepted = parse_accept_header(accept_encoding)
    return max(accepted.quality("gzip"), accepted.quality("x-gzip")) > 0


def select_variant(representation: Representation, environ: dict) -> Variant:
    """Pick gzip when the client accepts it, else identity."""
    accept_encoding = environ.get("HTTP_ACCEPT_ENCODING")
    if accept_encoding and representation.gzip is not None and accepts_gzip(accept_encoding):
        return representation.gzip
    return representation.identity


def _unmodified_variant(representation: Representation, chosen: Variant, environ: dict) -> Variant | None:
    """Return the variant the client already holds, or None when it must get a full response.

    If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2); a tag of any of our
    encodings matches, so a client (or cache) holding the gzip bytes is not sent them again just
    because it validates with a different Accept-Encoding (the Apache "-gzip" ETag bug).
    """
    if environ.get("HTTP_IF_NONE_MATCH") is None and environ.get("HTTP_IF_MODIFIED_SINCE") is None:
        return None
    for variant in (chosen, *representation.variants):
        # If-Match is decided in respond(); werkzeug's helper would read a failed If-Match as "not modified"
        if not is_resource_modified(
            http_if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
            http_if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
            etag=variant.etag,
            last_modified=representation.last_modified,
        ):
            return variant
    return None


def _precondition_failed(representation: Representation, environ: dict) -> bool:
    """Evaluate If-Match (RFC 9110 §13.1.1: strong comparison, first in precedence)."""
    if_match = environ.get("HTTP_IF_MATCH")
    if if_match is None or not representation.by_etag:
        return False
    tags = parse_etags(if_match)
    return not (tags.star_tag or any(tags.contains(variant.etag.strip('"')) for variant in representation.variants))


def respond(representation: Representation, environ: dict) -> tuple[str, Headers, bytes]:
    """Return status, headers and body for a GET or HEAD of this representation."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        held = representation.by_etag.get(if_none_match)  # the common poll: one dict lookup
        if held is not None:
            return NOT_MODIFIED, held.not_modified_headers, b""
    chosen = select_variant(representation, environ)
    if _precondition_failed(representation, environ):
        return PRECONDITION_FAILED, _PRECONDITION_FAILED_HEADERS, b""
    held = _unmodified_variant(representation, chosen, environ) if representation.by_etag else None
    if held is not None:
        return NOT_MODIFIED, held.not_modified_headers, b""
    body = b"" if environ["REQUEST_METHOD"] == "HEAD" else chosen.body
    return representation.status, chosen.headers, body
