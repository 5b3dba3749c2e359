"""Pure feed rendering: (site, entries) -> RSS 2.0, Atom 1.0 and JSON Feed 1.1 bytes.

One mapping (``_feed_generator``) feeds both XML formats through feedgen, so RSS and Atom can never
disagree; JSON Feed is built from the same FeedSpec. Nothing here reads the clock: the same
content always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import json
import operator
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseExtension
from feedgen.ext.dc import DcEntryExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from .models import Author, Content, Entry, Site, by_period, tag_labels, tag_slug
from .urls import TAGS, feed_archive_prefix, section_prefix, tag_path, tag_prefix

RSS_TYPE = "application/rss+xml; charset=utf-8"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
JSON_FEED_TYPE = "application/feed+json; charset=utf-8"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_HISTORY_NS = "http://purl.org/syndication/history/1.0"  # RFC 5005
MEDIA_NS = "http://search.yahoo.com/mrss/"  # Media RSS: how readers find an item's picture
# An empty feed still needs a stable date; the epoch says "nothing published yet".
_NO_ENTRIES = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class History:
    """RFC 5005 §4 links of one document, as path prefixes of its sibling documents."""

    current: str | None = None  # on archive documents: the subscription document
    prev_archive: str | None = None  # the next older archive document
    next_archive: str | None = None  # the next newer archive document

    @property
    def is_archive(self) -> bool:
        """Tell whether the document is an archive (fh:archive), not the subscription document."""
        return self.current is not None


@dataclass(frozen=True)
class FeedSpec:
    """One feed document (the site's or a section's, subscription or archive), in terms every format shares."""

    site: Site
    title: str
    description: str
    home_path: str  # the HTML page this feed belongs to
    path_prefix: str  # "" for the site feed, "/featured" for a section, "/featured/archive/3" for an archive
    feed_id: str  # one id for a logical feed: its subscription and archive documents share it
    entries: tuple[Entry, ...]  # newest first, already limited
    history: History = History()
    hub_url: str | None = None  # WebSub hub, advertised by subscription documents
    # what an empty feed reports as updated: the site's newest change (the epoch would be an
    # "implausible date" to validators, and now() would change the bytes on every render)
    quiet_since: datetime = _NO_ENTRIES
    # slug -> label of the entries' tags: the site decides a tag's label, so it is an input too
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def tag_label(self) -> dict[str, str]:
        """Return tag slug -> label for this feed's entries."""
        return dict(self.labels)

    def __post_init__(self) -> None:
        # what the documents depend on besides the entries, made once: 7,000 specs are compared at every reload
        settings = (
            self.site,
            self.title,
            self.description,
            self.home_path,
            self.path_prefix,
            self.feed_id,
            self.history,
            self.hub_url,
            self.quiet_since.isoformat(),
            self.labels,
        )
        object.__setattr__(self, "_settings", settings)

    @property
    def key(self) -> tuple:
        """Return what the documents depend on, comparing entries by their source digests, never by value."""
        return (*self._settings, *(e.digest for e in self.entries))

    def same_input(self, other: FeedSpec) -> bool:
        """Tell whether ``other`` has the same ``key``, quickly when its entries are the very same objects (a reload's unchanged ones)."""
        if len(self.entries) != len(other.entries) or self._settings != other._settings:
            return False
        return all(map(operator.is_, self.entries, other.entries)) or all(
            a.digest == b.digest for a, b in zip(self.entries, other.entries, strict=True)
        )

    @functools.cached_property
    def digest(self) -> str:
        """Return a digest of ``key`` (computed once; a frozen dataclass may cache in its instance dict)."""
        return hashlib.sha256(repr(self.key).encode()).hexdigest()

    def url(self, filename: str, prefix: str | None = None) -> str:
        """Return the absolute URL of one of this feed's documents (``feed.xml`` ...), or a sibling's."""
        return self.site.url(f"{self.path_prefix if prefix is None else prefix}/{filename}")

    @property
    def updated(self) -> datetime:
        """Return the newest change of any entry in the feed (feed-level updated / lastBuildDate)."""
        return max((e.updated for e in self.entries), default=self.quiet_since)

    def links(self, filename: str) -> list[tuple[str, str]]:
        """Return the (rel, absolute URL) links to the hub and to sibling documents of the same format."""
        links = [("hub", self.hub_url)] if self.hub_url else []
        for rel, prefix in (
            ("current", self.history.current),
            ("prev-archive", self.history.prev_archive),
            ("next-archive", self.history.next_archive),
        ):
            if prefix is not None:
                links.append((rel, self.url(filename, prefix)))
        return links


ARCHIVE_NAME_LENGTH = {"day": 10, "month": 7}  # site file's archive_period -> characters of YYYY-MM-DD naming its documents


def feed_id(site: Site, prefix: str) -> str:
    """Return the permanent id of a logical feed: the site's own, or one derived from it (never from base_url)."""
    return site.id if not prefix else f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{site.id}#{prefix}')}"


def feed_family(
    site: Site,
    title: str,
    description: str,
    home_path: str,
    prefix: str,
    entries: tuple[Entry, ...],
    hub_url: str | None,
    quiet_since: datetime = _NO_ENTRIES,
    labels: Mapping[str, str] | None = None,
    earlier: Mapping[str, FeedSpec] | None = None,
) -> tuple[FeedSpec, ...]:
    """Describe a logical feed: its subscription document, then its RFC 5005 archive documents, oldest first.

    An entry's archive document is the day (or month) it was published in, so adding, deleting or
    back-dating an entry changes only the documents that hold it, and an archive URL keeps its
    entries (RFC 5005 §4: an archive document's entries SHOULD NOT change). Every entry is in
    its period's archive, the newest ones too (clients merge by id). Archives exist once the feed
    spans two periods or holds more entries than its subscription document shows: deleting entries
    down to ``item_limit`` never turns archive URLs readers were given into 404s. (A lone archive,
    linking neither way, is one the W3C validator warns of: "Archive incomplete".) Readers that
    ignore RFC 5005 just see an ordinary feed of the newest ``item_limit`` entries.

    ``earlier`` (the version before's specs by path prefix): an archive whose entries are the very
    same objects, with the same links and settings, is that version's spec, not a new one, so a
    reload after one edit makes a few specs instead of one per day of five years.
    """
    in_period = by_period(entries, ARCHIVE_NAME_LENGTH[site.archive_period])  # newest first, so each period's entries are too
    periods = sorted(in_period) if len(in_period) > 1 or len(entries) > site.item_limit else []

    def archive(period: str) -> str:
        return feed_archive_prefix(prefix, period)

    family_id = feed_id(site, prefix)
    labels = labels or {}

    def labels_of(chosen) -> tuple[tuple[str, str], ...]:
        if not labels:  # a site without tags
            return ()
        return tuple(sorted({(slug, labels[slug]) for entry in chosen if entry.tags for slug in map(tag_slug, entry.tags)}))

    subscription = FeedSpec(
        site,
        title,
        description,
        home_path,
        prefix,
        family_id,
        entries[: site.item_limit],
        History(prev_archive=archive(periods[-1]) if periods else None),
        hub_url,
        quiet_since,
        labels_of(entries[: site.item_limit]),
    )
    before = earlier.get(prefix) if earlier else None
    # the family's settings are those of the version before: its archives may be reused one by one
    reusable = before is not None and before._settings[:4] == subscription._settings[:4]

    def archive_spec(index: int, period: str) -> FeedSpec:
        chosen, prefix_of = in_period[period], archive(period)
        history = History(
            current=prefix,
            prev_archive=archive(periods[index - 1]) if index > 0 else None,
            next_archive=archive(periods[index + 1]) if index + 1 < len(periods) else None,
        )
        kept = earlier.get(prefix_of) if reusable else None
        if (
            kept is not None
            and len(kept.entries) == len(chosen)
            and all(map(operator.is_, kept.entries, chosen))
            and kept.history == history
            and kept.labels == labels_of(chosen)
        ):
            return kept
        return FeedSpec(
            site,
            f"{title} (archive {period})",
            description,
            home_path,
            prefix_of,
            family_id,
            chosen,
            history,
            # no quiet_since: an archive is never empty, so the site's newest change (a new post) is no input of it
            labels=labels_of(chosen),
        )

    return (subscription, *(archive_spec(index, period) for index, period in enumerate(periods)))


def entries_by_tag(entries: tuple[Entry, ...]) -> dict[str, tuple[Entry, ...]]:
    """Return tag slug -> its entries (newest first, as ``entries`` are), slugs sorted."""
    tagged: dict[str, list[Entry]] = {}
    for entry in entries:
        for label in entry.tags:
            tagged.setdefault(tag_slug(label), []).append(entry)
    return {slug: tuple(tagged[slug]) for slug in sorted(tagged)}


def site_feeds(
    content: Content,
    hub_url: str | None = None,
    labels: Mapping[str, str] | None = None,
    tagged: Mapping[str, tuple[Entry, ...]] | None = None,
    earlier: Mapping[str, FeedSpec] | None = None,
) -> tuple[FeedSpec, ...]:
    """Describe the site feed, one feed per section and one per tag, each with its archive documents.

    ``labels`` and ``tagged`` (``tag_labels`` and ``entries_by_tag`` of the entries), when the
    caller has them already; ``earlier``, the version before's specs by path prefix (``feed_family``).
    """
    site = content.site
    newest = max(map(operator.attrgetter("updated"), content.entries), default=_NO_ENTRIES)  # in C: 100,000 in ms
    labels = tag_labels(content.entries) if labels is None else labels
    tagged = entries_by_tag(content.entries) if tagged is None else tagged
    families = [feed_family(site, site.title, site.description, "/", "", content.entries, hub_url, newest, labels, earlier)]
    for slug, tag_entries in tagged.items():
        families.append(
            feed_family(
                site,
                f"{site.title}: {labels[slug]}",
                f"Stories tagged {labels[slug]} from {site.title}. {site.description}",
                tag_path(slug),
                tag_prefix(slug),
                tag_entries,
                hub_url,
                newest,
                labels,
                earlier,
            )
        )
    for section in site.sections:
        families.append(
            feed_family(
                site,
                f"{site.title}: {section.title}",
                f"{section.title} from {site.title}. {site.description}",
                f"/#section-{section.key}",
                section_prefix(section.key),
                content.in_section(section.key),
                hub_url,
                newest,
                labels,
                earlier,
            )
        )
    return tuple(spec for family in families for spec in family)


class _HistoryExtension(BaseExtension):
    """feedgen extension writing what feedgen has no field for: atom:link relations in RSS and fh:archive."""

    def __init__(self) -> None:
        self.links: list[tuple[str, str]] = []
        self.archive = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": FEED_HISTORY_NS} if self.archive else {}

    def extend_rss(self, feed):
        channel = feed.find("channel")
        for rel, href in self.links:  # RSS 2.0 has no link relations; RFC 5005 and WebSub use atom:link
            xml_elem(f"{{{ATOM_NS}}}link", channel, href=href, rel=rel)
        if self.archive:
            xml_elem(f"{{{FEED_HISTORY_NS}}}archive", channel)
        return feed

    def extend_atom(self, feed):
        if self.archive:
            xml_elem(f"{{{FEED_HISTORY_NS}}}archive", feed)
        return feed


class _NewsroomFeed(BaseExtension):
    """Declares the Media RSS namespace on feeds whose entries carry pictures."""

    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS}


class _NewsroomEntry(BaseExtension):
    """feedgen extension for what it writes in a way readers or validators refuse.

    - the picture as Media RSS ``media:content`` with its alternative text (``media:description``),
      and, for the site's own images (length known), as RSS ``<enclosure>`` and Atom
      ``link rel="enclosure"``: feedgen 1.0 writes entry links without their rel and type, so its
      enclosure would read as a second alternate link;
    - Atom authors with a uri: feedgen's ``author()`` would also write RSS ``<author>`` beside
      ``dc:creator`` (two elements saying one thing: a validator warning), so RSS gets dc:creator only.
    """

    def __init__(self) -> None:
        self.image = None
        self.authors: tuple[Author, ...] = ()

    def _media(self, parent) -> None:
        image = self.image
        if image is None:
            return
        content = xml_elem(f"{{{MEDIA_NS}}}content", parent, url=image.url, medium="image")
        if image.file is not None:
            file = image.file
            content.attrib.update(
                {"type": file.media_type, "fileSize": str(file.size), "width": str(file.width), "height": str(file.height)}
            )
        description = xml_elem(f"{{{MEDIA_NS}}}description", content, type="plain")
        description.text = image.alt

    def extend_rss(self, item):
        file = self.image.file if self.image is not None else None
        if file is not None:  # RSS 2.0: url, length and type are all required
            xml_elem("enclosure", item, url=self.image.url, length=str(file.size), type=file.media_type)
        self._media(item)
        return item

    def extend_atom(self, entry):
        file = self.image.file if self.image is not None else None
        if file is not None:  # RFC 4287 §4.2.7.2
            xml_elem("link", entry, rel="enclosure", href=self.image.url, type=file.media_type, length=str(file.size))
        for author in self.authors:
            element = xml_elem("author", entry)
            xml_elem("name", element).text = author.name
            if author.url:
                xml_elem("uri", element).text = author.url
            if author.email:
                xml_elem("email", element).text = author.email
        self._media(entry)
        return entry


def _feed_generator(spec: FeedSpec) -> FeedGenerator:
    """Map a FeedSpec onto feedgen once; both XML formats are written from this one generator."""
    site = spec.site
    fg = FeedGenerator()
    fg.id(spec.feed_id)
    fg.title(spec.title)
    fg.subtitle(spec.description)  # Atom's <subtitle>; RSS's <description> is set by render_xml_feeds
    fg.author({"name": site.author})
    fg.language(site.language)
    fg.generator("feedsvc")
    if spec.hub_url or spec.history != History():
        fg.register_extension("history", _HistoryExtension, atom=True, rss=True)
        fg.history.archive = spec.history.is_archive
    fg.updated(spec.updated)  # never now(): feedgen's default would change the bytes every render
    # RSS 2.0 <ttl> is in minutes; keep it in step with Cache-Control max-age.
    fg.ttl(max(1, site.max_age // 60))
    # once per feed, not per entry: feedgen's entry-level load_extension re-imports the module each time
    fg.load_extension("dc", atom=False, rss=True)
    labels = spec.tag_label
    pictured = any(entry.image or entry.authors for entry in spec.entries)
    if pictured:
        fg.register_extension("newsroom", _NewsroomFeed, _NewsroomEntry, atom=True, rss=True)
    shared = getattr(_shared, "entries", None)
    for entry in spec.entries:
        if shared is None:
            fe = _feed_entry(FeedEntry(), site, entry, labels, pictured)
        else:  # the same entry with the same labels (a spec's input) and extensions gives the same elements; the block
            # keeps the entry and the site alive, so their ids stay theirs
            key = (id(entry), id(site), pictured, tuple(labels[tag_slug(label)] for label in entry.tags))
            if key not in shared:
                shared[key] = (entry, site, _feed_entry(_SharedEntry(), site, entry, labels, pictured))
            fe = shared[key][2]
        fg.add_entry(fe, order="append")  # entries arrive sorted; feedgen would otherwise prepend
    return fg


class _SharedEntry(FeedEntry):
    """A feedgen entry that builds its RSS item and Atom entry once, however many feeds show it.

    feedgen builds them again for every feed, and an entry is in at least two (its site's day
    archive and its section's): ~15 % of a build's writing, sampled. The element moves (lxml) into
    each feed's tree in turn, which ``render_xml_feeds`` writes out before the next feed takes it;
    the key keeps feeds with other namespaces (``pictured``) apart, so it is written the same way
    in each.
    """

    def __init__(self) -> None:
        super().__init__()
        self._rss_item = None
        self._atom_entry = None

    def rss_entry(self, extensions=True):
        if self._rss_item is None:
            self._rss_item = super().rss_entry(extensions)
        return self._rss_item

    def atom_entry(self, extensions=True):
        if self._atom_entry is None:
            self._atom_entry = super().atom_entry(extensions)
        return self._atom_entry


_shared = threading.local()


@contextlib.contextmanager
def sharing_entries() -> Iterator[None]:
    """Within this block, this thread builds each entry's feed elements once for all the feeds it renders.

    For a batch of feeds that show the same entries (a build's chunk of days); what is built is
    kept until the block ends.
    """
    _shared.entries = {}
    try:
        yield
    finally:
        _shared.entries = None


def _set_links(fg: FeedGenerator, spec: FeedSpec, filename: str, media_type: str) -> FeedGenerator:
    """Point the generator's links at one format's documents (self, hub, archives, the HTML page)."""
    # feedgen turns the *last* link into RSS <channel><link>: self first, the HTML page last.
    fg.link(href=spec.url(filename), rel="self", type=media_type.split(";")[0], replace=True)
    links = spec.links(filename)
    for rel, href in links:
        fg.link(href=href, rel=rel)
    fg.link(href=spec.site.url(spec.home_path), rel="alternate", type="text/html")
    if links or spec.history.is_archive:
        fg.history.links = links
    return fg


def _feed_entry(fe: FeedEntry, site: Site, entry: Entry, labels: dict[str, str], pictured: bool) -> FeedEntry:
    # the extensions FeedGenerator.add_entry would give it, in its order (it skips those already there)
    fe.register_extension("dc", DcEntryExtension, atom=False, rss=True)
    if pictured:
        fe.register_extension("newsroom", _NewsroomEntry, atom=True, rss=True)
    fe.id(entry.id)
    fe.guid(entry.id, permalink=False)
    fe.title(entry.title)
    fe.link(href=site.url(entry.path), rel="alternate", type="text/html")
    fe.published(entry.published)
    fe.updated(entry.updated)
    fe.category(term=entry.section, label=site.section(entry.section).title)
    for slug in map(tag_slug, entry.tags):  # Atom: the slug is the stable term, the tag page's folder the scheme
        fe.category(term=slug, label=labels[slug], scheme=site.url(TAGS))
    body_html, _, summary = entry.texts()
    if body_html and site.feed_content == "full":
        fe.content(body_html, type="html")  # Atom <content type="html">, RSS content:encoded
    # RSS <description> is HTML to every reader, so the plain-text summary goes in HTML-escaped
    # ("<aside>" stays a word); Atom says so with type="html". After content() on purpose.
    fe.summary(html.escape(_summary_of(entry, summary), quote=False), type="html")
    # RSS <author> must be an e-mail address; dc:creator takes a name (one element per author)
    fe.dc.dc_creator([author.name for author in entry.authors] or site.author)
    if entry.image is not None or entry.authors:
        fe.newsroom.image = entry.image
        fe.newsroom.authors = entry.authors
    return fe


def _summary_of(entry: Entry, summary: str) -> str:
    """Return the entry's plain-text summary (``summary``, from ``Entry.texts``); a title-only post is summarized by its title.

    Feed readers show an empty box for an Atom entry with neither content nor summary (the W3C
    validator warns: MissingTextualContent), and the seed gives posts no text we could quote.
    """
    return summary or entry.title


def render_xml_feeds(spec: FeedSpec) -> tuple[bytes, bytes]:
    """Render the feed as RSS 2.0 and as Atom 1.0 (RFC 4287) from one feedgen mapping."""
    fg = _feed_generator(spec)
    # Readers render the channel's <description> as HTML (as an item's): its angle brackets go in
    # escaped, so "<script>" in a site's description stays words. Not its "&": the W3C validator
    # takes the channel description for text and warns of HTML at "&amp;amp;" ("Sport & more").
    # Atom's <subtitle> is text.
    fg.description(spec.description.replace("<", "&lt;").replace(">", "&gt;"))
    rss = _set_links(fg, spec, "feed.xml", RSS_TYPE).rss_str(pretty=True)
    fg.subtitle(spec.description)
    atom = _set_links(fg, spec, "atom.xml", ATOM_TYPE).atom_str(pretty=True)
    return rss, atom


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
    }
    if spec.hub_url:
        document["hubs"] = [{"type": "WebSub", "url": spec.hub_url}]
    if spec.history.prev_archive is not None:
        # JSON Feed 1.1 pagination: next_url leads to the next (older) page
        document["next_url"] = spec.url("feed.json", spec.history.prev_archive)
    labels = spec.tag_label
    document["items"] = [_json_item(site, entry, labels) for entry in spec.entries]
    # compact separators keep json on its C encoder (indent= would switch to the pure-Python one)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _json_author(author: Author) -> dict:
    # JSON Feed 1.1 authors have a name, url and avatar, no e-mail address
    return {"name": author.name, "url": author.url} if author.url else {"name": author.name}


def _json_item(site: Site, entry: Entry, labels: dict[str, str]) -> dict:
    item = {
        "id": entry.id,
        "url": site.url(entry.path),
        "title": entry.title,
    }
    # JSON Feed 1.1: an item must carry content_html or content_text.
    body_html, _, summary = entry.texts()
    if body_html and site.feed_content == "full":
        item["content_html"] = body_html
    else:
        item["content_text"] = _summary_of(entry, summary)
    item["summary"] = _summary_of(entry, summary)
    if entry.image is not None:
        item["image"] = entry.image.url
    item["date_published"] = entry.published.isoformat()  # RFC 3339
    item["date_modified"] = entry.updated.isoformat()
    if entry.authors:
        item["authors"] = [_json_author(author) for author in entry.authors]
    item["tags"] = [site.section(entry.section).title, *(labels[tag_slug(label)] for label in entry.tags)]
    return item
