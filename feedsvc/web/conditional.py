"""Choose the answer to GET/HEAD for a pre-built Representation: content coding and RFC 9110 §13 conditionals.

The one place that decides every conditional answer, for the WSGI fast path and the Flask views
alike. The common poll (a reader echoing the exact ETag it was given) is answered by string
comparison; everything else goes through Werkzeug's parsers.
"""

from __future__ import annotations

from werkzeug.http import parse_accept_header, parse_date, parse_etags
from werkzeug.sansio.http import is_resource_modified

from ..representation import Headers, Representation, Variant

NOT_MODIFIED = "304 Not Modified"
PRECONDITION_FAILED = "412 Precondition Failed"
_PRECONDITION_FAILED_HEADERS = (("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0"), ("Cache-Control", "no-store"))


def _parse_accepts_gzip(accept_encoding: str) -> bool:
    """Tell whether an Accept-Encoding value admits gzip (RFC 9110 §12.5.3).

    A coding named explicitly decides, whatever "*" says: "gzip;q=0, *" means never gzip.
    """
    qualities: dict[str, float] = {}
    for coding, quality in parse_accept_header(accept_encoding):
        qualities.setdefault(coding.lower(), quality)
    for coding in ("gzip", "x-gzip", "*"):
        if coding in qualities:
            return qualities[coding] > 0
    return False


# Accept-Encoding value -> admits gzip. Clients send a handful of distinct values: each is parsed
# once. A plain dict, not lru_cache: this lookup is on every poll, and a dict.get costs less.
_ACCEPTS_GZIP: dict[str, bool] = {}
_ACCEPTS_GZIP_MAX = 256


def accepts_gzip(accept_encoding: str) -> bool:
    """Tell whether an Accept-Encoding value admits gzip, parsing each distinct value once."""
    known = _ACCEPTS_GZIP.get(accept_encoding)
    if known is None:
        known = _parse_accepts_gzip(accept_encoding)
        if len(_ACCEPTS_GZIP) >= _ACCEPTS_GZIP_MAX:  # hostile clients send endless variants
            _ACCEPTS_GZIP.clear()
        _ACCEPTS_GZIP[accept_encoding] = known
    return known


def select_variant(representation: Representation, environ: dict) -> Variant:
    """Pick gzip when the client accepts it, else identity (on every request: a dict lookup once a value is known)."""
    compressed = representation.gzip
    if compressed is not None:
        accept_encoding = environ.get("HTTP_ACCEPT_ENCODING")
        if accept_encoding:
            admits = _ACCEPTS_GZIP.get(accept_encoding)
            if admits or (admits is None and accepts_gzip(accept_encoding)):
                return compressed
    return representation.identity


def _if_match_fails(chosen: Variant, value: str) -> bool:
    """RFC 9110 §13.1.1: strong comparison with the selected representation's tag; "*" matches any."""
    tags = parse_etags(value)
    return not (tags.star_tag or tags.contains(chosen.etag.strip('"')))


def _if_unmodified_since_fails(representation: Representation, value: str) -> bool:
    """RFC 9110 §13.1.4: fails when the document changed after the date; an invalid date is ignored."""
    since = parse_date(value)
    return since is not None and representation.last_modified is not None and representation.last_modified > since


def evaluate_preconditions(representation: Representation, chosen: Variant, environ: dict) -> str | None:
    """Return 412, 304 or None (send the representation), evaluating in RFC 9110 §13.2.2 order.

    An entity tag matches only the representation it names: the selected variant's.
    """
    if_match, if_unmodified_since = environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_UNMODIFIED_SINCE")
    if if_match is not None:  # step 1
        failed = _if_match_fails(chosen, if_match)
    else:  # step 2, only without If-Match
        failed = if_unmodified_since is not None and _if_unmodified_since_fails(representation, if_unmodified_since)
    if failed:
        return PRECONDITION_FAILED
    # steps 3 and 4 (If-None-Match decides when present, else If-Modified-Since), by Werkzeug
    if_none_match, if_modified_since = environ.get("HTTP_IF_NONE_MATCH"), environ.get("HTTP_IF_MODIFIED_SINCE")
    if (if_none_match is not None or if_modified_since is not None) and not is_resource_modified(
        http_if_none_match=if_none_match,
        http_if_modified_since=if_modified_since,
        etag=chosen.etag,
        last_modified=representation.last_modified,
    ):
        return NOT_MODIFIED
    return None


def respond(representation: Representation, environ: dict) -> tuple[str, Headers, bytes]:
    """Return status, headers and body for a GET or HEAD of this representation."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    # the common poll echoes the exact tag it got: a dict lookup, when nothing outranks If-None-Match
    if if_none_match is not None and "HTTP_IF_MATCH" not in environ and "HTTP_IF_UNMODIFIED_SINCE" not in environ:
        held = representation.by_etag.get(if_none_match)
        if held is not None and held is select_variant(representation, environ):  # the tag names the variant selected
            return NOT_MODIFIED, held.not_modified_headers, b""
    chosen = select_variant(representation, environ)
    if representation.validates:
        outcome = evaluate_preconditions(representation, chosen, environ)
        if outcome == PRECONDITION_FAILED:
            return PRECONDITION_FAILED, _PRECONDITION_FAILED_HEADERS, b""
        if outcome == NOT_MODIFIED:
            return NOT_MODIFIED, chosen.not_modified_headers, b""
    body = b"" if environ["REQUEST_METHOD"] == "HEAD" else chosen.body
    return representation.status, chosen.headers, body
