"""Property-based tests: any Unicode an editor can type yields well-formed feeds and escaped pages."""

from __future__ import annotations

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

from feedsvc.content import load_content
from feedsvc.feeds import render_atom, render_json_feed, render_rss, site_feed
from feedsvc.models import strip_xml_illegal
from feedsvc.pages import page_context, render_entry
from tests.conftest import BUNDLED_CONTENT

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
        assert parsed.entries[0].title == entry.title
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
