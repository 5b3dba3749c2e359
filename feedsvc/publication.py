"""Every document of one content version, rendered and compressed once, keyed by site path.

The same Publication backs the live service and the static export, so they serve the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from .feeds import ARCHIVE_MAX_AGE, ATOM_TYPE, JSON_FEED_TYPE, RSS_TYPE, FeedSpec, render_atom, render_json_feed, render_rss, site_feeds
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
    subscription_feeds: tuple[str, ...] = ()  # paths of the feeds readers subscribe to (not archives)

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


def _feed_documents(spec: FeedSpec) -> dict[str, Representation]:
    cache_control = FEED_CACHE.format(max_age=ARCHIVE_MAX_AGE if spec.history.is_archive else spec.site.max_age)
    documents = {}
    for filename, _, media_type, render in _FEED_FORMATS:
        headers = FEED_HEADERS
        if spec.hub_url:  # WebSub §4: discovery through the HTTP Link header as well as the document
            headers += (("Link", f'<{spec.hub_url}>; rel="hub", <{spec.url(filename)}>; rel="self"'),)
        documents[f"{spec.path_prefix}/{filename}"] = build_representation(
            render(spec), media_type, cache_control=cache_control, last_modified=spec.updated, extra_headers=headers
        )
    return documents


def _feed_links(spec: FeedSpec, title: str) -> tuple[FeedLink, ...]:
    return tuple(
        FeedLink(f"{title} ({name})", name, media_type.split(";")[0], spec.url(filename)) for filename, name, media_type, _ in _FEED_FORMATS
    )


def build_publication(content: Content, hub_url: str | None = None) -> Publication:
    """Render every feed, archive, page and asset of a content version."""
    site = content.site
    cache_control = FEED_CACHE.format(max_age=site.max_age)
    specs = site_feeds(content, hub_url)
    site_spec = specs[0]
    assets = _hashed_assets()
    subscriptions = {spec.path_prefix: spec for spec in specs if not spec.history.is_archive}
    context = PageContext(
        content=content,
        feeds=_feed_links(site_spec, site.title),
        stylesheet_url=site.url(assets["style.css"][0]),
        icon_url=site.url(assets["favicon.svg"][0]),
        section_feeds=tuple((section, _feed_links(subscriptions[f"/{section.key}"], section.title)) for section in site.sections),
    )

    def page(body: bytes, last_modified=site_spec.updated, status="200 OK") -> Representation:
        return build_representation(
            body, HTML_TYPE, cache_control=cache_control, last_modified=last_modified, extra_headers=HTML_SECURITY_HEADERS, status=status
        )

    documents: dict[str, Representation] = {}
    for spec in specs:
        documents.update(_feed_documents(spec))
    documents["/"] = page(render_index(context))
    for entry in content.entries:
        documents[entry.path] = page(render_entry(context, entry), last_modified=entry.updated)
    for path, data, media_type in assets.values():
        documents[path] = build_representation(
            data, media_type, cache_control=IMMUTABLE_CACHE, extra_headers=(("X-Content-Type-Options", "nosniff"),)
        )
    not_found = page(render_not_found(context), last_modified=None, status="404 Not Found")
    subscription_paths = tuple(f"{spec.path_prefix}/{filename}" for spec in subscriptions.values() for filename, *_ in _FEED_FORMATS)
    return Publication(content=content, documents=documents, not_found=not_found, subscription_feeds=subscription_paths)
