"""The fields of the site file and of an entry's front matter: YAML read safely, each value through its converter.

Pelican-style: each field goes through a small converter table; every problem is collected and
reported as ``FILE: FIELD: what is wrong and how to fix it`` so an editor can fix all of them at once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from dateutil import parser as date_parser

from ..markdown import shorten
from ..media import resolve
from ..models import Author, Section, Site, is_absolute_http_url, strip_xml_illegal, tag_slug, url_problem, visible_label
from ..problems import Problem, quote
from ..urls import MAX_SEGMENT_BYTES, RESERVED
from .scan import SITE_FILE

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


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


# --- converters: value from YAML -> python value, or _FieldError with the fix ---------------


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _FieldError(f"must be text, got {type(value).__name__} {quote(value)}; put the value in quotes")
    return strip_xml_illegal(str(value)).strip()


def _required_text(value: Any) -> str:
    text = _text(value)
    if not text:
        raise _FieldError("is empty; write a value")
    return text


MAX_SLUG_LENGTH = 200  # a slug is a folder name of an export (at most 255 bytes) and part of every link to it


def _slug(value: Any) -> str:
    slug = _text(value)
    if not _SLUG.match(slug):
        raise _FieldError(f"{quote(slug)} is not a slug; use lowercase letters, digits and single hyphens")
    if len(slug) > MAX_SLUG_LENGTH:
        raise _FieldError(f"is {len(slug)} characters long, more than {MAX_SLUG_LENGTH}; use a shorter slug")
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
        _url_characters(reference)
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
    problem = url_problem(author.url)
    if problem is not None:
        raise _FieldError(f"url {quote(author.url)} of {quote(author.name)} {problem}")
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


# Every tag of an entry is an element of every feed that carries the entry, and each tag has feeds of
# its own: 1,000 tags on one post made 3,000 feeds of 1,000 categories each (minutes of CPU, 300 MB).
# News sites use a handful per story; 50 is generous, and keeps the work per entry small.
MAX_TAGS = 50
MAX_TAG_LENGTH = 100  # characters: a tag is a label, linked on every page that shows it


def _tags(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_TAGS:
        raise _FieldError(f"has {len(items)} tags, more than {MAX_TAGS}; keep the ones a reader would follow")
    tags: dict[str, str] = {}  # slug -> the first spelling: two spellings of one tag count once
    for item in items:
        label = visible_label(_required_text(item))
        slug = tag_slug(label)
        if not slug:
            raise _FieldError(f"tag {quote(label)} has no letter or digit; a tag needs a word to link to")
        if len(label) > MAX_TAG_LENGTH:
            raise _FieldError(f"tag {quote(label)} is {len(label):,} characters long, more than {MAX_TAG_LENGTH}; shorten it")
        if len(slug.encode()) > MAX_SEGMENT_BYTES:
            raise _FieldError(
                f"tag {quote(label)} makes a URL segment of {len(slug.encode())} bytes, more than {MAX_SEGMENT_BYTES} "
                "(a file name in an export); shorten it"
            )
        tags.setdefault(slug, label)
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
_date_order = _one_of("an order of dates", {"DMY": "7/8/2025 is 7 August", "MDY": "7/8/2025 is July 8"})


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


def _url_characters(url: str) -> str:
    """Return ``url``, or raise naming the character a URL may not hold (before any other check: urlsplit hides line breaks)."""
    problem = url_problem(url)
    if problem is not None:
        raise _FieldError(f"{quote(url)} {problem}")
    return url


MAX_PATH_LENGTH = 1024  # characters of a path an alias or a redirect names


def _site_path(value: Any) -> str:
    """Accept a path of this site as it follows the host ("/2025/07/07/old-slug/"), percent-encoded or not; return it decoded."""
    written = _url_characters(_required_text(value))
    path = unquote(written)  # as a request names it (WSGI's PATH_INFO, nginx's $uri): decoded
    if path != written:
        _url_characters(path)  # "%0A" is a line break all the same
    if not path.startswith("/") or "//" in path or "?" in path or "#" in path or {".", ".."} & set(path.split("/")):
        raise _FieldError(f"{quote(written)} is not a path of this site; write it as it follows the host, such as '/2025/07/07/old-slug/'")
    if ";" in path or "$" in path:  # a web server's configuration language takes them as syntax (nginx: the export's redirects)
        raise _FieldError(f"{quote(written)} holds ';' or '$', which feedsvc cannot redirect from")
    if len(path) > MAX_PATH_LENGTH:
        raise _FieldError(f"is {len(path):,} characters long, more than {MAX_PATH_LENGTH:,}")
    return path


def _aliases(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(dict.fromkeys(_site_path(item) for item in items))


def _redirects(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise _FieldError('must map old paths to new ones, such as {"/rss": "/feed.xml"}')
    return tuple(sorted((_site_path(old), _site_path(new)) for old, new in value.items()))


def _base_url(value: Any) -> str:
    url = _url_characters(_required_text(value)).rstrip("/")
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
        if key in RESERVED:  # /<key>/feed.xml, /<key>/archive/ would be among the site's own documents
            raise _FieldError(
                f"section {quote(key)} is a name the site's own pages use ({', '.join(sorted(RESERVED))}); choose another key"
            )
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
# The form the site's own pages write ("Jul 07, 2025", "Jul 07, 2025 19:00"): read without python-dateutil
# (~8 us instead of ~70 us a date: 7 s of CPU at 100,000 entries), with the result dateutil gives (tested).
_PAGE_DATE = re.compile(r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{1,2}), (\d{4})(?: (\d{1,2}):(\d{2}))?")
_MONTHS = {
    name: number for number, name in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}
# a date of numbers only, day and month in some order before a year: 7/8/2025, 07.08.25, 7-8-2025 18:00
_NUMERIC_DATE = re.compile(r"\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2,4})\b")
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


def _day_first(text: str, order: str | None) -> bool:
    """Tell whether a date written with numbers only ('7/8/2025') gives the day first, by the site's ``date_order``.

    Without one, a date whose first two numbers could each be the day or the month is refused:
    7/8/2025 is 7 August to most of the world and July 8 to the United States.
    """
    numeric = _NUMERIC_DATE.match(text)
    if numeric is None:
        return False
    first, second = int(numeric[1]), int(numeric[2])
    if order is None:
        if first <= 12 and second <= 12 and first != second:
            raise _FieldError(
                f"{quote(text)} is ambiguous: {first} may be the day or the month; write it year first ('2025-08-07') "
                f"or say in {SITE_FILE} how numeric dates are written (date_order: DMY or MDY)"
            )
        return first > 12
    month = second if order == "DMY" else first
    if not 1 <= month <= 12:
        raise _FieldError(f"{quote(text)} has no month {month} (date_order: {order} in {SITE_FILE}); {_DATE_EXAMPLE}")
    return order == "DMY"


def _date_in(zone: tzinfo, order: str | None = None) -> Callable[[Any], datetime]:
    """Parse a complete date as written ('Jul 07, 2025 18:00'); naive dates are in the site's time zone.

    python-dateutil completes partial dates from today ('Jul 07', '19:00', 'Monday'); parsing with
    two different defaults exposes that, so the result never depends on the day the process started.
    A date of numbers only is read in the site's ``order`` (``_day_first``).
    """

    def convert(value: Any) -> datetime:
        text = _required_text(value)
        if _RFC3339.fullmatch(text):
            try:
                return _in_range(_aware(datetime.fromisoformat(text), zone, text), text)
            except ValueError:  # 2025-02-30 and the like: dateutil's message below
                pass
        page_date = _PAGE_DATE.fullmatch(text)
        if page_date:
            month, day, year, hour, minute = page_date.groups()
            try:
                written = datetime(int(year), _MONTHS[month], int(day), int(hour or 0), int(minute or 0))
                return _in_range(_aware(written, zone, text), text)
            except ValueError:  # Feb 30 and the like: dateutil's message below
                pass
        if _NAMED_OFFSET.search(text):
            raise _FieldError(f"{quote(text)} mixes a zone name with an offset; write the offset alone, e.g. '+03:00'")
        day_first = _day_first(text, order)
        try:
            first = date_parser.parse(text, default=_DEFAULTS[0], tzinfos=_fixed_offset, dayfirst=day_first)
            # a part equal to the default may have come from it: only then is a second parse needed
            if (
                _shares_a_part(first, _DEFAULTS[0])
                and date_parser.parse(text, default=_DEFAULTS[1], tzinfos=_fixed_offset, dayfirst=day_first).date() != first.date()
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
    "date_order": (False, _date_order),
    "redirects": (False, _redirects),
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
    date = _date_in(site.timezone, site.date_order)
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
        "aliases": (False, _aliases),
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


def _parse_yaml(text: str, name: str, field: str, problems: list[Problem], first_line: int = 1) -> dict | None:
    """Read a YAML mapping; ``first_line``: the file's line the text starts at (front matter: 2, after its '---')."""
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

        def at(mark) -> str:  # PyYAML counts lines from 0, in the text it was given
            return f"line {mark.line + first_line}, column {mark.column + 1}"

        where, context, context_mark = (getattr(error, name, None) for name in ("problem_mark", "context", "context_mark"))
        message = f"invalid YAML{f' at {at(where)}' if where else ''}: {getattr(error, 'problem', None) or str(error)}"
        if context:  # what PyYAML was reading when it failed: an unclosed quote is "found unexpected end of stream" alone
            message += f" ({context}{f' that starts at {at(context_mark)}' if context_mark else ''})"
        problems.append(Problem(name, field, message))
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
