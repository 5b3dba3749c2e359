"""Read a content folder (site file + Markdown entries with YAML front matter) into a Content value.

Pelican-style: each field goes through a small converter table; every problem is collected and
reported as ``FILE: FIELD: what is wrong and how to fix it`` so an editor can fix all of them at once.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from dateutil import parser as date_parser
from markdown_it import MarkdownIt

from .models import Content, Entry, Section, Site, entry_path, is_absolute_http_url, sort_newest_first, strip_xml_illegal

SITE_FILE = "site.yaml"
ENTRY_GLOB = "*.md"
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one file."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class ContentError(Exception):
    """The content folder cannot be published; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]):
        self.problems = tuple(problems)
        super().__init__("\n".join(map(str, self.problems)))


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

# CommonMark with raw HTML disabled: HTML typed into Markdown is shown as text, never executed,
# and markdown-it's validateLink already refuses javascript:/vbscript:/data: links.
_markdown = MarkdownIt("commonmark", {"html": False})


# --- converters: value from YAML -> python value, or _FieldError with the fix ---------------


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _FieldError(f"must be text, got {type(value).__name__} {value!r}; put the value in quotes")
    return strip_xml_illegal(str(value)).strip()


def _required_text(value: Any) -> str:
    text = _text(value)
    if not text:
        raise _FieldError("is empty; write a value")
    return text


def _slug(value: Any) -> str:
    slug = _text(value)
    if not _SLUG.match(slug):
        raise _FieldError(f"{slug!r} is not a slug; use lowercase letters, digits and single hyphens")
    return slug


def _uri_id(value: Any) -> str:
    text = _required_text(value)
    if not _URI.match(text):
        raise _FieldError(f"{text!r} is not a URI; use a permanent id such as 'urn:uuid:{uuid.uuid4()}'")
    return text


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _FieldError(f"must be a whole number of at least 1, got {value!r}")
    return value


def _timezone(value: Any) -> tzinfo:
    name = _required_text(value)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _FieldError(f"{name!r} is not an IANA time zone; use a name such as 'UTC' or 'Europe/London'") from None


def _base_url(value: Any) -> str:
    url = _required_text(value).rstrip("/")
    if not is_absolute_http_url(url):
        raise _FieldError(f"{url!r} is not an absolute http(s) URL such as 'https://news.example.com'")
    return url


def _sections(value: Any) -> tuple[Section, ...]:
    if not isinstance(value, Mapping) or not value:
        raise _FieldError("must map each section key to its title, e.g. 'featured: Featured Posts'")
    sections = []
    for key, title in value.items():
        try:
            sections.append(Section(_slug(key), _required_text(title)))
        except _FieldError as error:
            raise _FieldError(f"section {key!r} {error}") from None
    return tuple(sections)


def _date_in(zone: tzinfo) -> Callable[[Any], datetime]:
    """Parse a date as written ('Jul 07, 2025 18:00'); naive dates are in the site's time zone."""

    def convert(value: Any) -> datetime:
        text = _required_text(value)
        try:
            parsed = date_parser.parse(text)
        except (ValueError, OverflowError):
            raise _FieldError(f"{text!r} is not a date; write it like 'Jul 07, 2025 18:00' or '2025-07-07T18:00:00+01:00'") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)

    return convert


# field -> (required?, converter); the site's converters need no context.
SITE_FIELDS: dict[str, tuple[bool, Callable[[Any], Any]]] = {
    "title": (True, _required_text),
    "description": (True, _required_text),
    "author": (True, _required_text),
    "sections": (True, _sections),
    "base_url": (False, _base_url),
    "language": (False, _required_text),
    "timezone": (False, _timezone),
    "item_limit": (False, _positive_int),
    "max_age": (False, _positive_int),
}
SITE_DEFAULTS: dict[str, Any] = {
    "base_url": "http://127.0.0.1:8000",
    "language": "en",
    "timezone": ZoneInfo("UTC"),
    "item_limit": 20,
    "max_age": 300,
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
    }


def _section_of(site: Site) -> Callable[[Any], str]:
    keys = [s.key for s in site.sections]

    def convert(value: Any) -> str:
        key = _required_text(value)
        if key not in keys:
            raise _FieldError(f"{key!r} is not a section of this site; use one of {', '.join(keys)} or declare it in {SITE_FILE}")
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


def _parse_yaml(text: str, name: str, field: str, problems: list[Problem]) -> dict | None:
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        reason = getattr(error, "problem", None) or str(error)
        problems.append(Problem(name, field, f"invalid YAML{line}: {reason}"))
        return None
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


_PLAIN = {"text", "code_inline", "softbreak", "hardbreak"}


def render_markdown(source: str, page_url: str) -> tuple[str, str]:
    """Render CommonMark to HTML, resolving links and images against the page's absolute URL.

    Returns the HTML and the first paragraph as plain text (the default summary), from one parse.
    """
    tokens = _markdown.parse(source)
    first_paragraph = None
    for previous, token in zip([None, *tokens], tokens, strict=False):
        if first_paragraph is None and token.type == "inline" and previous is not None and previous.type == "paragraph_open":
            first_paragraph = "".join(
                " " if c.type in ("softbreak", "hardbreak") else c.content for c in token.children or () if c.type in _PLAIN
            ).strip()
        for child in token.children or ():
            attribute = {"link_open": "href", "image": "src"}.get(child.type)
            if attribute and child.attrGet(attribute) is not None:
                child.attrSet(attribute, urljoin(page_url, str(child.attrGet(attribute))))
    return _markdown.renderer.render(tokens, _markdown.options, {}), first_paragraph or ""


def _load_site(directory: Path, overrides: Mapping[str, Any], problems: list[Problem]) -> tuple[Site | None, bytes]:
    path = directory / SITE_FILE
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        problems.append(Problem(name, "file", f"cannot be read ({error.strerror}); create it with title, description, author and sections"))
        return None, b""
    text = _decode(raw, name, problems)
    data = None if text is None else _parse_yaml(text, name, "yaml", problems)
    if data is None:
        return None, raw
    before = len(problems)
    values = {**SITE_DEFAULTS, **_convert(data, SITE_FIELDS, name, problems)}
    for field, value in overrides.items():  # FEEDSVC_* settings go through the same converters
        try:
            values[field] = SITE_FIELDS[field][1](value)
        except _FieldError as error:
            problems.append(Problem("environment", f"FEEDSVC_{field.upper()}", str(error)))
    if len(problems) > before:
        return None, raw
    return Site(**values), raw


def _read_bytes(path: Path, problems: list[Problem]) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError as error:  # deleted or renamed while we were reading the folder
        problems.append(Problem(str(path), "file", f"cannot be read ({error.strerror})"))
        return None


def _parse_entry(name: str, stem: str, raw: bytes, site: Site, problems: list[Problem]) -> Entry | None:
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
    slug = values.get("slug") or stem
    if "slug" not in values and not _SLUG.match(slug):
        problems.append(Problem(name, "slug", f"file name {stem!r} is not a slug; rename the file or add 'slug: some-words'"))
    published, updated = values.get("date"), values.get("updated", values.get("date"))
    if published and updated and updated < published:
        problems.append(Problem(name, "updated", "is earlier than date; an entry cannot change before it is published"))
    if len(problems) > before:
        return None
    page_url = site.url(entry_path(slug))
    body_source = parts[1]
    body_html, first_paragraph = render_markdown(body_source, page_url) if body_source.strip() else ("", "")
    summary = values.get("summary") or first_paragraph
    entry = Entry(
        id=values["id"],
        slug=slug,
        title=values["title"],
        published=published,
        updated=updated,
        section=values["section"],
        summary=summary,
        body_html=body_html,
        source=name,
    )
    return entry


def _check_unique(entries: list[Entry], problems: list[Problem]) -> None:
    for attribute in ("id", "slug"):
        seen: dict[str, Entry] = {}
        for entry in entries:
            value = getattr(entry, attribute)
            if value in seen:
                problems.append(
                    Problem(
                        entry.source, attribute, f"{value!r} is already used by {seen[value].source}; every entry needs its own {attribute}"
                    )
                )
            else:
                seen[value] = entry


def load_content(directory: str | Path, overrides: Mapping[str, Any] | None = None, parsed: dict | None = None) -> Content:
    """Load and validate a whole content folder, or raise ContentError listing every problem.

    ``parsed``, when given, memoizes entries across loads (a reload re-parses only changed files);
    it is refilled with exactly the entries of this load.
    """
    directory = Path(directory)
    problems: list[Problem] = []
    if not directory.is_dir():
        raise ContentError([Problem(str(directory), "folder", "does not exist; pass --content DIR or set FEEDSVC_CONTENT_DIR")])
    site, site_raw = _load_site(directory, overrides or {}, problems)
    if site is None:
        raise ContentError(problems)
    digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in (overrides or {}).items())).encode())
    digest.update(site_raw)
    entries = []
    this_load: dict = {}
    for path in sorted(directory.rglob(ENTRY_GLOB)):
        raw = _read_bytes(path, problems)
        if raw is None:
            continue
        file_digest = hashlib.sha256(raw).digest()
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + file_digest)
        # an unchanged file (same name, bytes and site settings) reuses its earlier parse
        key = (str(path), file_digest, site)
        entry = parsed.get(key) if parsed is not None else None
        if entry is None:
            entry = _parse_entry(str(path), path.stem, raw, site, problems)
        if entry is not None:
            entries.append(entry)
            this_load[key] = entry
    if parsed is not None:
        parsed.clear()
        parsed.update(this_load)
    _check_unique(entries, problems)
    if problems:
        raise ContentError(problems)
    return Content(site=site, entries=sort_newest_first(entries), version=digest.hexdigest()[:16])
