"""Property-based tests: any Unicode an editor can type yields well-formed feeds and escaped pages."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from pathlib import Path

import feedparser
import lxml.html
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin

from feedsvc.feeds import render_json_feed
from feedsvc.markdown import _anchor, _markdown, _normalized
from feedsvc.models import strip_xml_illegal
from feedsvc.pages import page_context, render_entry
from feedsvc.source.loader import load_content
from tests.conftest import BUNDLED_CONTENT, render_atom, render_rss, site_feed

# Everything a UTF-8 file can hold (no lone surrogates), with the tricky cases made likely.
TRICKY = [
    "&",
    "<",
    ">",
    "]]>",
    "<script>alert(1)</script>",
    "\u202e",
    "\u05e9\u05dc\u05d5\u05dd",
    "e\u0301",
    "\U0001f600",
    "\x00",
    "\x0b",
    "\x1f",
    "\ufffe",
    '"',
    "'",
]
text = st.lists(st.one_of(st.text(alphabet=st.characters(exclude_categories=("Cs",))), st.sampled_from(TRICKY)), max_size=6).map("".join)
NS = {"atom": "http://www.w3.org/2005/Atom", "content": "http://purl.org/rss/1.0/modules/content/"}


def expected_text(value: str) -> str:
    """What the loader keeps of a one-line text field: XML-illegal characters dropped, outer space trimmed."""
    return strip_xml_illegal(value).strip()


def build(title: str, body: str, category: str):
    directory = Path(tempfile.mkdtemp(prefix="feedsvc-prop-"))
    try:
        shutil.copytree(BUNDLED_CONTENT, directory / "content")
        content_dir = directory / "content"
        site = yaml.safe_load((content_dir / "site.yaml").read_text())
        site["sections"]["latest"] = category
        (content_dir / "site.yaml").write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
        front = yaml.safe_dump(
            {"id": "tag:example.com,2025:prop", "title": title, "date": "2030-01-01T00:00:00Z", "section": "latest"}, allow_unicode=True
        )
        (content_dir / "posts" / "prop.md").write_text(f"---\n{front}---\n{body}", encoding="utf-8")
        return load_content(content_dir)
    finally:
        shutil.rmtree(directory)


def as_feedparser_shows(text: str) -> str:
    """feedparser "repairs" UTF-8 text that reads as Latin-1-decoded UTF-8 ("Â¡" shows as "¡", its mixin.pop): what it shows."""
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def one_line(value: str) -> bool:
    # YAML folds line breaks inside plain scalars; titles and section names are single lines
    return not any(c in value for c in "\r\n\x85\u2028\u2029")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=text.filter(lambda t: expected_text(t) and one_line(t)),
    body=text,
    category=text.filter(lambda c: expected_text(c) and one_line(c)),
)
def test_any_unicode_round_trips_through_every_format(title, body, category):
    content = build(title, body, category)
    entry = content.entries[0]
    assert entry.title == expected_text(title)
    spec = site_feed(content)

    for render, version in ((render_rss, "rss20"), (render_atom, "atom10")):
        document = render(spec)
        tree = etree.fromstring(document)  # well-formed XML, or this raises
        parsed = feedparser.parse(document)
        assert parsed.version == version and not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.entries[0].title == as_feedparser_shows(entry.title)
        item = tree.find(".//item/title") if version == "rss20" else tree.find("atom:entry/atom:title", NS)
        assert item.text == entry.title  # the bytes are exact; only feedparser's reading of them differs
        if entry.body_html:
            encoded = tree.find(".//item/content:encoded", NS) if version == "rss20" else tree.find("atom:entry/atom:content", NS)
            assert encoded.text == entry.body_html  # the HTML itself round-trips exactly
    rss_category = etree.fromstring(render_rss(spec)).find(".//item/category").text
    assert rss_category == expected_text(category)

    item = json.loads(render_json_feed(spec))["items"][0]
    assert item["title"] == entry.title
    assert item["tags"] == [expected_text(category)]

    assert "<script" not in entry.body_html
    page = render_entry(page_context(content, (), "/static/s.css", "/static/i.svg"), entry)
    tree = lxml.html.fromstring(page)
    assert not tree.xpath("//script")
    assert tree.xpath("string(//h1)") == entry.title


# --- reload == fresh build -------------------------------------------------------------------

POSTS = sorted(p.name for p in (BUNDLED_CONTENT / "posts").glob("*.md"))
words = st.text(alphabet="abcdefgh &<>\u00e9\U0001f600", min_size=1, max_size=12).filter(lambda t: t.strip())
edit_ops = st.one_of(
    st.tuples(st.just("title"), st.sampled_from(POSTS), words),
    st.tuples(st.just("body"), st.sampled_from(POSTS), words),
    st.tuples(st.just("offset"), st.sampled_from(POSTS), st.sampled_from(["+02:00", "-05:30", "Z"])),
    st.tuples(st.just("backdate"), st.sampled_from(POSTS), st.integers(1, 400)),
    st.tuples(st.just("section"), st.sampled_from(POSTS), st.sampled_from(["article", "featured", "latest"])),
    st.tuples(st.just("delete"), st.sampled_from(POSTS), st.none()),
    st.tuples(st.just("add"), st.integers(0, 5), st.integers(0, 900)),
    st.tuples(st.just("site_title"), st.none(), words),
    st.tuples(st.just("touch"), st.sampled_from(POSTS), st.none()),
)


def _front_matter(path: Path) -> tuple[dict, str]:
    _, front, body = path.read_text(encoding="utf-8").split("---\n", 2)
    return yaml.safe_load(front), body


def _write(path: Path, data: dict, body: str) -> None:
    path.write_text(f"---\n{yaml.safe_dump(data, allow_unicode=True)}---\n{body}", encoding="utf-8")


def apply_edit(content_dir: Path, op: tuple) -> None:
    """Edit the content folder the way an editor would; every edit leaves it valid."""
    from datetime import UTC, datetime, timedelta, timezone

    from dateutil import parser as date_parser

    kind, name, value = op
    if kind == "add":
        when = datetime(2025, 7, 1, tzinfo=UTC) + timedelta(minutes=value * 17)
        _write(
            content_dir / "posts" / f"added-{name}.md",
            {"id": f"urn:example:added-{name}", "title": f"Added {name}", "date": when.isoformat(), "section": "latest"},
            f"Body {value}\n",
        )
        return
    if kind == "site_title":
        site = yaml.safe_load((content_dir / "site.yaml").read_text(encoding="utf-8"))
        site["title"] = value
        (content_dir / "site.yaml").write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
        return
    path = content_dir / "posts" / name
    if not path.exists():
        return
    data, body = _front_matter(path)
    if kind == "delete":
        path.unlink()
        return
    if kind == "title":
        data["title"] = value
    elif kind == "body":
        body = f"{value}\n\n{body}"
    elif kind in ("offset", "backdate"):
        moment = date_parser.parse(str(data["date"]))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if kind == "backdate":
            moment -= timedelta(days=value)
        else:  # the same instant, written with another offset
            zone = UTC if value == "Z" else timezone(timedelta(hours=int(value[:3]), minutes=int(value[0] + value[4:])))
            moment = moment.astimezone(zone)
        data["date"] = moment.isoformat()
        data.pop("updated", None)
    elif kind == "section":
        data["section"] = value
    _write(path, data, body)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(edit_ops, min_size=1, max_size=6))
def test_a_reloaded_publication_is_byte_identical_to_a_fresh_build(edits):
    from feedsvc import create_app
    from feedsvc.publication import build_publication

    directory = Path(tempfile.mkdtemp(prefix="feedsvc-reload-"))
    try:
        content_dir = shutil.copytree(BUNDLED_CONTENT, directory / "content")
        ticks = itertools.count(1_800_000_000)  # a clock a second ahead on every look: no waiting for the next second
        app = create_app(
            {"CONTENT_DIR": str(content_dir), "STATE_DIR": str(directory / "state"), "RELOAD_INTERVAL": 0, "CLOCK": lambda: next(ticks)}
        )
        publisher = app.extensions["feedsvc"]
        for edit in edits:
            apply_edit(content_dir, edit)
            publisher.refresh()
            assert publisher.error is None, publisher.error
            reloaded = publisher.current
            fresh = build_publication(load_content(content_dir))
            assert reloaded.version == fresh.version
            assert reloaded.paths() == fresh.paths()
            for path in sorted(fresh.paths()):
                assert reloaded.document(path).body == fresh.document(path).body, (edit, path)
    finally:
        shutil.rmtree(directory)


def _allowed_in_xml(character: str) -> bool:
    """XML 1.0 §2.2 Char, minus what it discourages (DEL, C1 controls, noncharacters): the spec's ranges, one character at a time."""
    code = ord(character)
    if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0x7E:
        return True
    return code > 0x9F and not 0xD800 <= code <= 0xDFFF and not 0xFDD0 <= code <= 0xFDEF and code & 0xFFFE != 0xFFFE


@given(
    st.lists(st.one_of(st.text(), st.sampled_from(["\x7f", "\x85", "\ufdd0", "\U0001fffe", "\U0010ffff", "\ud800"])), max_size=8).map(
        "".join
    )
)
@settings(max_examples=500)
def test_stripping_xml_illegal_characters_keeps_exactly_the_allowed_ones(value):
    assert strip_xml_illegal(value) == "".join(filter(_allowed_in_xml, value))


# Markdown with the line endings and NULs CommonMark normalizes (spec 2.1, 2.3) made likely, among blocks they end
MARKDOWN_PIECES = ["\r\n", "\r", "\n", "\r\r\n", "\n\r", "\x00", "# ", "- ", "1. ", "> ", "    ", "```", "*a*", "[a](b)", "\\"]
markdown_source = st.lists(st.one_of(st.text(), st.sampled_from(MARKDOWN_PIECES)), max_size=16).map("".join)


@given(markdown_source)
@settings(max_examples=500)
def test_bodies_render_as_with_markdown_its_own_normalize_rule(source):
    with_its_rule = MarkdownIt("commonmark", {"html": False}).use(anchors_plugin, min_level=1, max_level=6, slug_func=_anchor)
    assert _markdown.render(_normalized(source)) == with_its_rule.render(source)


@settings(max_examples=400, deadline=None)
@given(
    month=st.sampled_from(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]),
    day=st.integers(1, 31),
    year=st.integers(990, 10_010),
    time_of_day=st.one_of(st.none(), st.tuples(st.integers(0, 25), st.integers(0, 59))),
    zone=st.sampled_from(["UTC", "Europe/London", "America/New_York", "Asia/Kolkata"]),
    padded=st.booleans(),
)
def test_dates_written_as_the_pages_write_them_read_as_python_dateutil_reads_them(month, day, year, time_of_day, zone, padded):
    """The seed's form, "Jul 07, 2025 19:00", is read without dateutil (9x faster), and must mean exactly what dateutil reads."""
    import re
    from zoneinfo import ZoneInfo

    import feedsvc.source.fields as fields

    text = f"{month} {day:02d}, {year}" if padded else f"{month} {day}, {year}"
    if time_of_day is not None:
        text += f" {time_of_day[0]:02d}:{time_of_day[1]:02d}"

    def read(convert):
        try:
            value = convert(text)
            return value, value.tzinfo, value.isoformat()
        except ValueError as error:  # _FieldError: the same message both ways
            return str(error)

    fast = read(fields._date_in(ZoneInfo(zone)))
    real = fields._PAGE_DATE
    fields._PAGE_DATE = re.compile("(?!)")  # everything through python-dateutil
    try:
        assert fast == read(fields._date_in(ZoneInfo(zone))), text
    finally:
        fields._PAGE_DATE = real
