"""Every document of one content version, rendered and compressed once, keyed by site path.

The same Publication backs the live service and the static export, so they serve the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from .feeds import ATOM_TYPE, JSON_FEED_TYPE, RSS_TYPE, FeedSpec, render_atom, render_json_feed, render_rss, site_feed
from .models import Content
from .pages import FeedLink, PageContext, render_entry, render_index, render_not_found
from .representation import FEED_CACHE, FEED_HEADERS, HTML_SECURITY_HEADERS, IMMUTABLE_CACHE, Representation, build_representation

HTML_TYPE = "text/html; charset=utf-8"
_ASSETS = {  # packaged file -> media type
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml; charset=utf-8",
}
_FEED_FORMATS = (  # file name, title, media type, renderer
    ("feed.xml", "RSS", RSS_TYPE, render_rss),
    ("atom.xml", "Atom", ATOM_TYPE, render_atom),
    ("feed.json", "JSON Feed", JSON_FEED_TYPE, render_json_feed),
)


@dataclass(frozen=True)
class Publication:
    """The immutable set of documents served for one content version."""

    content: Content
    documents: Mapping[str, Representation]  # a plain dict (fastest lookup); never mutated after build
    not_found: Representation

    @property
    def version(self) -> str:
        """Return the content version this publication was built from."""
        return self.content.version


def _hashed_assets() -> dict[str, tuple[str, bytes, str]]:
    """Return asset name -> (hashed site path, bytes, media type)."""
    assets = {}
    for name, media_type in _ASSETS.items():
        data = resources.files("feedsvc").joinpath(f"static/{name}").read_bytes()
        stem, _, suffix = name.rpartition(".")
        digest = hashlib.sha256(data).hexdigest()[:12]
        assets[name] = (f"/static/{stem}.{digest}.{suffix}", data, media_type)
    return assets


def _feed_documents(spec: FeedSpec, cache_control: str) -> dict[str, Representation]:
    return {
        f"{spec.path_prefix}/{filename}": build_representation(
            render(spec), media_type, cache_control=cache_control, last_modified=spec.updated, extra_headers=FEED_HEADERS
        )
        for filename, _, media_type, render in _FEED_FORMATS
    }


def build_publication(content: Content) -> Publication:
    """Render every feed, page and asset of a content version."""
    site = content.site
    cache_control = FEED_CACHE.format(max_age=site.max_age)
    spec = site_feed(content)
    assets = _hashed_assets()
    context = PageContext(
        content=content,
        feeds=tuple(
            FeedLink(f"{site.title} ({title})", media_type.split(";")[0], spec.url(filename))
            for filename, title, media_type, _ in _FEED_FORMATS
        ),
        stylesheet=assets["style.css"][0],
        icon=assets["favicon.svg"][0],
    )

    def page(body: bytes, last_modified=spec.updated, status="200 OK") -> Representation:
        return build_representation(
            body, HTML_TYPE, cache_control=cache_control, last_modified=last_modified, extra_headers=HTML_SECURITY_HEADERS, status=status
        )

    documents: dict[str, Representation] = _feed_documents(spec, cache_control)
    documents["/"] = page(render_index(context))
    for entry in content.entries:
        documents[entry.path] = page(render_entry(context, entry), last_modified=entry.updated)
    for path, data, media_type in assets.values():
        documents[path] = build_representation(
            data, media_type, cache_control=IMMUTABLE_CACHE, extra_headers=(("X-Content-Type-Options", "nosniff"),)
        )
    not_found = page(render_not_found(context), last_modified=None, status="404 Not Found")
    return Publication(content=content, documents=documents, not_found=not_found)
