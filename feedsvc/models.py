"""The content model: frozen values with no knowledge of files, Flask or feed formats."""

from __future__ import annotations

import functools
import hashlib
import itertools
import operator
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, tzinfo
from typing import Protocol
from urllib.parse import quote, urlsplit

from .problems import ContentError, Problem
from .urls import entry_path, entry_slug, media_path

# XML 1.0 §2.2: characters outside the Char production (C0 controls but tab/newline/CR, lone
# surrogates, U+FFFE/U+FFFF) make a document ill-formed; the "discouraged" ones (DEL, C1 controls,
# noncharacters) are legal but mangled by readers (feedparser maps C1 to cp1252), so they go too.
_NONCHARACTERS = "".join(f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(1, 17))
# The same characters as a byte table and two patterns, each tried only where it can match: a class holding
# astral characters makes re ~15x slower on every character (a 3 KB body: 240 us, then 11-18 us; ASCII now 5 us).
_ASCII_ILLEGAL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])  # deleted by bytes.translate: 4x re's speed
_BMP_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]")
_ASTRAL_NONCHARACTERS = re.compile(f"[{_NONCHARACTERS}]")


# Characters a URL may not hold as typed (RFC 3986 §2: outside its character set; WHATWG URL strips
# tab/CR/LF before parsing, so urlsplit says a URL with a line break in it is fine). Written into a
# robots.txt line, an HTML attribute or a Location header, each would break out of it.
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\s\"'<>\\^`{|}\u061c\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")


def url_problem(url: str) -> str | None:
    """Say what makes ``url`` unusable as written (a control character, a space, a quote, an angle bracket), or None."""
    found = _URL_UNSAFE.search(url)
    if found is None:
        return None
    character = found.group()
    name = unicodedata.name(character, "") or {"\n": "line break", "\r": "carriage return", "\t": "tab"}.get(character, "control character")
    return f"holds {name.lower()} (U+{ord(character):04X}) at character {found.start() + 1}; remove it or percent-encode it"


def is_absolute_http_url(url: str) -> bool:
    """Tell whether ``url`` is an absolute http(s) URL without query or fragment, with no character a URL may not hold."""
    if url_problem(url) is not None:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.query and not parts.fragment


def strip_xml_illegal(text: str) -> str:
    """Remove the characters that XML 1.0 forbids or discourages anywhere in a document."""
    if text.isascii():  # known without a pass: most text
        data = text.encode("ascii")
        kept = data.translate(None, _ASCII_ILLEGAL)
        return text if len(kept) == len(data) else kept.decode("ascii")
    text = _BMP_ILLEGAL.sub("", text)
    return _ASTRAL_NONCHARACTERS.sub("", text) if any(nonchar in text for nonchar in _NONCHARACTERS) else text


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
    feed_content: str = "full"  # "full": feeds carry each body; "summary": only summaries (readers visit the page)
    date_order: str | None = None  # how dates of numbers only are written: "DMY", "MDY" (None: only unambiguous ones)
    redirects: tuple[tuple[str, str], ...] = ()  # (old path, new path): moved for good, answered with a 308

    def url(self, path: str) -> str:
        """Return the absolute URL of a site path such as ``/feed.xml`` (a tag's letters percent-encoded, RFC 3987 §3.1)."""
        return self.base_url + (path if path.isascii() else quote(path, safe="/%:@!$&'()*+,;=~"))

    def section(self, key: str) -> Section:
        """Return the declared section called ``key``."""
        return next(s for s in self.sections if s.key == key)


@dataclass(frozen=True)
class Author:
    """A byline: a name, and optionally a web page and an e-mail address."""

    name: str
    url: str = ""
    email: str = ""


@dataclass(frozen=True)
class MediaFile:
    """An image file of the content folder: what its URL, feeds and pages need to know of it."""

    name: str  # relative to the content folder, e.g. "media/harbour.jpg"
    digest: str  # of its bytes: part of its URL, so the URL changes exactly when the bytes do
    size: int  # bytes
    mtime_ns: int  # with size: how the loader sees that a cached parse refers to the file as it is now
    width: int
    height: int
    media_type: str  # e.g. "image/jpeg"

    @property
    def path(self) -> str:
        """Return the site path the image is served at (content-hashed: cached forever)."""
        return media_path(self.name, self.digest)


@dataclass(frozen=True)
class Image:
    """An entry's picture: a content folder image (``file``) or an absolute https URL, and its alternative text."""

    url: str  # absolute
    alt: str
    file: MediaFile | None = None  # None for an image elsewhere (size unknown)


@dataclass(frozen=True)
class Heading:
    """A heading of an entry's body, for its table of contents."""

    level: int
    anchor: str  # the heading's id
    text: str


def utc_day(moment: datetime) -> str:
    """Return the UTC day of an aware datetime as YYYY-MM-DD (an archive's name; ~6x faster than strftime)."""
    return moment.astimezone(UTC).date().isoformat()


def by_period(entries: tuple[Entry, ...], length: int = 10) -> dict[str, tuple[Entry, ...]]:
    """Group entries by the first ``length`` characters of their UTC day (10: the day, 7: the month), keeping their order.

    Entries newest first (as every list of them is) have each period's entries side by side, so
    one groupby in C does it: 100,000 entries in milliseconds.
    """
    grouped: dict[str, tuple[Entry, ...]] = {}
    for day, group in itertools.groupby(entries, operator.attrgetter("day")):  # grouped by day in C, then days into months
        found, period = tuple(group), day[:length]
        grouped[period] = grouped[period] + found if period in grouped else found  # months, or entries in another order
    return grouped


class EntryPages(Mapping[str, "Entry"]):
    """Every entry page's path -> its entry, held by slug: the paths are made when asked for (100,000 kept
    paths cost every worker ~7 MB), the slugs are the entries' own strings."""

    __slots__ = ("_by_slug",)

    def __init__(self, entries: Iterable[Entry]):
        self._by_slug = {entry.slug: entry for entry in entries}

    def __getitem__(self, path: str) -> Entry:
        entry = self._by_slug.get(entry_slug(path))
        if entry is None:
            raise KeyError(path)
        return entry

    def __contains__(self, path: object) -> bool:
        return entry_slug(path) in self._by_slug

    def __iter__(self) -> Iterator[str]:
        return map(entry_path, self._by_slug)

    def __len__(self) -> int:
        return len(self._by_slug)


class StoredText(Protocol):
    """An entry's own texts kept elsewhere (the state's cache), loaded when asked for: its body's HTML, its headings, its summary.

    One kept in a cache may have a ``store`` whose ``load_bodies(bodies)`` loads several at once
    (the entries of one document).
    """

    def html(self) -> str: ...

    def headings(self) -> tuple[Heading, ...]: ...

    def summary(self) -> str: ...

    def texts(self) -> tuple[str, tuple[Heading, ...], str]: ...  # all three, looked up once


@dataclass(frozen=True, slots=True)  # slots: 100,000 entries without an instance dict each save ~45 MB per process
class Entry:
    """One article or post, parsed and validated."""

    id: str
    slug: str
    title: str
    published: datetime  # timezone-aware
    updated: datetime  # timezone-aware, >= published
    section: str
    # the plain-text summary (may be empty) until the body goes to the state, which keeps it with the body; then
    # None (read it as ``summary``): only the entry's own page and feed items show it, and 100,000 summaries
    # held by every worker took ~60 MB (one ellipsis makes a string take two bytes a character)
    own_summary: str | None = field(compare=False)
    # the rendered Markdown (absolute URLs, may be empty): the text itself, or a reference whose
    # html() loads it, so that 100,000 bodies stay in the state instead of in every worker
    body: str | StoredText = field(compare=False)
    source: str = field(default="", compare=False)  # file it came from, relative to the content folder
    # digest of the file's name and bytes: what reuse across versions compares (never values:
    # two equal datetimes can print differently); it identifies the body too
    digest: str = ""
    image: Image | None = None
    authors: tuple[Author, ...] = ()  # empty: the site's author
    tags: tuple[str, ...] = ()  # as written; the site decides each tag's label (``tag_labels``)
    # the body's headings as parsed; once the body is in the state, they are there too (``contents``):
    # 100,000 entries' headings would otherwise take hundreds of MB in every worker
    headings: tuple[Heading, ...] = field(default=(), compare=False)
    media: tuple[MediaFile, ...] = ()  # every content folder image the entry shows (its image and the body's)
    draft: bool = False
    aliases: tuple[str, ...] = ()  # paths the entry was published at before: each answers 308 to its page
    # derived once, not at each of the several passes of every build over 100,000 entries:
    day: str = field(init=False, repr=False, compare=False)  # the UTC day of publication (YYYY-MM-DD): its archive documents

    def __post_init__(self) -> None:
        object.__setattr__(self, "day", utc_day(self.published))

    @property
    def path(self) -> str:
        """Return the site path of the entry's page (made when asked: only pages and feed items ask, and 100,000
        kept paths cost every worker ~7 MB)."""
        return entry_path(self.slug)

    # pickled as a plain tuple of its fields: dataclasses' own slots pickling calls fields() per
    # entry, 60 % of unpickling 100,000 entries from the state at a start
    def __getstate__(self) -> tuple:
        return _entry_state(self)  # one C call (a getattr per field took 15 us per entry)

    def __setstate__(self, state: tuple) -> None:
        for set_slot, value in zip(_ENTRY_SLOT_SETTERS, state, strict=True):  # the slots' own setters: twice as fast
            set_slot(self, value)

    def with_body(self, body: str | StoredText, headings: tuple[Heading, ...] = ()) -> Entry:
        """Return a copy with another body and headings, its other fields as they are (``replace`` would derive them again).

        A stored body brings the summary with it: the copy holds none of its own.
        """
        copy = object.__new__(Entry)
        copy.__setstate__(self.__getstate__())
        object.__setattr__(copy, "body", body)
        object.__setattr__(copy, "headings", headings)
        if not isinstance(body, str):
            object.__setattr__(copy, "own_summary", None)
        return copy

    @property
    def summary(self) -> str:
        """Return the entry's plain-text summary (may be empty)."""
        own = self.own_summary
        return own if own is not None else self.body.summary()

    @property
    def body_html(self) -> str:
        """Return the entry's body as HTML."""
        body = self.body
        return body if isinstance(body, str) else body.html()

    @property
    def contents(self) -> tuple[Heading, ...]:
        """Return the headings of the entry's body (levels 1-3), for its table of contents."""
        body = self.body
        return self.headings if isinstance(body, str) else body.headings()

    def texts(self) -> tuple[str, tuple[Heading, ...], str]:
        """Return ``body_html``, ``contents`` and ``summary`` together: a stored body is looked up once, not once each.

        An entry page asked for them nine times, a feed item four: each a look in the state's
        memory (its key made, its lock taken, its place among the recent bodies moved), 1-2 us.
        """
        body = self.body
        if isinstance(body, str):
            return body, self.headings, self.summary
        html, headings, summary = body.texts()
        own = self.own_summary
        return html, headings, own if own is not None else summary


ENTRY_FIELDS = tuple(entry_field.name for entry_field in fields(Entry))  # in the order of its state
ENTRY_SLOT_SETTERS = dict(zip(ENTRY_FIELDS, (Entry.__dict__[name].__set__ for name in ENTRY_FIELDS), strict=True))
_ENTRY_SLOT_SETTERS = tuple(ENTRY_SLOT_SETTERS.values())
_entry_state = operator.attrgetter(*ENTRY_FIELDS)


@dataclass(frozen=True)
class Content:
    """A complete, valid content version: the site and its published entries, newest first.

    ``scheduled`` entries are dated after the moment the content was released (``release``) and
    ``drafts`` are never published: neither appears in any document.
    """

    site: Site
    entries: tuple[Entry, ...]
    version: str  # digest of every source file's bytes (and of which entries are released)
    scheduled: tuple[Entry, ...] = ()  # oldest first: the next one to go live comes first
    drafts: tuple[Entry, ...] = ()
    folder: str = field(default="", compare=False)  # where the content folder's images are read from

    def in_section(self, key: str) -> tuple[Entry, ...]:
        """Return the entries of one section, newest first."""
        return self._sections.get(key, ())

    @functools.cached_property
    def _sections(self) -> dict[str, tuple[Entry, ...]]:
        # made once per version, a pass in C per section (a site has a few): 100,000 entries in ~20 ms, not ~90
        of_entry = list(map(operator.attrgetter("section"), self.entries))
        return {
            key: tuple(itertools.compress(self.entries, map(operator.eq, of_entry, itertools.repeat(key))))
            for key in dict.fromkeys(of_entry)
        }

    @property
    def next_release(self) -> datetime | None:
        """Return when the next scheduled entry goes live (None when nothing is scheduled)."""
        return self.scheduled[0].published if self.scheduled else None


def release(content: Content, now: datetime) -> Content:
    """Return the content as published at ``now``: entries dated later are scheduled, not published.

    The version names which entries are out, so every process that releases the same files at
    any moment between the same two publication dates serves the same bytes under the same version.
    """
    everything = content.entries + content.scheduled
    # a change dated later than now (on a published entry) would put feed and sitemap dates in the future
    early = [entry for entry in everything if entry.published <= now < entry.updated]
    if early:
        raise ContentError(
            [
                Problem(
                    entry.source,
                    "updated",
                    f"{entry.updated.isoformat()} is later than now ({now.replace(microsecond=0).isoformat()}); "
                    "set it to when the change was made, or leave it out (to publish later, set 'date')",
                )
                for entry in early
            ],
            retry_at=min(entry.updated for entry in early),
        )
    if not any(entry.published > now for entry in everything):
        if not content.scheduled:
            return content
        version = hashlib.sha256(f"{content.version}:all".encode()).hexdigest()[:16]
        return replace(content, entries=sort_newest_first(everything), scheduled=(), version=version)
    out = sort_newest_first(entry for entry in everything if entry.published <= now)
    waiting = tuple(sorted((entry for entry in everything if entry.published > now), key=lambda e: (e.published, e.id)))
    version = hashlib.sha256(f"{content.version}:{len(out)}:{waiting[0].id}".encode()).hexdigest()[:16]
    return replace(content, entries=out, scheduled=waiting, version=version)


# Arabic harakat and Quranic marks (U+064B-U+065F, U+0670, U+06D6-U+06ED): optional vowel signs, written
# or left out at will, so "عَرَبِي" and "عربي" are one word and one tag (as Arabic search engines treat them)
_OPTIONAL_MARKS = frozenset([*range(0x064B, 0x0660), 0x0670, *range(0x06D6, 0x06EE)])
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ/ZWJ: part of Persian and Indic spelling (and of emoji), never a separator


@functools.lru_cache(maxsize=4096)  # a site has few tags, used by thousands of entries, slugged at every build
def tag_slug(label: str) -> str:
    """Return the URL slug of a tag: Unicode letters, marks and digits kept (NFKC, case-folded), anything else one hyphen.

    "Climate Change", "climate-change" and "CLIMATE  change!" are one tag; "Zürich" stays "zürich"
    (percent-encoded in URLs), so no language loses its words. Combining marks belong to their
    letter (Python's ``\\w`` drops them: "हिंदी" would become "ह-द", and "हंद" the same tag); Arabic
    vowel marks are left out, and joiners dropped. Empty when the label has no letter or digit.
    """
    characters = []
    for character in unicodedata.normalize("NFKC", label).casefold():
        if ord(character) in _OPTIONAL_MARKS or character in _JOINERS:
            continue
        kind = unicodedata.category(character)[0]
        if kind in "LN" or (kind == "M" and characters and characters[-1] != "-"):
            characters.append(character)
        elif characters and characters[-1] != "-":
            characters.append("-")
    return "".join(characters).rstrip("-")  # it starts with a letter or digit: a mark joins one, a hyphen follows one


# Invisible characters that reorder or hide text (bidi embeddings, overrides, isolates and marks;
# zero-width space, word joiner, BOM, soft hyphen): a tag shown with them can read as another
# word, or differ from its twin unseen. ZWNJ/ZWJ stay where they join two letters (Persian, Indic, emoji).
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def _joins(before: str, after: str) -> bool:
    """Tell whether a ZWNJ/ZWJ between these two characters is spelling: letters and marks (a virama), or emoji."""
    return all(unicodedata.category(c)[0] in "LM" or unicodedata.category(c) == "So" for c in (before, after))


def visible_label(label: str) -> str:
    """Return a label without the invisible characters that could disguise it, its spaces collapsed."""
    if label.isascii():
        return " ".join(label.split())
    text = _INVISIBLE.sub("", label)
    if "\u200c" in text or "\u200d" in text:
        text = "".join(
            c for at, c in enumerate(text) if c not in _JOINERS or (0 < at < len(text) - 1 and _joins(text[at - 1], text[at + 1]))
        )
    return " ".join(text.split())


def tag_labels(entries: tuple[Entry, ...]) -> dict[str, str]:
    """Return tag slug -> label for every tag of ``entries`` (newest first), slugs sorted.

    Spellings that slug the same are one tag; its label is the spelling most entries use, and
    between equally used spellings, the one of the newest entry.
    """
    counts: dict[str, dict[str, int]] = {}
    for entry in entries:
        for label in entry.tags:
            spellings = counts.setdefault(tag_slug(label), {})
            spellings[label] = spellings.get(label, 0) + 1
    # dicts keep insertion order, so max() picks the newest entry's spelling among equals
    return {slug: max(spellings, key=spellings.__getitem__) for slug, spellings in sorted(counts.items())}


def sort_newest_first(entries) -> tuple[Entry, ...]:
    """Order entries newest first; the id breaks ties so the order never depends on file order."""
    return tuple(sorted(entries, key=lambda e: (e.published, e.id), reverse=True))
