"""Pure feed rendering: (site, entries) -> RSS 2.0, Atom 1.0 and JSON Feed 1.1 bytes.

One mapping (``_feed_generator``) feeds both XML formats through feedgen, so RSS and Atom can never
disagree; JSON Feed is built from the same FeedSpec. Nothing here reads the clock: the same
content always gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from feedgen.feed import FeedGenerator

from .models import Content, Entry, Site

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
JSON_FEED_TYPE = "application/feed+json; charset=utf-8"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
# An empty feed still needs a stable date; the epoch says "nothing published yet".
_NO_ENTRIES = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedSpec:
    """One feed (the whole site, or one section), in terms every format shares."""

    site: Site
    title: str
    description: str
    home_path: str  # the HTML page this feed belongs to
    path_prefix: str  # "" for the site feed, "/featured" for a section feed
    entries: tuple[Entry, ...]  # newest first, already limited

    def url(self, filename: str) -> str:
        """Return the absolute URL of one of this feed's documents (``feed.xml`` ...)."""
        return self.site.url(f"{self.path_prefix}/{filename}")

    @property
    def updated(self) -> datetime:
        """Return the newest change of any entry in the feed (feed-level updated / lastBuildDate)."""
        return max((e.updated for e in self.entries), default=_NO_ENTRIES)


def site_feed(content: Content) -> FeedSpec:
    """Describe the subscription feed of the whole site."""
    site = content.site
    return FeedSpec(site, site.title, site.description, "/", "", content.entries[: site.item_limit])


def _feed_generator(spec: FeedSpec, self_url: str, self_type: str) -> FeedGenerator:
    site = spec.site
    fg = FeedGenerator()
    fg.id(site.url(spec.home_path))
    fg.title(spec.title)
    fg.subtitle(spec.description)  # also the RSS <description>
    fg.author({"name": site.author})
    fg.language(site.language)
    fg.generator("feedsvc")
    # feedgen turns the *last* link into RSS <channel><link>: self first, the HTML page last.
    fg.link(href=self_url, rel="self", type=self_type.split(";")[0])
    fg.link(href=site.url(spec.home_path), rel="alternate", type="text/html")
    fg.updated(spec.updated)  # never now(): feedgen's default would change the bytes every render
    # RSS 2.0 <ttl> is in minutes; keep it in step with Cache-Control max-age.
    fg.ttl(max(1, site.max_age // 60))
    for entry in spec.entries:
        _add_entry(fg, site, entry)
    return fg


def _add_entry(fg: FeedGenerator, site: Site, entry: Entry) -> None:
    fe = fg.add_entry(order="append")  # entries arrive sorted; feedgen would otherwise prepend
    fe.id(entry.id)
    fe.guid(entry.id, permalink=False)
    fe.title(entry.title)
    fe.link(href=site.url(entry.path), rel="alternate", type="text/html")
    fe.published(entry.published)
    fe.updated(entry.updated)
    fe.category(term=entry.section, label=site.section(entry.section).title)
    if entry.body_html:
        fe.content(entry.body_html, type="html")  # Atom <content type="html">, RSS content:encoded
    fe.summary(_summary_of(entry))  # Atom <summary>, RSS <description>; after content() on purpose
    fe.load_extension("dc", atom=False, rss=True)
    fe.dc.dc_creator(site.author)  # RSS <author> must be an e-mail address; dc:creator takes a name


def _summary_of(entry: Entry) -> str:
    """Return the entry's plain-text summary; a title-only post is summarized by its title.

    Feed readers show an empty box for an Atom entry with neither content nor summary (the W3C
    validator warns: MissingTextualContent), and the seed gives posts no text we could quote.
    """
    return entry.summary or entry.title


def render_rss(spec: FeedSpec) -> bytes:
    """Render the feed as RSS 2.0."""
    return _feed_generator(spec, spec.url("feed.xml"), RSS_TYPE).rss_str(pretty=True)


def render_atom(spec: FeedSpec) -> bytes:
    """Render the feed as Atom 1.0 (RFC 4287)."""
    return _feed_generator(spec, spec.url("atom.xml"), ATOM_TYPE).atom_str(pretty=True, extensions=False)


def render_json_feed(spec: FeedSpec) -> bytes:
    """Render the feed as JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/)."""
    site = spec.site
    document = {
        "version": JSON_FEED_VERSION,
        "title": spec.title,
        "home_page_url": site.url(spec.home_path),
        "feed_url": spec.url("feed.json"),
        "description": spec.description,
        "language": site.language,
        "authors": [{"name": site.author}],
        "items": [_json_item(site, entry) for entry in spec.entries],
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


def _json_item(site: Site, entry: Entry) -> dict:
    item = {
        "id": entry.id,
        "url": site.url(entry.path),
        "title": entry.title,
    }
    # JSON Feed 1.1: an item must carry content_html or content_text.
    if entry.body_html:
        item["content_html"] = entry.body_html
    else:
        item["content_text"] = _summary_of(entry)
    item["summary"] = _summary_of(entry)
    item["date_published"] = entry.published.isoformat()  # RFC 3339
    item["date_modified"] = entry.updated.isoformat()
    item["tags"] = [site.section(entry.section).title]
    return item
