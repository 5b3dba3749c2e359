"""Every document of one content version, rendered and compressed once, keyed by site path.

The same Publication backs the live service and the static export, so they serve the same bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources

from . import identity
from .feeds import (
    ATOM_TYPE,
    JSON_FEED_TYPE,
    RSS_TYPE,
    FeedSpec,
    entries_by_tag,
    render_json_feed,
    render_xml_feeds,
    site_feeds,
)
from .indexes import (
    OPML_TYPE,
    ROBOTS_TYPE,
    SITEMAP_LIMIT,
    SITEMAP_TYPE,
    render_opml,
    render_robots,
    render_sitemap,
    render_sitemap_index,
)
from .markdown import shorten
from .media import MediaError, read_picture
from .models import Content, Entry, EntryPages, MediaFile, Site, by_period, tag_labels
from .pages import (
    ArchiveMonth,
    FeedLink,
    PageContext,
    Pager,
    page_context,
    render_archive_index,
    render_archive_month,
    render_entry,
    render_index,
    render_not_found,
    render_tag_page,
    render_tags_index,
)
from .problems import BodyUnavailableError, ContentError, Problem, StaleBuildError
from .representation import (
    FEED_CACHE,
    FEED_HEADERS,
    GZIP_LEVEL,
    HTML_SECURITY_HEADERS,
    IMMUTABLE_CACHE,
    RARELY_READ_GZIP_LEVEL,
    Representation,
    build_representation,
)
from .urls import (
    HOME,
    OPML,
    ROBOTS,
    SITEMAP,
    TAGS,
    PathTable,
    Source,
    archive_index_path,
    archive_month_path,
    asset_path,
    feed_paths,
    section_prefix,
    sitemap_part_path,
    tag_page_path,
    tag_path,
    tag_prefix,
)

HTML_TYPE = "text/html; charset=utf-8"
_ASSETS = {  # packaged file -> media type
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml; charset=utf-8",
}
# path -> quoted ETag in, path -> when those bytes last changed out (the state, through the Publisher)
Stamper = Callable[[Mapping[str, str]], Mapping[str, datetime | None]]  # None: no Last-Modified
# Documents rendered on request (entry pages beyond the newest, RFC 5005 archive pages) are kept,
# most recently used first, up to this many bytes (identity + gzip) per worker and version; the
# rest are rendered again when asked for (same bytes, same ETag, same Last-Modified). Old documents
# are rarely asked for twice by the same worker (a crawler or an archive-walking reader reads each
# once; a CDN keeps what is popular): 4 MiB holds ~370 entry pages or ~5 days of archive feeds in
# three formats, and rendering one again costs 1-50 ms. At 100,000 entries, 64 MiB cost each worker
# ~40 MB after 300 old pages and 100 archive feeds, 16 MiB ~19 MB: most of the memory a worker
# gains after its start.
LAZY_CACHE_BYTES = 4 * 1024 * 1024
# Entry pages rendered with the version (served by the fast path from the start): the newest ones,
# which the landing page and the subscription feeds link to.
HOT_ENTRY_PAGES = 100
TAG_PAGE_SIZE = 50  # entries on one page of a tag
FEED_FORMATS = (  # file name, format name, media type
    ("feed.xml", "RSS", RSS_TYPE),
    ("atom.xml", "Atom", ATOM_TYPE),
    ("feed.json", "JSON Feed", JSON_FEED_TYPE),
)


class RenderedCache:
    """Documents rendered on request, least recently used dropped first, within a byte budget (thread-safe)."""

    def __init__(self, budget: int = LAZY_CACHE_BYTES):
        self.budget = budget
        self.size = 0
        self._documents: OrderedDict[str, Representation] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _cost(representation: Representation) -> int:
        return len(representation.body) + len(representation.gzip_body or b"")

    def get(self, path: str) -> Representation | None:
        with self._lock:
            found = self._documents.get(path)
            if found is not None:
                self._documents.move_to_end(path)
            return found

    def update(self, documents: Mapping[str, Representation]) -> None:
        with self._lock:
            for path, representation in documents.items():
                previous = self._documents.pop(path, None)
                if previous is not None:
                    self.size -= self._cost(previous)
                self._documents[path] = representation
                self.size += self._cost(representation)
            while self.size > self.budget and len(self._documents) > 1:
                _, dropped = self._documents.popitem(last=False)
                self.size -= self._cost(dropped)

    def items(self) -> list[tuple[str, Representation]]:
        with self._lock:
            return list(self._documents.items())


@dataclass(frozen=True)
class Publication:
    """The documents served for one content version.

    ``documents`` is a plain dict (the fastest lookup for the hot path): the landing page, the
    subscription feeds, the newest entry pages and the assets, rendered with the version. Every
    other entry page and the RFC 5005 archive pages (thousands, rarely read) are rendered the
    first time one is asked for (``document``) and kept in a bounded cache (``rendered``).
    """

    content: Content
    documents: dict[str, Representation]
    not_found: Representation
    subscription_feeds: tuple[str, ...] = ()  # paths of the feeds readers subscribe to (not archives)
    feed_specs: Mapping[str, FeedSpec] = field(default_factory=dict)  # every feed document's path -> its spec
    page_key: tuple = ()  # what every entry page depends on besides its entry
    stamp: Stamper | None = None  # gives documents rendered later their Last-Modified
    pages: Mapping[str, Entry] = field(default_factory=dict)  # every entry page's path -> its entry
    render_page: Callable[[Entry], Representation] | None = None
    rendered: RenderedCache = field(default_factory=RenderedCache)
    # other documents rendered on request; None when the document is gone (an image replaced since the version was built)
    renderers: Mapping[str, Callable[[], Representation | None]] = field(default_factory=dict)
    feeds: Mapping[str, FeedSpec] = field(default_factory=dict)  # every feed spec by its path prefix
    moved: Mapping[str, str] = field(default_factory=dict)  # old path -> new path (``redirects_of``): 308s among the documents

    @property
    def version(self) -> str:
        """Return the content version this publication was built from."""
        return self.content.version

    def cached(self, path: str) -> Representation | None:
        """Return the document at ``path`` if it is rendered already."""
        found = self.documents.get(path)
        return found if found is not None else self.rendered.get(path)

    def document(self, path: str) -> Representation | None:
        """Return the document at ``path``, rendering an entry or archive page on request."""
        found = self.cached(path)
        if found is not None:
            return found
        # two threads may race to render the same page: both produce the same bytes
        if path in self.feed_specs:
            rendered = _feed_documents(self.feed_specs[path])
        elif path in self.pages and self.render_page is not None:
            rendered = {path: self.render_page(self.pages[path])}
        elif path in self.renderers:
            found = self.renderers[path]()
            if found is None:
                return None
            rendered = {path: found}
        else:
            return None
        # a newer version is served elsewhere (this worker has not switched yet): no Last-Modified rather than a wrong one
        with contextlib.suppress(StaleBuildError):
            rendered = _stamped(rendered, self.stamp)
        self.rendered.update(rendered)
        return rendered[path]

    def shown_entries(self, path: str) -> tuple[Entry, ...]:
        """Return the entries the document at ``path`` shows with their bodies: an entry page's entry, a feed's items."""
        if path in self.feed_specs:
            return self.feed_specs[path].entries
        if path in self.pages:
            return (self.pages[path],)
        return ()

    def prepare(self, paths: Iterable[str]) -> None:
        """Load from the state, together, the bodies the documents at ``paths`` will show (one query, not one a document)."""
        _load_bodies(entry for path in paths for entry in self.shown_entries(path))

    def input_key(self, path: str) -> str | None:
        """Return a digest of everything the document at ``path`` is made from, without rendering it (None: unknown).

        Known for every document there are many of: entry pages (the page context and the entry's
        digest), feed documents (their FeedSpec, entries by digest), month and tag pages and
        images (what their renderer is given, entries by digest). The same key means the same
        bytes from the same code, so an export can keep such a file from the last export instead
        of rendering it again.
        """
        if path in self.feed_specs:
            material = repr((path, self.feed_specs[path].digest))
        elif path in self.pages:
            material = repr((path, self._page_key_digest, self.pages[path].digest))
        elif isinstance(self.renderers.get(path), functools.partial):
            renderer = self.renderers[path]
            given = [tuple(e.digest for e in a) if isinstance(a, tuple) and a and isinstance(a[0], Entry) else a for a in renderer.args]
            material = repr((path, self._page_key_digest, renderer.func.__qualname__, given))
        else:
            return None
        return hashlib.sha256(material.encode()).hexdigest()

    @functools.cached_property
    def _page_key_digest(self) -> str:  # (cached_property writes the instance dict: allowed on a frozen dataclass)
        return hashlib.sha256(repr(self.page_key).encode()).hexdigest()

    def exists(self, path: str) -> bool:
        """Tell whether a document is published at ``path``, rendered yet or not."""
        return path in self.documents or path in self.pages or path in self.feed_specs or path in self.renderers

    def paths(self) -> set[str]:
        """Return the path of every document, rendered yet or not."""
        return self.documents.keys() | self.feed_specs.keys() | self.pages.keys() | self.renderers.keys()


def subscription_topics(publication: Publication) -> dict[str, str]:
    """Return the absolute URL and entity tag of every subscription feed (a WebSub hub's topics).

    A tag's feeds are rendered on request: a digest of what they are made from (and of the code
    that renders them) stands for their entity tag, so a hub hears of every change without them
    being rendered.
    """
    site = publication.content.site
    topics = {}
    for path in publication.subscription_feeds:
        found = publication.documents.get(path)
        topics[site.url(path)] = (
            found.etag if found is not None else f'"inputs-{identity.with_code(str(publication.input_key(path)))[:32]}"'
        )
    return topics


@dataclass(frozen=True)
class HotSet:
    """The documents a version was served with from memory, kept in the state for the next start of a worker.

    A restart answers with them at once while its workers load the archive in the background
    (``startup``): the same bytes, entity tags and Last-Modified the last run served.
    """

    version: str
    loaded_version: str  # the load's version (before scheduled entries were released): the kept version's
    entries: int
    documents: Mapping[str, Representation]
    not_found: Representation
    next_release: datetime | None  # a scheduled entry due then is not in them
    topics: Mapping[str, str]  # ``subscription_topics``: what this version tells a WebSub hub


def hot_set(publication: Publication, loaded_version: str) -> HotSet:
    """Return the hot set ``publication`` serves from memory (built from the load of version ``loaded_version``)."""
    content = publication.content
    return HotSet(
        content.version,
        loaded_version,
        len(content.entries),
        dict(publication.documents),
        publication.not_found,
        content.next_release,
        subscription_topics(publication),
    )


@cache  # packaged files: read, hash and compress once per process, not per content version
def _asset_documents() -> dict[str, tuple[str, Representation]]:
    """Return asset name -> (hashed site path, representation)."""
    assets = {}
    for name, media_type in _ASSETS.items():
        data = resources.files("feedsvc").joinpath(f"static/{name}").read_bytes()
        representation = build_representation(
            data, media_type, cache_control=IMMUTABLE_CACHE, extra_headers=(("X-Content-Type-Options", "nosniff"),)
        )
        assets[name] = (asset_path(name, hashlib.sha256(data).hexdigest()), representation)
    return assets


def _stamped(documents: dict[str, Representation], stamp: Stamper | None) -> dict[str, Representation]:
    """Give each document the Last-Modified its bytes have (none without a store)."""
    if stamp is None:
        return documents
    changed = stamp({path: representation.etag for path, representation in documents.items()})
    return {path: representation.stamped(changed.get(path)) for path, representation in documents.items()}


def _load_bodies(entries: Iterable[Entry]) -> None:
    """Load the stored bodies of a document's entries together (one query a store), before it renders them one by one."""
    bodies: dict[object, list] = {}  # models.StoredText by the cache that keeps them
    for entry in entries:
        store = getattr(entry.body, "store", None)
        if store is not None:
            bodies.setdefault(store, []).append(entry.body)
    for store, found in bodies.items():
        store.load_bodies(found)


def _feed_documents(spec: FeedSpec) -> dict[str, Representation]:
    _load_bodies(spec.entries)
    cache_control = FEED_CACHE.format(max_age=spec.site.max_age)
    rss, atom = render_xml_feeds(spec)
    bodies = {"feed.xml": rss, "atom.xml": atom, "feed.json": render_json_feed(spec)}
    gzip_level = RARELY_READ_GZIP_LEVEL if spec.history.is_archive else GZIP_LEVEL
    documents = {}
    for filename, _, media_type in FEED_FORMATS:
        headers = FEED_HEADERS
        if spec.hub_url:  # WebSub §4: discovery through the HTTP Link header as well as the document
            headers += (("Link", f'<{spec.hub_url}>; rel="hub", <{spec.url(filename)}>; rel="self"'),)
        documents[f"{spec.path_prefix}/{filename}"] = build_representation(
            bodies[filename], media_type, cache_control=cache_control, extra_headers=headers, gzip_level=gzip_level
        )
    return documents


def _feed_links(spec: FeedSpec, title: str) -> tuple[FeedLink, ...]:
    return tuple(
        FeedLink(f"{title} ({name})", name, media_type.split(";")[0], spec.url(filename)) for filename, name, media_type in FEED_FORMATS
    )


def _feed_paths(spec: FeedSpec) -> list[str]:
    return feed_paths(spec.path_prefix)


def _html_archives(
    content: Content, context: PageContext, page: Callable[[bytes], Representation]
) -> tuple[dict[str, Representation], dict[str, Callable[[], Representation]]]:
    """The HTML archives of the site and of each section: an index of months, then a page per month.

    Months are UTC months, like the feed archives' days, so a page's URL and entries never depend
    on the server's zone; an entry's month is fixed by its own date. Indexes are small and
    rendered with the version; month pages (hundreds of entries each) on request.
    """
    site = content.site
    scopes = [("", "Archive", "story", content.entries, "All sections")]
    scopes += [(section_prefix(s.key), f"{s.title}: archive", "post", content.in_section(s.key), s.title) for s in site.sections]
    indexes: dict[str, Representation] = {}
    months_of: dict[str, Callable[[], Representation]] = {}

    def month_page(*args) -> Representation:
        return page(render_archive_month(context, *args))

    for prefix, heading, noun, entries, _ in scopes:
        by_month = by_period(entries, 7)  # newest first, so are the months
        index_url = site.url(archive_index_path(prefix))
        months = tuple(
            ArchiveMonth(datetime.strptime(key, "%Y-%m").strftime("%B %Y"), site.url(archive_month_path(prefix, key)), len(found))
            for key, found in by_month.items()
        )
        others = tuple((label, site.url(archive_index_path(other))) for other, _, _, _, label in scopes if other != prefix)
        indexes[archive_index_path(prefix)] = page(render_archive_index(context, heading, noun, months, others))
        for number, (key, found) in enumerate(by_month.items()):
            newer = months[number - 1] if number else None
            older = months[number + 1] if number + 1 < len(months) else None
            month_heading = f"{heading}: {months[number].label}"
            months_of[archive_month_path(prefix, key)] = functools.partial(month_page, month_heading, found, index_url, newer, older)
    return indexes, months_of


def _media_document(folder: str, media: MediaFile) -> Representation | None:
    """Read a content folder image for its hashed URL; None when the file no longer has those bytes."""
    try:  # non-blocking, a regular file of its size: a FIFO put in its place is refused at once, never waited on
        data = read_picture(os.path.join(folder, media.name), media.name, media.size)
    except MediaError:
        return None
    if hashlib.sha256(data).hexdigest() != media.digest:
        return None  # replaced since this version was built: the next version names the new bytes
    return build_representation(
        data, media.media_type, cache_control=IMMUTABLE_CACHE, extra_headers=(("X-Content-Type-Options", "nosniff"),), compress=False
    )


def _pages_of(entries: tuple[Entry, ...], size: int) -> list[tuple[Entry, ...]]:
    return [entries[start : start + size] for start in range(0, len(entries), size)] or [()]


def _tag_pages(
    context: PageContext,
    page: Callable[[bytes], Representation],
    subscriptions: Mapping[str, FeedSpec],
    tagged: Mapping[str, tuple[Entry, ...]],
) -> tuple[dict[str, Representation], dict[str, Callable[[], Representation]]]:
    """The tags index (rendered with the version) and each tag's pages, newest first (rendered on request).

    A tag's first page is ``/tags/<slug>/``, the next ones ``/tags/<slug>/page/2/`` and on.
    """
    site = context.content.site
    labels = context.tag_labels
    index = tuple(
        sorted(((labels[slug], site.url(tag_path(slug)), len(found)) for slug, found in tagged.items()), key=lambda t: t[0].casefold())
    )
    pages: dict[str, Callable[[], Representation]] = {}

    def tag_page(*args) -> Representation:
        return page(render_tag_page(context, *args))

    for slug, found in tagged.items():
        chunks = _pages_of(found, TAG_PAGE_SIZE)
        paths = [tag_page_path(slug, number) for number in range(1, len(chunks) + 1)]
        feeds = _feed_links(subscriptions[tag_prefix(slug)], labels[slug])
        for number, chunk in enumerate(chunks, start=1):
            pager = Pager(
                number,
                len(chunks),
                site.url(paths[number - 2]) if number > 1 else None,
                site.url(paths[number]) if number < len(chunks) else None,
            )
            pages[paths[number - 1]] = functools.partial(tag_page, labels[slug], chunk, pager, feeds)
    return {TAGS: page(render_tags_index(context, index))}, pages


def _sitemaps(content: Content, tagged: Mapping[str, tuple[Entry, ...]]) -> dict[str, Callable[[], Representation]]:
    """The sitemap (an index of sitemaps beyond SITEMAP_LIMIT pages): landing page, archives, tags, entries.

    Rendered on request: only the number of pages is needed to know which documents there are.
    """
    site = content.site
    entries = content.entries
    count = 2 + len(site.sections) + (1 + len(tagged) if tagged else 0) + len(entries)

    def urls(start: int = 0, stop: int | None = None) -> list[tuple[str, datetime | None]]:
        """Return the sitemap's URLs ``[start:stop]``: an entry's URL is made only for the file that lists it."""
        newest = entries[0].updated if entries else None
        found = [(site.url(HOME), newest), (site.url(archive_index_path("")), newest)]
        for section in site.sections:
            latest = max((e.updated for e in content.in_section(section.key)), default=None)
            found.append((site.url(archive_index_path(section_prefix(section.key))), latest))
        if tagged:
            found.append((site.url(TAGS), newest))
        found += [(site.url(tag_path(slug)), max(e.updated for e in tag_entries)) for slug, tag_entries in tagged.items()]
        listed = entries[max(0, start - len(found)) : None if stop is None else max(0, stop - len(found))]
        return found[start:stop] + [(site.url(entry.path), entry.updated) for entry in listed]

    def document(body: bytes) -> Representation:
        return build_representation(body, SITEMAP_TYPE, cache_control=FEED_CACHE.format(max_age=site.max_age))

    if count <= SITEMAP_LIMIT:
        return {SITEMAP: lambda: document(render_sitemap(urls()))}
    starts = range(0, count, SITEMAP_LIMIT)

    def index() -> Representation:
        listed = urls()
        newest = [max((m for _, m in listed[start : start + SITEMAP_LIMIT] if m is not None), default=None) for start in starts]
        return document(render_sitemap_index([(site.url(sitemap_part_path(n)), m) for n, m in enumerate(newest, start=1)]))

    def part(start: int) -> Representation:
        return document(render_sitemap(urls(start, start + SITEMAP_LIMIT)))

    parts = {sitemap_part_path(n): functools.partial(part, start) for n, start in enumerate(starts, start=1)}
    return {SITEMAP: index, **parts}


def _opml(content: Content, subscriptions: Mapping[str, FeedSpec]) -> bytes:
    """Every subscription feed of the site, grouped: the site's, each section's, each tag's (RSS URLs)."""
    site = content.site

    def feed(spec: FeedSpec) -> tuple[str, str, str]:
        return spec.title, spec.url("feed.xml"), site.url(spec.home_path)

    groups = [(site.title, [feed(subscriptions[""])]), ("Sections", [feed(subscriptions[section_prefix(s.key)]) for s in site.sections])]
    tags = [feed(spec) for prefix, spec in sorted(subscriptions.items()) if prefix.startswith(TAGS)]
    if tags:
        groups.append(("Tags", tags))
    return render_opml(site, groups, subscriptions[""].updated)


def redirects_of(content: Content) -> dict[str, str]:
    """Return old path -> new path of every permanent redirect: the site file's ``redirects``, each published entry's ``aliases``."""
    moved = dict(content.site.redirects)
    for entry in content.entries:  # a draft's or a scheduled entry's aliases lead nowhere yet
        if entry.aliases:  # (most have none: 100,000 entry paths made for nothing cost a reload 50 ms)
            moved.update(dict.fromkeys(entry.aliases, entry.path))
    return moved


def _redirect(site: Site, path: str, cache_control: str) -> Representation:
    """A 308 to ``path`` (RFC 9110 §15.4.9: permanent, the method kept), with a line for people whose client does not follow it."""
    url = site.url(path)
    body = f'<!doctype html>\n<html lang="{html.escape(site.language)}"><title>Moved</title><p>Moved to <a href="{html.escape(url)}">{html.escape(url)}</a>.</p></html>\n'
    return build_representation(
        body.encode(),
        HTML_TYPE,
        cache_control=cache_control,
        extra_headers=(("Location", url), *HTML_SECURITY_HEADERS),
        status="308 Permanent Redirect",
    )


def _redirect_sources(content: Content) -> Iterator[tuple[str, str, Source]]:
    """Yield (old path, new path, where it is written) for every redirect, repeats included (the path table names them)."""
    for old, new in content.site.redirects:
        yield old, new, Source("site.yaml", "redirects", f"the redirect {old} -> {new}")
    for entry in content.entries:
        for alias in entry.aliases:  # (no entry.path made for an entry without aliases)
            yield alias, entry.path, Source(entry.source, "aliases", f"the alias {alias} of {entry.path}")


def _check_redirects(content: Content, moved: Mapping[str, str], served: Callable[[str], bool]) -> None:
    """Refuse a redirect from a path that is served or redirected elsewhere, to a path that is redirected again, or to nothing."""
    table = PathTable()
    problems = []
    for old, new, source in _redirect_sources(content):
        table.add([old], source)
        if served(old):
            problems.append(
                Problem(source.file, source.field, f"{source.what} would hide the document this site serves at {old}; remove it")
            )
        elif new in moved and not served(new):  # (a redirect from a served path is that path's problem, above)
            problems.append(
                Problem(source.file, source.field, f"{source.what} chains to the redirect {new} -> {moved[new]}; lead to {moved[new]}")
            )
        elif not served(new):
            hint = f"; did you mean {new}/?" if served(new + "/") else ""
            problems.append(Problem(source.file, source.field, f"{source.what} leads to {new}, which this site does not serve{hint}"))
    if table.problems or problems:
        raise ContentError([*table.problems, *problems])


def _check_paths(
    content: Content,
    specs: Iterable[FeedSpec],
    tagged: Mapping[str, tuple[Entry, ...]],
    labels: Mapping[str, str],
    documents: Mapping[str, Representation],
    archive_months: Mapping[str, object],
    tag_pages: Mapping[str, object],
    images: Mapping[str, MediaFile],
    pages: EntryPages,
) -> None:
    """Register every path of the version with its source; raise ContentError naming both sources of any path made twice."""
    table = PathTable()
    site_file = Source("site.yaml", "sections", "a document of the site itself")
    by_prefix: dict[str, Source] = {"": site_file}
    for section in content.site.sections:
        by_prefix[section_prefix(section.key)] = Source("site.yaml", "sections", f"a document of section {section.key!r}")
    for slug, entries in tagged.items():
        by_prefix[tag_prefix(slug)] = Source(entries[0].source, "tags", f"a document of tag {labels[slug]!r}")
    for spec in specs:
        table.add(_feed_paths(spec), by_prefix[spec.history.current if spec.history.is_archive else spec.path_prefix])
    for path in archive_months:
        table.add([path], by_prefix[path.rpartition("/archive/")[0]])
    for prefix, source in by_prefix.items():
        table.add([tag_path(prefix.removeprefix(TAGS)) if prefix.startswith(TAGS) else archive_index_path(prefix)], source)
    for path in tag_pages:
        table.add([path], by_prefix[tag_prefix(path.removeprefix(TAGS).partition("/")[0])])
    table.add([path for path in documents if path not in table.sources and not pages.__contains__(path)], site_file)
    for path, media in images.items():
        table.add([path], Source(media.name, "file", f"the picture {media.name}"))
    table.add_entries(pages, lambda path: Source(pages[path].source, "slug", f"the page of {pages[path].source}"))
    if table.problems:
        raise ContentError(table.problems)


def build_publication(
    content: Content, hub_url: str | None = None, previous: Publication | None = None, stamp: Stamper | None = None
) -> Publication:
    """Render the hot documents of a content version: landing page, subscription feeds, newest entry pages.

    Other entry pages and archive pages are rendered on first request (``Publication.document``).

    With ``previous`` (the version being replaced), documents whose inputs did not change are
    reused instead of rendered again, so an edit to one of 10,000 entries re-renders little.
    Inputs are compared by the source files' digests, never by parsed values. ``stamp`` (the
    store) gives every document the time its bytes last changed, its Last-Modified.
    """
    site = content.site
    cache_control = FEED_CACHE.format(max_age=site.max_age)
    labels = tag_labels(content.entries)
    tagged = entries_by_tag(content.entries)
    specs = site_feeds(content, hub_url, labels, tagged, previous.feeds if previous is not None else None)
    site_spec = specs[0]
    assets = _asset_documents()
    subscriptions = {spec.path_prefix: spec for spec in specs if not spec.history.is_archive}
    context = page_context(
        content=content,
        feeds=_feed_links(site_spec, site.title),
        stylesheet_url=site.url(assets["style.css"][0]),
        icon_url=site.url(assets["favicon.svg"][0]),
        section_feeds=tuple((section, _feed_links(subscriptions[section_prefix(section.key)], section.title)) for section in site.sections),
        tag_labels=labels,
        opml_url=site.url(OPML),
    )
    # entry pages show tags by the site's label for them: a label that changes changes them all
    page_key = (site, context.feeds, context.stylesheet_url, context.icon_url, tuple(labels.items()))

    def page(body: bytes, gzip_level: int = GZIP_LEVEL) -> Representation:
        return build_representation(
            body, HTML_TYPE, cache_control=cache_control, extra_headers=HTML_SECURITY_HEADERS, gzip_level=gzip_level
        )

    documents: dict[str, Representation] = {}
    rendered = RenderedCache()
    feed_specs: dict[str, FeedSpec] = {}
    for spec in specs:
        paths = _feed_paths(spec)
        feed_specs.update(dict.fromkeys(paths, spec))
        if spec.history.is_archive or spec.path_prefix.startswith(TAGS):
            # rendered on request (a site has as many tags as editors type: with the version, each tag's three
            # feeds cost every version and worker); the ones the version before had rendered are carried over below
            continue
        earlier_spec = previous.feed_specs.get(paths[0]) if previous is not None else None
        if earlier_spec is not None and earlier_spec.same_input(spec):
            reused = {p: previous.cached(p) for p in paths}
            if all(reused.values()):
                documents.update(reused)
                continue
        documents.update(_feed_documents(spec))
    if previous is not None:  # archive documents rendered for the version before: a bounded cache, not every spec

        def same_feed(path: str) -> bool:
            earlier_spec, spec = previous.feed_specs.get(path), feed_specs.get(path)
            return earlier_spec is not None and spec is not None and earlier_spec.same_input(spec)

        rendered.update({path: found for path, found in previous.rendered.items() if same_feed(path)})
    documents[HOME] = page(render_index(context))

    def render_page(entry: Entry) -> Representation:
        try:
            return page(render_entry(context, entry), RARELY_READ_GZIP_LEVEL)  # one of thousands: as the archive feeds
        except BodyUnavailableError:
            raise  # not the entry's problem: the state lost its body and the file changed since (a reload follows)
        except Exception as error:  # whatever a library chokes on: name the file, keep serving the last good version
            raise ContentError(
                [Problem(entry.source, "file", f"cannot be rendered: {type(error).__name__}: {shorten(str(error), 80)}")]
            ) from error

    pages = EntryPages(content.entries)
    # an entry page rendered for the version before is kept when the page's context and the entry's digest are the same
    same_pages = previous is not None and previous.page_key == page_key

    def unchanged(path: str) -> bool:
        earlier = previous.pages.get(path)
        return earlier is not None and earlier.digest == pages[path].digest

    for entry in content.entries[:HOT_ENTRY_PAGES]:
        reused = previous.cached(entry.path) if same_pages and unchanged(entry.path) else None
        documents[entry.path] = reused or render_page(entry)
    if same_pages:  # the pages the version before had rendered (its newest and a bounded cache), not all 100,000
        earlier_pages = [
            *previous.rendered.items(),
            *((path, found) for path, found in previous.documents.items() if path in previous.pages),
        ]
        rendered.update({path: found for path, found in earlier_pages if path in pages and path not in documents and unchanged(path)})
    archive_indexes, archive_months = _html_archives(content, context, page)
    documents.update(archive_indexes)
    tags_index, tag_pages = _tag_pages(context, page, subscriptions, tagged)
    documents.update(tags_index)
    documents[OPML] = build_representation(_opml(content, subscriptions), OPML_TYPE, cache_control=cache_control)
    documents[ROBOTS] = build_representation(render_robots(site), ROBOTS_TYPE, cache_control=cache_control)
    documents.update(assets.values())
    images = {media.path: media for entry in content.entries for media in entry.media}
    on_request = {
        **archive_months,
        **tag_pages,
        **_sitemaps(content, tagged),
        **{path: functools.partial(_media_document, content.folder, media) for path, media in images.items()},
    }
    # never cached: a path that is missing now may be published in a minute
    not_found = build_representation(
        render_not_found(context), HTML_TYPE, cache_control="no-store", extra_headers=HTML_SECURITY_HEADERS, status="404 Not Found"
    )
    subscription_paths = tuple(path for spec in subscriptions.values() for path in _feed_paths(spec))
    moved = redirects_of(content)
    served = [documents, pages, feed_specs, on_request]
    _check_paths(content, specs, tagged, labels, documents, archive_months, tag_pages, images, pages)
    _check_redirects(content, moved, lambda path: any(path in found for found in served))
    documents.update({old: _redirect(site, new, cache_control) for old, new in moved.items()})
    return Publication(
        content,
        _stamped(documents, stamp),
        not_found,
        subscription_paths,
        feed_specs,
        page_key,
        stamp,
        pages,
        render_page,
        rendered,
        on_request,
        {spec.path_prefix: spec for spec in specs},
        moved,
    )
