"""Pre-built HTTP representations: bytes, gzip bytes, validators and headers, made once per content version."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from werkzeug.http import http_date

Headers = tuple[tuple[str, str], ...]

FEED_CACHE = "public, max-age={max_age}"
# Hashed asset names change with their bytes, so a cached copy is never stale (RFC 8246).
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# Pages carry no script and load nothing from elsewhere but pictures (an entry's image may be an https URL).
HTML_SECURITY_HEADERS: Headers = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self' https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)
FEED_HEADERS: Headers = (
    ("X-Content-Type-Options", "nosniff"),
    # web-based feed readers fetch feeds from their own origin
    ("Access-Control-Allow-Origin", "*"),
)
_MIN_GZIP_SIZE = 256  # below this gzip's header costs more than it saves
# Level 6, not 9: measured on these documents, 9 saves 0-3 bytes and costs 40% more build time.
GZIP_LEVEL = 6
# Documents there are thousands of, each read now and then (RFC 5005 archive feeds, fetched by the
# odd reader paging through history; entry pages) get level 1, nginx's default gzip_comp_level.
# Measured on a 100,000-entry site: a day archive 1.9 ms instead of 9.0 ms, 22 % of the bytes
# instead of 17 % (45 % of rendering them was gzip at level 6, ~40 s of a 280 s build); an entry
# page (6.4 KB) 99 us instead of 177 us, 1.9 KB instead of 1.8 KB (both one round trip's worth).
RARELY_READ_GZIP_LEVEL = 1


def strong_etag(body: bytes) -> str:
    """Return a quoted strong entity tag derived from the bytes alone (same bytes, same tag, any process)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(frozen=True)
class Variant:
    """One encoding of a representation with its full 200 and 304 header lists."""

    body: bytes
    etag: str  # quoted
    headers: Headers
    not_modified_headers: Headers


@dataclass(frozen=True)
class Representation:
    """Everything needed to answer GET/HEAD for one URL, without rendering, hashing or compressing.

    Built in two steps: ``build_representation`` renders, compresses and hashes; ``stamped``
    adds the Last-Modified that the state assigns to these bytes (headers are laid out again,
    nothing is recompressed or rehashed).
    """

    body: bytes
    gzip_body: bytes | None
    content_type: str
    cache_control: str
    extra_headers: Headers = ()
    status: str = "200 OK"
    last_modified: datetime | None = None
    etag: str = ""  # of the identity bytes, quoted
    gzip_etag: str = ""
    identity: Variant = field(init=False)
    gzip: Variant | None = field(init=False)
    variants: tuple[Variant, ...] = field(init=False)
    validates: bool = field(init=False)  # conditional requests apply (not to error pages)
    # quoted ETag -> variant, for the common poll that echoes the exact tag it was given
    by_etag: Mapping[str, Variant] = field(init=False)

    def __post_init__(self) -> None:
        shared: list[tuple[str, str]] = [("Cache-Control", self.cache_control)]
        if self.last_modified is not None:
            shared.append(("Last-Modified", http_date(self.last_modified)))
        if self.gzip_body is not None:
            shared.append(("Vary", "Accept-Encoding"))

        def variant(data: bytes, etag: str, encoding: str | None) -> Variant:
            validators = (("ETag", etag), *shared)
            entity = [("Content-Type", self.content_type), ("Content-Length", str(len(data)))]
            if encoding:
                entity.append(("Content-Encoding", encoding))
            return Variant(data, etag, (*entity, *validators, *self.extra_headers), (*validators, *self.extra_headers))

        identity = variant(self.body, self.etag, None)
        compressed = variant(self.gzip_body, self.gzip_etag, "gzip") if self.gzip_body is not None else None
        object.__setattr__(self, "identity", identity)
        object.__setattr__(self, "gzip", compressed)
        object.__setattr__(self, "variants", tuple(v for v in (compressed, identity) if v is not None))
        object.__setattr__(self, "validates", self.status == "200 OK")
        object.__setattr__(self, "by_etag", {v.etag: v for v in self.variants} if self.validates else {})

    def stamped(self, last_modified: datetime | None) -> Representation:
        """Return this representation with another Last-Modified (the same object when it is unchanged)."""
        return self if last_modified == self.last_modified else replace(self, last_modified=last_modified)


def build_representation(
    body: bytes,
    content_type: str,
    *,
    cache_control: str,
    last_modified: datetime | None = None,
    extra_headers: Headers = (),
    status: str = "200 OK",
    compress: bool = True,
    gzip_level: int = GZIP_LEVEL,
) -> Representation:
    """Compress (unless told the bytes are compressed already, like pictures), hash and lay out the headers of one document."""
    compressed = gzip.compress(body, compresslevel=gzip_level, mtime=0) if compress and len(body) >= _MIN_GZIP_SIZE else None
    if compressed is not None and len(compressed) >= len(body):
        compressed = None
    return Representation(
        body=body,
        gzip_body=compressed,
        content_type=content_type,
        cache_control=cache_control,
        extra_headers=extra_headers,
        status=status,
        last_modified=last_modified,
        etag=strong_etag(body),
        gzip_etag=strong_etag(compressed) if compressed is not None else "",
    )
