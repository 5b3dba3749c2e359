"""Read a content folder (site file + Markdown entries with YAML front matter) into a Content value.

Pelican-style: each field goes through a small converter table; every problem is collected and
reported as ``FILE: FIELD: what is wrong and how to fix it`` so an editor can fix all of them at once.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
import hashlib
import itertools
import multiprocessing
import operator
import os
import posixpath
import re
import reprlib
import stat
import sys
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path, PurePath
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from dateutil import parser as date_parser

from .markdown import DeferredBody, ImageFinder, RenderedMarkdown, has_no_pictures, render_markdown, shorten
from .media import MediaError, MediaLibrary, is_media_name, resolve
from .models import (
    Author,
    Content,
    Entry,
    Heading,
    Image,
    MediaFile,
    Section,
    Site,
    entry_path,
    is_absolute_http_url,
    sort_newest_first,
    strip_xml_illegal,
    tag_slug,
)

SITE_FILE = "site.yaml"
ENTRY_SUFFIX = ".md"
# Documentation that may live beside the entries; never an entry.
NOT_ENTRIES = frozenset({"readme.md"})
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


MESSAGE_LIMIT = 400  # characters of one problem message: a hostile value cannot make a megabyte of log or /healthz


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one file (each part of bounded length)."""

    file: str
    field: str
    message: str

    def __post_init__(self) -> None:
        for name, limit in (("file", 200), ("field", 80), ("message", MESSAGE_LIMIT)):
            value = getattr(self, name)
            if len(value) > limit:
                object.__setattr__(self, name, value[: limit - 1] + "\u2026")

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class ContentError(Exception):
    """The content folder cannot be published; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = tuple(problems)
        super().__init__("\n".join(map(str, self.problems)))

    def __reduce__(self):  # raised in a worker process, it crosses back with its problems intact
        return ContentError, (list(self.problems),)


class _FieldError(ValueError):
    """A converter's complaint about one value."""


# libyaml's parser when PyYAML was built with it (the PyPI wheels are): ~10x faster on 10,000 files.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):
    """Safe YAML without implicit timestamps: dates stay text so dateutil parses them once, one way."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# Bump when parsing changes what an entry holds: cached parses of older code are not reused.
PARSER_VERSION = b"feedsvc-parse-9"


# --- converters: value from YAML -> python value, or _FieldError with the fix ---------------

_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict = 2, 4, 4
_QUOTE.maxstring = _QUOTE.maxother = 80
_QUOTE.maxlong = 40


def quote(value: Any) -> str:
    """Quote a value for a message by its first ~80 characters, whatever its size or nesting."""
    text = _QUOTE.repr(value)
    return text if len(text) <= 100 else text[:99] + "\u2026"


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _FieldError(f"must be text, got {type(value).__name__} {quote(value)}; put the value in quotes")
    return strip_xml_illegal(str(value)).strip()


def _required_text(value: Any) -> str:
    text = _text(value)
    if not text:
        raise _FieldError("is empty; write a value")
    return text


def _slug(value: Any) -> str:
    slug = _text(value)
    if not _SLUG.match(slug):
        raise _FieldError(f"{quote(slug)} is not a slug; use lowercase letters, digits and single hyphens")
    return slug


# RFC 8141 §2: "urn:", a namespace id of 2-32 letters, digits and inner hyphens, ":", the rest
_URN = re.compile(r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,30}[A-Za-z0-9]:\S+$", re.IGNORECASE)


def _uri_id(value: Any) -> str:
    text = _required_text(value)
    if not _URI.match(text) or (text[:4].lower() == "urn:" and not _URN.match(text)):
        raise _FieldError(f"{quote(text)} is not a URI; use a permanent id such as 'urn:uuid:{uuid.uuid4()}'")
    return text


def _image_reference(value: Any) -> str:
    reference = _required_text(value)
    if "://" in reference:
        if not reference.startswith("https://") or not is_absolute_http_url(reference):
            raise _FieldError(f"{quote(reference)} is not an absolute https URL; use https://..., or a file such as 'media/harbour.jpg'")
        return reference
    if resolve(reference) is None:
        raise _FieldError(f"{quote(reference)} leaves the content folder; name a file inside it, such as 'media/harbour.jpg'")
    return reference


_EMAIL = re.compile(r"^[^@\s<>()]+@[^@\s<>()]+\.[^@\s<>()]+$")
_AUTHOR_FIELDS = ("name", "url", "email")


def _author(value: Any) -> Author:
    if not isinstance(value, Mapping):
        return Author(_required_text(value))
    unknown = [str(key) for key in value if key not in _AUTHOR_FIELDS]
    if unknown:
        raise _FieldError(f"has unknown field {quote(unknown[0])}; an author has {', '.join(_AUTHOR_FIELDS)}")
    if value.get("name") is None:
        raise _FieldError("needs a name, e.g. '{name: Ada Lovelace, url: https://example.com/ada}'")
    author = Author(_required_text(value["name"]), _text(value.get("url") or ""), _text(value.get("email") or ""))
    if author.url and not is_absolute_http_url(author.url):
        raise _FieldError(f"url {quote(author.url)} of {quote(author.name)} is not an absolute http(s) URL")
    if author.email and not _EMAIL.match(author.email):
        raise _FieldError(f"email {quote(author.email)} of {quote(author.name)} is not an e-mail address")
    return author


def _authors(value: Any) -> tuple[Author, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _FieldError("is empty; name at least one author, or remove the field to credit the site's author")
    authors = []
    for number, item in enumerate(items, start=1):
        try:
            authors.append(_author(item))
        except _FieldError as error:
            raise _FieldError(f"author {number} {error}") from None
    return tuple(authors)


def _tags(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    tags: dict[str, str] = {}  # slug -> the first spelling: two spellings of one tag count once
    for item in items:
        label = " ".join(_required_text(item).split())
        if not tag_slug(label):
            raise _FieldError(f"tag {quote(label)} has no letter or digit; a tag needs a word to link to")
        tags.setdefault(tag_slug(label), label)
    return tuple(tags.values())


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _FieldError(f"must be true or false, got {quote(value)}")
    return value


def _one_of(what: str, choices: Mapping[str, str]) -> Callable[[Any], str]:
    """A converter accepting one of ``choices`` (value -> what it is for, shown in the fix)."""
    fix = " or ".join(f"{quote(choice)} ({meaning})" for choice, meaning in choices.items())

    def convert(value: Any) -> str:
        choice = _required_text(value)
        if choice not in choices:
            raise _FieldError(f"{quote(choice)} is not {what}; use {fix}")
        return choice

    return convert


_feed_content = _one_of("a choice", {"full": "feeds carry each story", "summary": "readers visit the page"})
_archive_period = _one_of("an archive period", {"day": "news sites", "month": "a few posts a month"})


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _FieldError(f"must be a whole number of at least 1, got {quote(value)}")
    return value


def _timezone(value: Any) -> tzinfo:
    name = _required_text(value)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _FieldError(f"{quote(name)} is not an IANA time zone; use a name such as 'UTC' or 'Europe/London'") from None


def _base_url(value: Any) -> str:
    url = _required_text(value).rstrip("/")
    if not is_absolute_http_url(url):
        raise _FieldError(f"{quote(url)} is not an absolute http(s) URL such as 'https://news.example.com'")
    return url


def _sections(value: Any) -> tuple[Section, ...]:
    if not isinstance(value, Mapping) or not value:
        raise _FieldError("must map each section key to its title, e.g. 'featured: Featured Posts'")
    sections = []
    for key, title in value.items():
        try:
            sections.append(Section(_slug(key), _required_text(title)))
        except _FieldError as error:
            raise _FieldError(f"section {quote(key)} {error}") from None
    return tuple(sections)


# Every output format can write these (RFC 822 needs four-digit years; Atom/JSON need RFC 3339).
EARLIEST_DATE = datetime(1000, 1, 2, tzinfo=UTC)
LATEST_DATE = datetime(9999, 12, 30, tzinfo=UTC)
_UTC_NAMES = frozenset({"UTC", "GMT", "UT", "Z"})
# "GMT+3" means UTC-3 to POSIX and dateutil, and UTC+3 to most people: refuse to guess.
_NAMED_OFFSET = re.compile(r"(?i)\b(?:GMT|UTC|UT)\s*[+-]\s*\d")
# Two far-apart defaults: a part of the date that the text leaves out shows up as a difference.
_DEFAULTS = (datetime(2000, 1, 1), datetime(2003, 12, 28))
_DATE_EXAMPLE = "write it like 'Jul 07, 2025 18:00' or '2025-07-07T18:00:00+01:00'"
# RFC 3339 / ISO 8601 date-times, the form generators and other tools write: read by the standard
# library in a microsecond, with the same result python-dateutil gives, which reads everything else.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?")


def _fixed_offset(name: str | None, offset: int | None) -> tzinfo | None:
    """dateutil's tzinfos hook: accept numeric offsets and UTC's names, refuse abbreviations like 'PST'."""
    if name is not None and name.upper() not in _UTC_NAMES:
        raise _FieldError(f"time-zone abbreviation {quote(name)} is ambiguous; write the UTC offset instead, e.g. '+01:00' or '-08:00'")
    if offset is None:
        return UTC if name is not None else None
    return timezone(timedelta(seconds=offset)) if offset else UTC


def _shares_a_part(parsed: datetime, default: datetime) -> bool:
    return parsed.year == default.year or parsed.month == default.month or parsed.day == default.day


def _localize(naive: datetime, zone: tzinfo, text: str) -> datetime:
    """Attach the site's zone to a date written without an offset, refusing DST gaps and overlaps."""
    early, late = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if early.utcoffset() != late.utcoffset():
        # PEP 495: fold tells the two readings apart; they differ only in a gap or an overlap
        round_trip = early.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        what = "does not exist (the clocks skip it)" if round_trip != naive else "happens twice (the clocks go back)"
        example = early.isoformat(timespec="minutes")
        raise _FieldError(f"{quote(text)} {what} in {zone}; write the UTC offset you mean, e.g. '{example}'")
    return early


def _date_in(zone: tzinfo) -> Callable[[Any], datetime]:
    """Parse a complete date as written ('Jul 07, 2025 18:00'); naive dates are in the site's time zone.

    python-dateutil completes partial dates from today ('Jul 07', '19:00', 'Monday'); parsing with
    two different defaults exposes that, so the result never depends on the day the process started.
    """

    def convert(value: Any) -> datetime:
        text = _required_text(value)
        if _RFC3339.fullmatch(text):
            try:
                return _in_range(_aware(datetime.fromisoformat(text), zone, text), text)
            except ValueError:  # 2025-02-30 and the like: dateutil's message below
                pass
        if _NAMED_OFFSET.search(text):
            raise _FieldError(f"{quote(text)} mixes a zone name with an offset; write the offset alone, e.g. '+03:00'")
        try:
            first = date_parser.parse(text, default=_DEFAULTS[0], tzinfos=_fixed_offset)
            # a part equal to the default may have come from it: only then is a second parse needed
            if (
                _shares_a_part(first, _DEFAULTS[0])
                and date_parser.parse(text, default=_DEFAULTS[1], tzinfos=_fixed_offset).date() != first.date()
            ):
                raise _FieldError(f"{quote(text)} is not a complete date (year, month and day); {_DATE_EXAMPLE}")
        except _FieldError:
            raise
        except (ValueError, OverflowError, TypeError):
            raise _FieldError(f"{quote(text)} is not a date; {_DATE_EXAMPLE}") from None
        return _in_range(_aware(first, zone, text), text)

    return convert


def _aware(parsed: datetime, zone: tzinfo, text: str) -> datetime:
    if parsed.tzinfo is None:
        return _localize(parsed, zone, text)
    offset = parsed.utcoffset()
    return parsed.replace(tzinfo=UTC) if not offset else parsed  # +00:00 and Z: UTC, as dateutil's path gives


def _in_range(parsed: datetime, text: str) -> datetime:
    try:
        in_range = EARLIEST_DATE <= parsed <= LATEST_DATE
    except OverflowError:
        in_range = False
    if not in_range:
        raise _FieldError(f"{quote(text)} is outside the years 1000-9999 that every feed format can write")
    return parsed


# field -> (required?, converter); the site's converters need no context.
SITE_FIELDS: dict[str, tuple[bool, Callable[[Any], Any]]] = {
    "id": (True, _uri_id),  # the site feed's permanent id (RFC 4287 §4.2.6): never derived from base_url
    "title": (True, _required_text),
    "description": (True, _required_text),
    "author": (True, _required_text),
    "sections": (True, _sections),
    "base_url": (False, _base_url),
    "language": (False, _required_text),
    "timezone": (False, _timezone),
    "item_limit": (False, _positive_int),
    "max_age": (False, _positive_int),
    "archive_period": (False, _archive_period),
    "max_file_size": (False, _positive_int),
    "feed_content": (False, _feed_content),
}
SITE_DEFAULTS: dict[str, Any] = {
    "base_url": "http://127.0.0.1:8000",
    "language": "en",
    "timezone": ZoneInfo("UTC"),
    "item_limit": 20,
    "max_age": 300,
    "archive_period": "day",
    # bytes; larger files are refused with a problem (never read whole): a 50 MB paste or a
    # link to /dev/zero cannot exhaust a worker's memory
    "max_file_size": 1024 * 1024,
    "feed_content": "full",
}


def _entry_fields(site: Site) -> dict[str, tuple[bool, Callable[[Any], Any]]]:
    date = _date_in(site.timezone)
    return {
        "id": (True, _uri_id),
        "title": (True, _required_text),
        "date": (True, date),
        "section": (True, _section_of(site)),
        "updated": (False, date),
        "slug": (False, _slug),
        "summary": (False, _text),
        "image": (False, _image_reference),
        "image_alt": (False, _required_text),
        "authors": (False, _authors),
        "tags": (False, _tags),
        "draft": (False, _flag),
    }


def _section_of(site: Site) -> Callable[[Any], str]:
    keys = [s.key for s in site.sections]

    def convert(value: Any) -> str:
        key = _required_text(value)
        if key not in keys:
            raise _FieldError(f"{quote(key)} is not a section of this site; use one of {', '.join(keys)} or declare it in {SITE_FILE}")
        return key

    return convert


# --- files -----------------------------------------------------------------------------------


def _decode(raw: bytes, name: str, problems: list[Problem]) -> str | None:
    try:
        return strip_xml_illegal(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        problems.append(
            Problem(name, "encoding", f"byte {raw[error.start]:#04x} at offset {error.start} is not UTF-8; save the file as UTF-8")
        )
        return None


# Anchors and aliases may share one value many times ("billion laughs"): a document whose
# values, counted with every alias expanded, exceed this budget is refused before it is built.
# Front matter and the site file hold tens of values.
YAML_VALUE_BUDGET = 10_000


def _expanded_size(root: yaml.Node, budget: int) -> int:
    """Count the values of a composed YAML document with aliases expanded, stopping past ``budget``.

    Aliases make the node graph share nodes, so sizes are memoized per node: a bomb is measured
    in as many steps as it has distinct nodes, not as many as it expands to. Iterative: nesting
    depth is the document's to choose.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            sizes[id(node)] = min(budget + 1, 1 + sum(sizes.get(id(child), 0) for child in children))
        else:
            stack.append((node, True))
            if len(stack) > budget:
                return budget + 1
            stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)]


def _parse_yaml(text: str, name: str, field: str, problems: list[Problem]) -> dict | None:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, YAML_VALUE_BUDGET) > YAML_VALUE_BUDGET:
            problems.append(
                Problem(
                    name,
                    field,
                    f"expands to more than {YAML_VALUE_BUDGET:,} values (each alias counted as often as it is used); front matter needs a few",
                )
            )
            return None
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        reason = getattr(error, "problem", None) or str(error)
        problems.append(Problem(name, field, f"invalid YAML{line}: {reason}"))
        return None
    except (ValueError, RecursionError, MemoryError) as error:  # e.g. a 5,000-digit number, nesting 10,000 deep
        problems.append(Problem(name, field, f"cannot be read: {type(error).__name__}: {shorten(str(error), 120)}"))
        return None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem(name, field, "must be a YAML mapping of 'field: value' lines"))
        return None
    return data


def _convert(data: dict, fields: Mapping[str, tuple[bool, Callable]], name: str, problems: list[Problem]) -> dict:
    values: dict[str, Any] = {}
    for key in data:
        if key not in fields:
            problems.append(Problem(name, str(key), f"unknown field; known fields are {', '.join(fields)}"))
    for key, (required, convert) in fields.items():
        if key not in data or data[key] is None:
            if required:
                problems.append(
                    Problem(name, key, "is missing; add it to the front matter" if name.endswith(".md") else "is missing; add it")
                )
            continue
        try:
            values[key] = convert(data[key])
        except _FieldError as error:
            problems.append(Problem(name, key, str(error)))
    return values


def split_front_matter(text: str) -> tuple[str, str] | None:
    """Split ``---\\nYAML\\n---\\nMarkdown`` into its two parts; None when the delimiters are missing."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != "---":
        return None
    for index, line in enumerate(lines[1:], start=1):
        if line.rstrip() == "---":
            return "".join(lines[1:index]), "".join(lines[index + 1 :])
    return None


def is_content_file(relative: PurePath) -> bool:
    """Tell whether a path inside the content folder is the site file, an entry or an image.

    Skipped: anything under a dot-folder or named with a dot (editors' ``.#x.md`` lock links,
    ``.x.md.swp``), Emacs autosaves ``#x.md#``, backups ``x.md~`` and README.md (documentation).
    """
    if any(part.startswith(".") for part in relative.parts):
        return False
    return _is_content_name(relative.as_posix(), relative.name)


def _is_content_name(relative: str, name: str) -> bool:
    """``is_content_file`` for a path already known to have no dot-part (the scanner's hot loop: no pathlib)."""
    if relative == SITE_FILE:
        return True
    if name.startswith("#"):
        return False
    return (name.endswith(ENTRY_SUFFIX) and name.lower() not in NOT_ENTRIES) or is_media_name(name)


def is_entry_name(name: str) -> bool:
    """Tell whether a content file (as the scanner lists it) is an entry: not the site file, not an image."""
    return name.endswith(ENTRY_SUFFIX) and name != SITE_FILE


class ContentFile(NamedTuple):
    """A file the loader will read: its name relative to the folder, and what stat said of it.

    Its path is the scan's folder and its name (``FolderScan.path``), not kept: 100,000 paths
    cost every worker ~8 MB.
    """

    name: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FolderScan:
    """The content files of a folder, and what is wrong with the folder itself."""

    files: tuple[ContentFile, ...]
    problems: tuple[Problem, ...]
    links: tuple[str, ...] = ()  # content files that are symlinks (to files inside the folder): their targets' edits name the target
    root: str = ""  # the folder scanned, as it was named

    def path(self, file: ContentFile) -> str:
        """Return the path of one of the scan's files."""
        return os.path.join(self.root, file.name)


_SPECIAL = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _file_problem(name: str, mode: int) -> Problem | None:
    if stat.S_ISREG(mode):
        return None
    what = _SPECIAL.get(stat.S_IFMT(mode), "not a regular file")
    return Problem(name, "file", f"is {what}, not a regular file; remove it (it is never opened)")


def scan_folder(directory: Path, known: Iterable[ContentFile] = ()) -> FolderScan:
    """List the site file and every entry file, sorted: the one list the loader and the watcher share.

    ``known``: records of an earlier scan of the same folder (or the last load's); a regular file
    that stat shows unchanged keeps its record object instead of a new equal one, so a restart's scan does not
    hold every record twice beside the kept load, and the loader finds changes by identity.

    Nothing is opened: a FIFO, device or socket with a content name is reported, never read. A
    symlink is followed only when its target stays inside the folder (a link out, say to /dev/zero
    or /etc, is reported); dangling symlinks (what Emacs leaves while a buffer is modified) are not
    content; linked folders are not descended into. A folder that cannot be listed is reported, so
    an unreadable ``posts/`` never publishes as an empty site. Strings and os calls only: this runs
    over every file (100,000 files: ~1 s, mostly one stat each), so a reload that knows which paths
    changed rescans only those (``rescan_folder``).
    """
    files: list[ContentFile] = []
    problems: list[Problem] = []
    links: list[str] = []
    earlier = {record.name: record for record in known}
    try:
        root = os.path.realpath(directory)
    except OSError as error:
        return FolderScan((), (Problem(".", "folder", f"cannot be resolved ({error.strerror})"),), root=os.fspath(directory))
    pending = [(os.fspath(directory), "")]
    while pending:
        folder, prefix = pending.pop()
        shown = prefix.rstrip("/") or "."
        try:
            listing = os.scandir(folder)
        except OSError as error:
            problems.append(Problem(shown, "folder", f"cannot be read ({error.strerror}); fix its permissions"))
            continue
        with listing:
            for item in _one_at_a_time(listing, shown, problems):
                base = item.name
                if base.startswith("."):
                    continue
                name = prefix + base
                try:
                    if item.is_dir(follow_symlinks=False):
                        pending.append((item.path, name + "/"))
                        continue
                    if not _is_content_name(name, base):
                        continue
                    info = item.stat(follow_symlinks=False)
                    found = earlier.get(name)
                    if found is None or not stat.S_ISREG(info.st_mode) or (found.size, found.mtime_ns) != (info.st_size, info.st_mtime_ns):
                        found = _content_file(root, name, item.path, info)
                except OSError as error:  # deleted or renamed while we looked
                    found = Problem(name, "file", f"cannot be read ({error.strerror})")
                if isinstance(found, ContentFile):
                    files.append(found)
                    if stat.S_ISLNK(info.st_mode):
                        links.append(name)
                elif found is not None:
                    problems.append(found)
    return _folder_scan(files, problems, links, os.fspath(directory))


def _one_at_a_time(listing: Iterator[os.DirEntry], shown: str, problems: list[Problem]) -> Iterator[os.DirEntry]:
    """A folder's entries as the OS lists them, never all at once (a list of 100,000 left ~70 MB of fragments in
    every worker); a failure to list the rest is the folder's problem, as a failure to open it is."""
    try:
        yield from listing
    except OSError as error:
        problems.append(Problem(shown, "folder", f"cannot be read ({error.strerror}); fix its permissions"))


def _folder_scan(files: Iterable[ContentFile], problems: Iterable[Problem], links: Iterable[str], root: str) -> FolderScan:
    """A scan in the one order every scan has (files and problems by name), however it was found."""
    return FolderScan(tuple(sorted(files)), _in_order(problems), tuple(sorted(links)), root)


def _in_order(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda p: (p.file, p.field)))


def _content_file(root: str, name: str, path: str, info: os.stat_result) -> ContentFile | Problem | None:
    """What the scan makes of a file with a content name, given its lstat: a content file, a problem, or nothing (raises OSError)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        return Problem(shown, "file name", "is not valid UTF-8; rename the file")
    if stat.S_ISLNK(info.st_mode):
        target = os.path.realpath(path)
        if not os.path.exists(target):
            return None  # dangling: an editor's lock link, not content
        if os.path.commonpath((root, target)) != root:
            return Problem(name, "file", f"is a symlink to {quote(target)}, outside the content folder; copy the file in")
        info = os.stat(path)
    return _file_problem(name, info.st_mode) or ContentFile(name, info.st_size, info.st_mtime_ns)


def rescan_folder(directory: Path, previous: FolderScan, changed: Iterable[str]) -> FolderScan:
    """Return the folder's scan after changes to the ``changed`` paths (absolute, as inotify names them).

    Only those paths (and the content files that are symlinks, whose targets' edits name the
    target) are looked at, so a reload after one edit does not stat 100,000 files. Falls back to a
    full ``scan_folder`` whenever the changes could concern files it does not name: a folder among
    them (created, renamed, its permissions changed), a path gone that held files we knew, a name
    that is not UTF-8, or a folder problem in the scan before.
    """
    try:
        root = os.path.realpath(directory)
    except OSError:
        return scan_folder(directory)
    if any(problem.field == "folder" for problem in previous.problems):
        return scan_folder(directory)
    files = list(previous.files)  # kept sorted by name: looked up and changed by bisection, never sorted again
    problems = {problem.file: problem for problem in previous.problems}
    links = set(previous.links)
    folder = os.fspath(directory)

    def index_of(name: str) -> int:  # where ``name`` is, or would be, in ``files`` (a 1-tuple sorts before its file)
        return bisect.bisect_left(files, (name,))

    def holds(name: str) -> bool:
        at = index_of(name)
        return at < len(files) and files[at].name == name

    for name in sorted({os.path.relpath(path, root).replace(os.sep, "/") for path in changed} | links):
        if name == "." or name.startswith("../") or name == "..":
            return scan_folder(directory)  # the folder itself, or a path outside it: look at everything
        if any(part.startswith(".") for part in name.split("/")):
            continue  # under a dot-folder, or a dot-file: never content
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return scan_folder(directory)
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        except OSError:
            return scan_folder(directory)
        known = holds(name) or name in problems
        if info is None and not known:
            inside = name + "/"
            at = index_of(inside)
            if (at < len(files) and files[at].name.startswith(inside)) or any(other.startswith(inside) for other in problems):
                return scan_folder(directory)  # a folder that held files: they are gone or moved
            continue  # gone, and never content (an editor's temporary file)
        if info is not None and stat.S_ISDIR(info.st_mode):
            return scan_folder(directory)  # a new, renamed or changed folder: its files are not named one by one
        if holds(name):
            del files[index_of(name)]
        problems.pop(name, None)
        links.discard(name)
        if info is None or not _is_content_name(name, name.rpartition("/")[2]):
            continue
        try:
            found = _content_file(root, name, path, info)
        except OSError as error:
            found = Problem(name, "file", f"cannot be read ({error.strerror})")
        if isinstance(found, ContentFile):
            files.insert(index_of(name), found)
            if stat.S_ISLNK(info.st_mode):
                links.add(name)
        elif found is not None:
            problems[name] = found
    return FolderScan(tuple(files), _in_order(problems.values()), tuple(sorted(links)), folder)


def content_files(directory: Path) -> list[Path]:
    """The paths of the folder's content files, sorted by name (see ``scan_folder``)."""
    scan = scan_folder(directory)
    return [Path(scan.path(file)) for file in scan.files]


def read_limited(path: Path, name: str, limit: int, problems: list[Problem]) -> bytes | None:
    """Read a regular file of at most ``limit`` bytes, or record why not.

    Opened non-blocking and checked after opening, so a file swapped for a FIFO or a device
    since the folder was scanned is refused, never waited on or read without end.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:  # deleted or renamed while we were reading the folder
        problems.append(Problem(name, "file", f"cannot be read ({error.strerror})"))
        return None
    try:  # read with the descriptor itself: a file object around it cost a start of 100,000 files ~3 s
        info = os.fstat(descriptor)
        problem = _file_problem(name, info.st_mode)
        if problem is None and info.st_size <= limit:
            # ask for the size stat gave (plus one byte, to see growth), never for `limit`: a read
            # of 1 MiB allocates 1 MiB (a mapping of its own) before shrinking to the file, and
            # 100,000 such leftovers exhaust the kernel's 65,530 mappings per process
            data = _read_up_to(descriptor, info.st_size + 1)
            if len(data) > info.st_size:  # grown since stat: read on, up to the limit
                data += _read_up_to(descriptor, limit + 1 - len(data))
            if len(data) <= limit:
                return data
        if problem is None:
            size = max(info.st_size, limit + 1)
            problem = Problem(
                name, "file", f"is {size:,} bytes, more than max_file_size ({limit:,}); split it, or raise max_file_size in {SITE_FILE}"
            )
        problems.append(problem)
        return None
    finally:
        os.close(descriptor)


def _read_up_to(descriptor: int, count: int) -> bytes:
    """Read ``count`` bytes, or up to the end of the file (a read may return fewer than asked)."""
    parts = []
    while count > 0 and (part := os.read(descriptor, count)):
        parts.append(part)
        count -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _load_site(directory: Path, overrides: Mapping[str, Any], problems: list[Problem]) -> tuple[Site | None, bytes]:
    name = SITE_FILE
    path = directory / SITE_FILE
    if not path.exists():
        problems.append(Problem(name, "file", "is missing; create it with id, title, description, author and sections"))
        return None, b""
    raw = read_limited(path, name, SITE_DEFAULTS["max_file_size"], problems)
    if raw is None:
        return None, b""
    text = _decode(raw, name, problems)
    data = None if text is None else _parse_yaml(text, name, "yaml", problems)
    if data is None:
        return None, raw
    before = len(problems)
    values = {**SITE_DEFAULTS, **_convert(data, SITE_FIELDS, name, problems)}
    for setting, value in overrides.items():  # FEEDSVC_* settings go through the same converters
        try:
            values[setting] = SITE_FIELDS[setting][1](value)
        except _FieldError as error:
            problems.append(Problem("environment", f"FEEDSVC_{setting.upper()}", str(error)))
    if len(problems) > before:
        return None, raw
    return Site(**values), raw


def _image(values: dict, written: dict, name: str, find_image: ImageFinder, problems: list[Problem]) -> Image | None:
    """The entry's picture from its front matter (``image`` + ``image_alt``), or None."""
    reference, alt = values.get("image"), values.get("image_alt")
    if reference is None:
        if alt is not None and written.get("image") is None:  # (an image given but wrong is reported already)
            problems.append(Problem(name, "image_alt", "describes no image; add 'image: media/...' or remove it"))
        return None
    if alt is None:
        problems.append(Problem(name, "image_alt", "is missing; describe the image for readers who cannot see it"))
        return None
    if "://" in reference:
        return Image(reference, alt)
    try:
        url, media = find_image("/" + reference)
    except MediaError as error:
        problems.append(Problem(name, "image", str(error)))
        return None
    return Image(url, alt, media)


def _parse_entry(
    name: str, raw: bytes, digest: str, site: Site, library: MediaLibrary, problems: list[Problem], defer_bodies: bool = False
) -> Entry | None:
    """Parse and check one entry file; with ``defer_bodies``, a body without pictures is left to render when first asked for."""
    text = _decode(raw, name, problems)
    if text is None:
        return None
    parts = split_front_matter(text)
    if parts is None:
        problems.append(Problem(name, "front matter", "missing; start the file with a '---' line, the fields, and another '---' line"))
        return None
    data = _parse_yaml(parts[0], name, "front matter", problems)
    if data is None:
        return None
    before = len(problems)
    values = _convert(data, _entry_fields(site), name, problems)
    stem = posixpath.splitext(posixpath.basename(name))[0]  # PurePath's stem, without its ~20 us a call
    slug = values.get("slug") or stem
    if "slug" not in values and not _SLUG.match(slug):
        problems.append(Problem(name, "slug", f"file name {stem!r} is not a slug; rename the file or add 'slug: some-words'"))
    published, updated = values.get("date"), values.get("updated", values.get("date"))
    if published and updated and updated < published:
        problems.append(Problem(name, "updated", "is earlier than date; an entry cannot change before it is published"))
    folder = posixpath.dirname(name)  # "" at the top of the content folder

    def find_image(reference: str) -> tuple[str, MediaFile]:
        target = resolve(reference, folder)
        if target is None:
            raise MediaError("leaves the content folder; keep images inside it")
        media = library.get(target)
        return site.url(media.path), media

    image = _image(values, data, name, find_image, problems)
    page_url = site.url(entry_path(slug))
    body_source = parts[1]
    summary = values.get("summary")
    if defer_bodies and body_source.strip() and has_no_pictures(body_source):
        body: str | DeferredBody = DeferredBody.of(body_source, page_url, summary)
        headings: tuple[Heading, ...] = ()
        media = {}  # no picture in it; the summary comes with the rendered body
    else:
        rendered = render_markdown(body_source, page_url, find_image) if body_source.strip() else RenderedMarkdown("", "", (), (), ())
        problems.extend(Problem(name, "body", problem) for problem in rendered.problems)
        body, headings, media = rendered.html, rendered.headings, {m.name: m for m in rendered.media}
        summary = shorten(summary or rendered.lede)
    if len(problems) > before:
        return None
    if image is not None and image.file is not None:
        media = {image.file.name: image.file, **media}
    if media:  # the entry's HTML names its images' digests: what reuse compares must change with them
        digest = hashlib.sha256(" ".join([digest, *(m.digest for m in media.values())]).encode()).hexdigest()[:32]
    return Entry(
        id=values["id"],
        slug=slug,
        title=values["title"],
        published=published,
        updated=updated,
        section=values["section"],
        own_summary=summary,
        body=body,
        source=name,
        digest=digest,
        image=image,
        authors=values.get("authors", ()),
        tags=values.get("tags", ()),
        headings=headings,
        media=tuple(media.values()),
        draft=values.get("draft", False),
    )


def _check_unique(entries: list[Entry], problems: list[Problem]) -> None:
    for attribute in ("id", "slug"):
        seen: dict[str, Entry] = {}
        for entry in entries:
            value = getattr(entry, attribute)
            if value in seen:
                problems.append(
                    Problem(
                        entry.source,
                        attribute,
                        f"{quote(value)} is already used by {seen[value].source}; every entry needs its own {attribute}",
                    )
                )
            else:
                seen[value] = entry


class ParseCache(Protocol):
    """Where the loader keeps its work between loads and processes (``store.Store`` is one)."""

    def file_digests(self, names: list[str]) -> dict[str, tuple[int, int, str]]: ...

    def parsed_entries(self, keys: Iterable[str]) -> dict[str, Any]: ...

    def remember_parsed(self, entries: Mapping[str, Any]) -> Mapping[str, Any]: ...

    def remember_parse(self, files: Mapping[str, tuple[int, int, str]], keep: Collection[str]) -> None: ...


PARALLEL_FROM = 1000  # files to parse before the work is shared among processes


def _parse_files(
    site: Site, library: MediaLibrary, items: list[tuple[str, bytes, str]], defer_bodies: bool = False
) -> list[tuple[Entry | None, list[Problem]]]:
    """Parse files, each to its entry (or None) and its problems; any exception becomes a problem naming the file."""
    results = []
    for name, raw, file_digest in items:
        problems: list[Problem] = []
        try:
            entry = _parse_entry(name, raw, file_digest[:32], site, library, problems, defer_bodies)
        except Exception as error:  # a library failing on odd input must not escape: name the file
            problems.append(Problem(name, "file", f"could not be read: {type(error).__name__}: {shorten(str(error), 80)}"))
            entry = None
        results.append((entry, problems))
    return results


Progress = Callable[[int, int], None]  # (files done, files in all): long loads report as they go


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cycle collector while a load makes objects that live as long as it does.

    Each full pass walks every object made so far: a load of 100,000 entries spent 6 s of its main
    process collecting (4.7 s in 11 full passes) and freed nothing (entries hold no cycles).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _parse_all(
    site: Site,
    library: MediaLibrary,
    items: list[tuple[str, bytes, str]],
    processes: int,
    progress: Progress | None = None,
    defer_bodies: bool = False,
    on_part: Callable[[list[tuple[str, bytes, str]], list[tuple[Entry | None, list[Problem]]]], None] | None = None,
) -> list[tuple[Entry | None, list[Problem]]]:
    """Parse on ``processes`` processes when there is enough to share (forked: call only where no threads run).

    ``on_part`` is given each part's items and results as they come: it works while the other
    processes parse the next parts.
    """
    chunk = max(200, len(items) // (max(1, processes) * 20))
    chunks = [items[start : start + chunk] for start in range(0, len(items), chunk)]
    results: list[tuple[Entry | None, list[Problem]]] = []
    if processes < 2 or len(items) < PARALLEL_FROM:
        parts = (_parse_files(site, library, part, defer_bodies) for part in chunks)
        pool = None
    else:  # the executor pickles a chunk only when a process is ready for it: the bytes are not all copied at once
        # the parsers collect their own garbage: only this process pauses its collector (``load_content``)
        pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"), initializer=gc.enable)
        parts = pool.map(_parse_files, [site] * len(chunks), [library] * len(chunks), chunks, [defer_bodies] * len(chunks))
    try:
        for items_part, part in zip(chunks, parts, strict=True):
            results.extend(part)
            if on_part is not None:
                on_part(items_part, part)
            if progress is not None:
                progress(len(results), len(items))
    finally:
        if pool is not None:
            pool.shutdown()
    return results


@dataclass
class LoadMemo:
    """What the last load of a folder found, so the next one works only on files whose size or mtime changed.

    ``files`` maps each entry file's name to (the scan's record of it, its parse key, its entry),
    for the site digest ``site_digest``; ``newest_first`` is the published order that load gave.
    A load that fails keeps the parses it made, so fixing the typo re-parses one file.
    """

    site_digest: str = ""
    files: dict[str, tuple[ContentFile, str, Entry]] = field(default_factory=dict)
    newest_first: tuple[Entry, ...] | None = None  # None: the last load failed
    drafts: tuple[Entry, ...] = ()
    fresh: int = 0  # files the last load did not take from the memo before it
    with_media: tuple[str, ...] = ()  # the files whose entries show images: checked when an image changes
    scan: FolderScan = FolderScan((), ())  # the scan that load read (a rescan shares its unchanged records)
    images: dict[str, tuple[str, int, int]] | None = None  # the images of that scan, as MediaLibrary takes them


class _Keys(Collection[str]):
    """The parse keys of a load, as a set made only if asked (the store asks rarely: when it prunes old parses)."""

    def __init__(self, loaded: Mapping[str, tuple[ContentFile, str, Entry]]):
        self._loaded = loaded

    def __len__(self) -> int:
        return len(self._loaded)

    @functools.cached_property
    def _keys(self) -> set[str]:
        return {key for _, key, _ in self._loaded.values()}

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self):
        return iter(self._keys)


def _same_place(before: Entry, after: Entry) -> bool:
    """Tell whether an edited entry keeps its place: the same id and slug (no uniqueness to check), date and draft flag (no new order)."""
    return (before.id, before.slug, before.published, before.draft) == (after.id, after.slug, after.published, after.draft)


def _place_of(entries: tuple[Entry, ...], entry: Entry) -> int:
    """Return where ``entry`` is in ``entries`` (newest first, as ``sort_newest_first`` orders them): a binary search."""
    wanted = (entry.published, entry.id)
    low, high = 0, len(entries)
    while low < high:  # the first place whose (published, id) is not above the entry's
        middle = (low + high) // 2
        if (entries[middle].published, entries[middle].id) > wanted:
            low = middle + 1
        else:
            high = middle
    if low >= len(entries) or entries[low] is not entry:
        raise LookupError(f"{entry.source} is not where its date puts it")
    return low


_KEY_OF = operator.itemgetter(1)  # a memo item's parse key


def _unseen(file: ContentFile, remembered: Mapping[str, tuple[ContentFile, str, Entry]], size_limit: int) -> bool:
    """Tell whether the last load (``remembered``) did not see ``file`` as it is now, or it is too large to take as it was."""
    prior = remembered.get(file.name)
    return prior is None or (prior[0] is not file and prior[0] != file) or file.size > size_limit


def _sorted_out(
    scan: FolderScan, remembered: Mapping[str, tuple[ContentFile, str, Entry]], size_limit: int
) -> tuple[list[ContentFile], dict[str, tuple[str, int, int]], list[ContentFile]]:
    """Sort the scan's files out: the entry files in order, the images (as MediaLibrary takes them), and the entry
    files the last load (``remembered``) did not see as they are now."""
    files, images, pending = [], {}, []
    for file in scan.files:  # the scanner listed content files only: an entry, an image or the site file
        name = file.name
        if not name.endswith(ENTRY_SUFFIX):
            if name != SITE_FILE:
                images[name] = (scan.path(file), file.size, file.mtime_ns)
            continue
        files.append(file)
        if _unseen(file, remembered, size_limit):
            pending.append(file)
    return files, images, pending


def _with_changed_images(
    showing_images: Iterable[str], remembered: Mapping[str, tuple[ContentFile, str, Entry]], pending: set[str], library: MediaLibrary
) -> list[ContentFile]:
    """Return the files of entries taken from the last load whose images changed since (parsed again); tell
    ``library`` the images the others show, as they are."""
    stale = []
    for name in showing_images:
        if name in remembered and name not in pending:
            file, _, entry = remembered[name]
            if all(library.current(media) for media in entry.media):
                library.known.update((media.name, media) for media in entry.media)
            else:
                stale.append(file)
    return stale


def _swapped_in(
    entries: tuple[Entry, ...], drafts: tuple[Entry, ...], edits: Iterable[tuple[Entry, Entry]]
) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    """Return the published entries and drafts with each edited entry (before, after) where its earlier self was.

    Only for edits that keep an entry's id, slug, date and draft flag (``_same_place``): the order holds.
    """
    for before, after in edits:
        if after.draft:
            drafts = tuple(after if entry is before else entry for entry in drafts)
        else:
            at = _place_of(entries, before)
            entries = (*entries[:at], after, *entries[at + 1 :])
    return entries, drafts


def _with_shared_strings(entry: Entry, file: ContentFile) -> Entry:
    """Make a new entry (parsed in another process, or read from the store) share strings with the rest of the load; return it.

    Its file name is the scan's string object, its section and day the ones every entry of that
    section and day shares: 100,000 entries held by every worker save ~18 MB.
    """
    # a new object only this load refers to yet: set in place
    if entry.source is not file.name and entry.source == file.name:
        object.__setattr__(entry, "source", file.name)
    object.__setattr__(entry, "section", sys.intern(entry.section))  # a few sections
    object.__setattr__(entry, "day", sys.intern(entry.day))  # a few thousand days
    return entry


def _changed_entry_files(scan: FolderScan, memo: LoadMemo, remembered: Mapping, size_limit: int) -> list[ContentFile] | None:
    """Return the entry files whose records differ from those of the scan the last load read, or None to look at every file.

    A rescan keeps the record of every file it did not look at, so the differences are found by
    identity in C (100,000 files: milliseconds, not a Python pass over each). None when files may
    have come, gone or been renamed (another count, another name at a place) or an image or the
    site file changed: then every file is looked at.
    """
    before = memo.scan.files
    if memo.images is None or len(before) != len(scan.files):
        return None
    pending = []
    for at in itertools.compress(itertools.count(), map(operator.is_not, scan.files, before)):
        file = scan.files[at]
        if file.name != before[at].name or not file.name.endswith(ENTRY_SUFFIX):
            return None
        if _unseen(file, remembered, size_limit):
            pending.append(file)
    return pending


@collector_paused()
def load_content(
    directory: str | Path,
    overrides: Mapping[str, Any] | None = None,
    parsed: LoadMemo | None = None,
    cache: ParseCache | None = None,
    processes: int = 1,
    scan: FolderScan | None = None,
    progress: Progress | None = None,
    defer_bodies: bool = False,
) -> Content:
    """Load and validate a whole content folder, or raise ContentError listing every problem.

    ``parsed``, when given, remembers the last load (``LoadMemo``): files it saw with the same
    name, size and mtime are taken from it as they were, so a reload after one edit reads,
    parses, checks and sorts little; it is refilled with this load's files. ``cache`` keeps
    parses across restarts and processes, plus each file's digest by its name, size and mtime (as
    make and rsync do), so an unchanged file is not even read. ``processes`` > 1 parses many new
    files in parallel. ``scan`` is the folder's scan when the caller has just made it. Files are
    named relative to the folder in every message.

    ``defer_bodies`` (with ``cache``): new bodies that show no picture, and so cannot be wrong, are
    checked but not rendered: the cache keeps their source and renders each when first asked for
    (``markdown.DeferredBody``). A start of 100,000 new entries spends 80 % of its parse on Markdown.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ContentError([Problem(".", "folder", "does not exist; pass --content DIR or set FEEDSVC_CONTENT_DIR")])
    scan = scan or scan_folder(directory)
    problems = list(scan.problems)
    if any(problem.file == "." for problem in problems):
        raise ContentError(problems)
    site, site_raw = _load_site(directory, overrides or {}, problems)
    if site is None:
        raise ContentError(problems)
    digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in (overrides or {}).items())).encode())
    digest.update(PARSER_VERSION)
    digest.update(site_raw)
    site_digest = digest.hexdigest()  # the site file and its overrides: what every entry's parse also depends on
    memo = parsed if parsed is not None else LoadMemo()
    remembered = memo.files if memo.site_digest == site_digest else {}
    # the last load was complete and valid: entries that keep their place need no new check or sort
    previous_order = memo.newest_first
    trusted = bool(remembered) and previous_order is not None

    # entry files the last load did not see as they are now; every other one is taken from it (``remembered``) as it was
    pending = _changed_entry_files(scan, memo, remembered, site.max_file_size) if trusted else None
    files: list[ContentFile] | None = None  # the entry files in order, when listed (the quick look above does not)
    if pending is not None:
        images = memo.images
    else:
        files, images, pending = _sorted_out(scan, remembered, site.max_file_size)
    pending_names = {file.name for file in pending}
    library = MediaLibrary(images)
    stale = _with_changed_images(memo.with_media if remembered else (), remembered, pending_names, library)
    keys: dict[str, str] = {file.name: remembered[file.name][1] for file in stale}  # name -> parse key, of each pending file
    found: dict[str, Entry] = {}  # parse key -> entry, parsed before
    pending += stale
    pending_names.update(file.name for file in stale)

    known = cache.file_digests([file.name for file in pending]) if cache is not None and pending else {}
    file_digests: dict[str, str] = {}  # name -> digest, of each readable pending file
    raws: dict[str, bytes] = {}
    read_problems: dict[str, list[Problem]] = {}

    def note_digest(name: str, file_digest: str) -> None:
        file_digests[name] = file_digest
        # one string object per key: the memo, the store's body references and this load share it; 128 bits
        # of each digest name a parse as surely as 256 (no two files' keys meet by chance), in ~64 bytes less a
        # key: 100,000 keys are held by every worker
        keys[name] = sys.intern(f"{file_digest[:32]}:{site_digest[:32]}")

    def read(file: ContentFile) -> None:
        raw = read_limited(scan.path(file), file.name, site.max_file_size, read_problems.setdefault(file.name, []))
        if raw is None:
            file_digests.pop(file.name, None)
            keys.pop(file.name, None)
            return
        raws[file.name] = raw
        note_digest(file.name, hashlib.sha256(file.name.encode() + b"\0" + raw).hexdigest())

    for file in pending:
        if file.name in keys:  # taken from the last load, its images changed: read it again below
            continue
        earlier = known.get(file.name)
        if earlier is not None and earlier[0] == file.size and earlier[1] == file.mtime_ns and file.size <= site.max_file_size:
            note_digest(file.name, earlier[2])  # unchanged since a load that recorded it: not even read
        else:
            read(file)
    if cache is not None:
        stale_keys = {keys[file.name] for file in stale}
        found.update(cache.parsed_entries(keys[f.name] for f in pending if f.name in keys and keys[f.name] not in stale_keys))
    for key, entry in list(found.items()):  # a parse shows its images as they were: parse again when one changed
        if entry.media:
            if all(library.current(media) for media in entry.media):
                library.known.update((media.name, media) for media in entry.media)
            else:
                del found[key]
    for file in pending:
        if file.name in keys and file.name not in raws and keys[file.name] not in found:
            read(file)  # known digest, no parse cached (the site file changed, an image changed): read it now
    to_parse = [(f.name, raws[f.name], file_digests[f.name]) for f in pending if f.name in raws and keys[f.name] not in found]
    stored: dict[str, Entry] = {}  # parse key -> new entry, its body kept in the cache from now on, not in this process
    pending_files = {file.name: file for file in pending}

    def keep_part(items: list[tuple[str, bytes, str]], results: list[tuple[Entry | None, list[Problem]]]) -> None:
        # kept as each part comes, while the other processes parse the next (a failed load keeps its parses too)
        parsed = {
            keys[name]: _with_shared_strings(entry, pending_files[name])
            for (name, _, _), (entry, _) in zip(items, results, strict=True)
            if entry is not None
        }
        if parsed:
            stored.update(cache.remember_parsed(parsed))

    parse_results = dict(
        zip(
            (item[0] for item in to_parse),
            _parse_all(
                site, library, to_parse, processes, progress, defer_bodies and cache is not None, keep_part if cache is not None else None
            ),
            strict=True,
        )
    )

    read_problems = {name: found_problems for name, found_problems in read_problems.items() if found_problems}
    this_load: dict[str, tuple[ContentFile, str, Entry]]  # name -> (file, key, entry), in file order
    if trusted and (files is None or len(files) == len(remembered)) and not read_problems and all(f.name in remembered for f in pending):
        this_load = dict(remembered)  # the same files as last time, in the same order: only the pending ones change
        for file in pending:
            key = keys[file.name]
            entry = found.get(key)
            if file.name in parse_results:
                entry, entry_problems = parse_results[file.name]
                problems.extend(entry_problems)
            if entry is None:
                del this_load[file.name]
            else:
                this_load[file.name] = (file, key, stored.get(key) or _with_shared_strings(entry, file))
    else:
        this_load = {}
        for file in files if files is not None else (f for f in scan.files if f.name.endswith(ENTRY_SUFFIX)):
            name = file.name
            if read_problems:
                problems.extend(read_problems.get(name, ()))
            if name not in pending_names:
                this_load[name] = remembered[name]
                continue
            key = keys.get(name)
            if key is None:
                continue
            entry = found.get(key)
            if name in parse_results:
                entry, entry_problems = parse_results[name]
                problems.extend(entry_problems)
            if entry is not None:
                this_load[name] = (file, key, stored.get(key) or _with_shared_strings(entry, file))
    changed_files = {
        f.name: value
        for f in pending
        if f.name in file_digests and known.get(f.name) != (value := (f.size, f.mtime_ns, file_digests[f.name]))
    }
    if cache is not None and (stored or changed_files):
        cache.remember_parse(changed_files, _Keys(this_load))  # the files' digests; parses of other versions forgotten
    # the version: every file's digest (in its parse key) in file order, and the images every page and feed may link to
    digest.update("\n".join(map(_KEY_OF, this_load.values())).encode())
    for media in library.known.values():
        digest.update(media.digest.encode())

    # edited entries that keep their id, slug, date and draft flag: the last load's order and checks still hold
    edited = {f.name for f in pending if f.name in this_load}
    in_place = (
        trusted
        and len(this_load) == len(remembered)
        and all(name in remembered and _same_place(remembered[name][2], this_load[name][2]) for name in edited)
    )
    if not in_place:
        _check_unique([entry for _, _, entry in this_load.values()], problems)
    if parsed is not None:  # what the next load starts from, a failed one too: fixing a typo re-parses one file
        parsed.site_digest, parsed.files, parsed.newest_first, parsed.fresh = site_digest, this_load, None, len(pending)
        parsed.scan, parsed.images = scan, images
        if remembered and len(pending) < 1000:  # the entries showing images: the last load's, with the pending ones' changes
            with_media = set(memo.with_media) - pending_names
            with_media.update(name for name in pending_names if name in this_load and this_load[name][2].media)
        else:
            with_media = {name for name, (_, _, entry) in this_load.items() if entry.media}
        parsed.with_media = tuple(sorted(with_media))
    if problems:
        raise ContentError(problems)
    if in_place:  # swap the edited entries in where the last load had them
        entries, drafts = _swapped_in(previous_order, memo.drafts, [(remembered[name][2], this_load[name][2]) for name in edited])
    else:
        entries = sort_newest_first(entry for _, _, entry in this_load.values() if not entry.draft)
        drafts = tuple(entry for _, _, entry in this_load.values() if entry.draft)
    if parsed is not None:
        parsed.newest_first, parsed.drafts = entries, drafts
    return Content(site=site, entries=entries, version=digest.hexdigest()[:16], drafts=drafts, folder=str(directory))
