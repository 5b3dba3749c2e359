"""Every path the site serves, made in one place, and the table that refuses two documents at one path.

Paths are site paths (``/posts/x/``); ``Site.url`` makes them absolute. A version registers every
document's path with where it comes from (``PathTable``): two at one path, which would silently
serve one and hide the other, are a content problem naming both sources. Section keys that would
put a section's documents among the site's own are refused by the site file's check (RESERVED).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .problems import Problem

HOME = "/"
SITEMAP = "/sitemap.xml"
OPML = "/feeds.opml"
ROBOTS = "/robots.txt"
ENTRY_PAGES = "/posts/"  # where entry pages are: ENTRY_PAGES + slug + "/"
TAGS = "/tags/"
FEED_FILES = ("feed.xml", "atom.xml", "feed.json")  # a feed's three documents, beside each other
# First path segments the site's own documents use: a section's key becomes a segment of its own
# documents (/<key>/feed.xml, /<key>/archive/), so it may not be one of these.
MAX_SEGMENT_BYTES = 255  # a path segment is a file or folder name in an export (ext4, APFS, NTFS: 255 bytes at most)
RESERVED = frozenset({"posts", "tags", "archive", "media", "static", "sitemaps", "healthz"})


def entry_path(slug: str) -> str:
    """Return the site path of the page of the entry called ``slug``."""
    return f"{ENTRY_PAGES}{slug}/"


def entry_slug(path: object) -> str | None:
    """Return the slug of the entry page at ``path`` (None: not an entry page's path)."""
    if isinstance(path, str) and path.startswith(ENTRY_PAGES) and path.endswith("/"):
        return path[len(ENTRY_PAGES) : -1]
    return None


def media_path(name: str, digest: str) -> str:
    """Return the content-hashed site path of a content folder's image ("media/a.jpg" -> "/media/a.<digest>.jpg").

    Two files can share a path only when they share their bytes, so they are the same document.
    """
    folder, _, base = name.removeprefix("media/").rpartition("/")
    stem, dot, suffix = base.rpartition(".")
    folders = "".join(_url_safe(part) + "/" for part in folder.split("/") if folder)
    return f"/media/{folders}{_url_safe(stem)}.{digest[:12]}{dot}{_url_safe(suffix)}"


_URL_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._~-]+")
_NAME_IN_URL = 100  # characters of a picture's name its URL keeps (a path segment must fit a file name: 255 bytes)


def _url_safe(part: str) -> str:
    """Return a file or folder name as a URL segment that needs no escaping anywhere ("Le café?.jpg" -> "Le-caf-.jpg").

    Picture URLs carry the bytes' digest, so the name is only a hint to readers: characters a URL
    would have to escape (``?``, ``#``, ``%``, spaces, line breaks, other scripts) become hyphens
    rather than links that break in one reader or another.
    """
    return _URL_UNSAFE_RUN.sub("-", part)[:_NAME_IN_URL].strip("-") or "picture"


def asset_path(name: str, digest: str) -> str:
    """Return the content-hashed site path of a packaged asset ("style.css" -> "/static/style.<digest>.css")."""
    stem, _, suffix = name.rpartition(".")
    return f"/static/{stem}.{digest[:12]}.{suffix}"


def section_prefix(key: str) -> str:
    """Return the path prefix of a section's documents (its feeds and archives)."""
    return f"/{key}"


def tag_path(slug: str) -> str:
    """Return the site path of a tag's first page (its feeds are beside it)."""
    return f"{TAGS}{slug}/"


def tag_prefix(slug: str) -> str:
    """Return the path prefix of a tag's feeds."""
    return f"{TAGS}{slug}"


def tag_page_path(slug: str, number: int) -> str:
    """Return the site path of page ``number`` of a tag (the first is the tag's own path)."""
    return tag_path(slug) + (f"page/{number}/" if number > 1 else "")


def feed_archive_prefix(prefix: str, period: str) -> str:
    """Return the prefix of an RFC 5005 archive document of the feed at ``prefix`` ("" for the site's)."""
    return f"{prefix}/archive/{period}"


def feed_paths(prefix: str) -> list[str]:
    """Return the paths of the three documents of the feed at ``prefix``."""
    return [f"{prefix}/{filename}" for filename in FEED_FILES]


def archive_index_path(prefix: str) -> str:
    """Return the path of the HTML archive of the site ("") or a section (its prefix)."""
    return f"{prefix}/archive/"


def archive_month_path(prefix: str, month: str) -> str:
    """Return the path of one UTC month (YYYY-MM) of an HTML archive."""
    return f"{prefix}/archive/{month}/"


def sitemap_part_path(number: int) -> str:
    """Return the path of one sitemap of the index of sitemaps."""
    return f"/sitemaps/{number}.xml"


@dataclass(frozen=True)
class Source:
    """What made a document: the file and field an editor would change, and how to say it."""

    file: str
    field: str
    what: str


@dataclass
class PathTable:
    """Every path of one version with its source; a path claimed twice is a problem naming both (Pelican's writer refuses
    to write one file twice)."""

    sources: dict[str, Source] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def add(self, paths: Iterable[str], source: Source) -> None:
        """Register ``paths`` as made by ``source``; a path segment too long for a file name is a problem too."""
        for path in paths:
            earlier = self.sources.setdefault(path, source)
            if earlier is not source:
                self._clash(path, earlier, source)
            if len(path) > MAX_SEGMENT_BYTES // 4 and (longest := max(len(part.encode()) for part in path.split("/"))) > MAX_SEGMENT_BYTES:
                self.problems.append(
                    Problem(
                        source.file,
                        source.field,
                        f"{source.what} would be at a path with a segment of {longest} bytes, more than {MAX_SEGMENT_BYTES} "
                        "(a file name in an export); shorten it",
                    )
                )

    def add_entries(self, pages: Iterable[str], source_of) -> None:
        """Check entry pages (held by slug, never listed: 100,000 paths) against every path registered: each clash is a problem."""
        for path, earlier in self.sources.items():
            if path.startswith(ENTRY_PAGES) and path in pages:
                self._clash(path, earlier, source_of(path))

    def _clash(self, path: str, earlier: Source, later: Source) -> None:
        self.problems.append(
            Problem(
                later.file, later.field, f"{later.what} would be at {path}, where {earlier.what} is ({earlier.file}); rename one of them"
            )
        )
