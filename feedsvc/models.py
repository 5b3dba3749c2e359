"""The content model: frozen values with no knowledge of files, Flask or feed formats."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Protocol
from urllib.parse import urlsplit

# XML 1.0 §2.2: characters outside the Char production (C0 controls but tab/newline/CR, lone
# surrogates, U+FFFE/U+FFFF) make a document ill-formed; the "discouraged" ones (DEL, C1 controls,
# noncharacters) are legal but mangled by readers (feedparser maps C1 to cp1252), so they go too.
_NONCHARACTERS = "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
_XML_ILLEGAL = re.compile(f"[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufdcf\ufdf0-\ufffd\U00010000-\U0010ffff]|[{_NONCHARACTERS}]")


def is_absolute_http_url(url: str) -> bool:
    """Tell whether ``url`` is an absolute http(s) URL without query or fragment."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.query and not parts.fragment


def strip_xml_illegal(text: str) -> str:
    """Remove the characters that XML 1.0 forbids or discourages anywhere in a document."""
    return _XML_ILLEGAL.sub("", text)


@dataclass(frozen=True)
class Section:
    """A named group of entries (a category in the feeds)."""

    key: str
    title: str


@dataclass(frozen=True)
class Site:
    """Site-wide settings from the site file, completed by configuration."""

    id: str  # permanent URI of the site feed (RFC 4287 §4.2.6)
    title: str
    description: str
    base_url: str  # absolute, without a trailing slash
    language: str
    timezone: tzinfo
    author: str
    item_limit: int
    sections: tuple[Section, ...]
    max_age: int = 300
    archive_period: str = "day"  # what one RFC 5005 archive document holds: "day" or "month"
    max_file_size: int = 1024 * 1024  # bytes a content file may have (larger ones are a problem, never read)

    def url(self, path: str) -> str:
        """Return the absolute URL of a site path such as ``/feed.xml``."""
        return self.base_url + path

    def section(self, key: str) -> Section:
        """Return the declared section called ``key``."""
        return next(s for s in self.sections if s.key == key)


def entry_path(slug: str) -> str:
    """Return the site path of the page of the entry called ``slug``."""
    return f"/posts/{slug}/"


class StoredText(Protocol):
    """Text kept elsewhere (the store), loaded when asked for."""

    def html(self) -> str: ...


@dataclass(frozen=True)
class Entry:
    """One article or post, parsed and validated."""

    id: str
    slug: str
    title: str
    published: datetime  # timezone-aware
    updated: datetime  # timezone-aware, >= published
    section: str
    summary: str  # plain text, may be empty
    # the rendered Markdown (absolute URLs, may be empty): the text itself, or a reference whose
    # html() loads it, so that 100,000 bodies stay in the store instead of in every worker
    body: str | StoredText = field(compare=False)
    source: str = field(default="", compare=False)  # file it came from, relative to the content folder
    # digest of the file's name and bytes: what reuse across versions compares (never values:
    # two equal datetimes can print differently); it identifies the body too
    digest: str = ""

    @property
    def path(self) -> str:
        """Return the site path of the entry's page."""
        return entry_path(self.slug)

    @property
    def body_html(self) -> str:
        """Return the entry's body as HTML."""
        body = self.body
        return body if isinstance(body, str) else body.html()


@dataclass(frozen=True)
class Content:
    """A complete, valid content version: the site and its entries, newest first."""

    site: Site
    entries: tuple[Entry, ...]
    version: str  # digest of every source file's bytes

    def in_section(self, key: str) -> tuple[Entry, ...]:
        """Return the entries of one section, newest first."""
        return tuple(e for e in self.entries if e.section == key)


def sort_newest_first(entries) -> tuple[Entry, ...]:
    """Order entries newest first; the id breaks ties so the order never depends on file order."""
    return tuple(sorted(entries, key=lambda e: (e.published, e.id), reverse=True))
