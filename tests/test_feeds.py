"""Feed rendering: parse every format with feedparser and lxml; never compare whole documents."""

from __future__ import annotations

import json

import feedparser
import pytest
from lxml import etree

from feedsvc.feeds import render_json_feed
from feedsvc.source.loader import load_content
from tests.conftest import BUNDLED_CONTENT, render_atom, render_rss, site_feed, write_entry

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def content():
    return load_content(BUNDLED_CONTENT)


@pytest.fixture(scope="module")
def spec(content):
    return site_feed(content)


@pytest.mark.parametrize(("render", "version"), [(render_rss, "rss20"), (render_atom, "atom10")])
def test_feedparser_reads_every_entry(content, spec, render, version):
    parsed = feedparser.parse(render(spec))
    assert parsed.version == version
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.feed.title == "Best Website"
    assert [e.title for e in parsed.entries] == [e.title for e in content.entries]
    assert [e.id for e in parsed.entries] == [e.id for e in content.entries]
    assert [e.link for e in parsed.entries] == [f"{BASE}/posts/{e.slug}/" for e in content.entries]
    assert [e.published_parsed[:5] for e in parsed.entries] == [e.published.utctimetuple()[:5] for e in content.entries]
    # RSS <category> carries the section's title; Atom's term is its key, with the title as label
    expected = [content.site.section(e.section).title if version == "rss20" else e.section for e in content.entries]
    assert [e.tags[0].term for e in parsed.entries] == expected


def test_rss_has_full_content_summary_self_link_and_ttl(spec, content):
    channel = etree.fromstring(render_rss(spec)).find("channel")
    assert channel.findtext("link") == f"{BASE}/"
    assert channel.find("atom:link[@rel='self']", NS).get("href") == f"{BASE}/feed.xml"
    assert channel.findtext("language") == "en"
    assert channel.findtext("ttl") == "5"  # minutes, = max-age 300 s
    assert channel.findtext("lastBuildDate") == "Mon, 07 Jul 2025 19:00:00 +0000"  # newest entry, not now()
    article = channel.find("item")
    assert article.findtext("guid") == content.entries[0].id
    assert article.find("guid").get("isPermaLink") == "false"
    assert article.findtext("description").startswith("A groundbreaking treatment")
    assert ">The Risks: Navigating the Challenges</h2>" in article.findtext("content:encoded", namespaces=NS)
    assert article.findtext("dc:creator", namespaces=NS) == "Best Website"
    assert article.findtext("category") == "Articles"


def test_atom_has_html_content_summary_author_and_links(spec):
    feed = etree.fromstring(render_atom(spec))
    assert feed.findtext("atom:updated", namespaces=NS) == "2025-07-07T19:00:00+00:00"
    assert feed.findtext("atom:author/atom:name", namespaces=NS) == "Best Website"
    assert feed.find("atom:link[@rel='self']", NS).get("href") == f"{BASE}/atom.xml"
    assert feed.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
    entry = feed.find("atom:entry", NS)
    assert entry.find("atom:content", NS).get("type") == "html"
    assert entry.findtext("atom:summary", namespaces=NS).startswith("A groundbreaking treatment")
    assert entry.find("atom:category", NS).get("label") == "Articles"
    # a title-only post still has text, so readers show no empty box
    post = feed.findall("atom:entry", NS)[1]
    assert post.findtext("atom:summary", namespaces=NS) == post.findtext("atom:title", namespaces=NS)


def test_json_feed_has_the_required_fields_of_version_1_1(spec, content):
    document = json.loads(render_json_feed(spec))
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["title"] == "Best Website"
    assert document["feed_url"] == f"{BASE}/feed.json"
    assert document["home_page_url"] == f"{BASE}/"
    assert len(document["items"]) == 11
    for item, entry in zip(document["items"], content.entries, strict=True):
        assert item["id"] == entry.id and item["title"] == entry.title
        assert item["url"].startswith(BASE + "/posts/")
        assert "content_html" in item or "content_text" in item
        assert item["date_published"] == entry.published.isoformat()
    assert "<h2 " in document["items"][0]["content_html"]


@pytest.mark.parametrize("render", [render_rss, render_atom, render_json_feed])
def test_same_content_renders_byte_identical(render):
    assert render(site_feed(load_content(BUNDLED_CONTENT))) == render(site_feed(load_content(BUNDLED_CONTENT)))


def test_every_url_in_every_xml_feed_is_absolute(spec):
    for render in (render_rss, render_atom):
        tree = etree.fromstring(render(spec))
        hrefs = tree.xpath("//@href | //*[local-name()='link' and not(@href)]/text()")
        assert hrefs and all(h.startswith("http://") for h in hrefs)


def test_item_limit_keeps_the_newest(content_dir):
    site = content_dir / "site.yaml"
    site.write_text(site.read_text().replace("item_limit: 20", "item_limit: 3"))
    parsed = feedparser.parse(render_rss(site_feed(load_content(content_dir))))
    assert [e.title for e in parsed.entries] == [e.title for e in load_content(BUNDLED_CONTENT).entries[:3]]


def test_markup_characters_and_relative_links_survive_every_format(content_dir):
    title = "A & B < C > D ]]> \u05e9\u05dc\u05d5\u05dd \U0001f600"
    write_entry(
        content_dir,
        "tricky.md",
        f"""
        id: "tag:example.com,2025:tricky"
        title: '{title}'
        date: 2030-01-01T00:00:00Z
        section: latest
        """,
        body="See [the feed](/feed.xml) & <b>bold</b>.\n",
    )
    spec = site_feed(load_content(content_dir))
    for render in (render_rss, render_atom):
        entry = feedparser.parse(render(spec)).entries[0]
        assert entry.title == title
        assert f'href="{BASE}/feed.xml"' in entry.content[0].value
        assert "&lt;b&gt;bold&lt;/b&gt;" in entry.content[0].value
    item = json.loads(render_json_feed(spec))["items"][0]
    assert item["title"] == title


def test_rss_description_is_escaped_html_so_readers_show_the_text(content_dir):
    write_entry(
        content_dir,
        "aside.md",
        'id: "urn:example:aside"\ntitle: Aside\ndate: 2025-07-08T10:00:00Z\nsection: latest',
        body="A body that mentions <aside> and 5 < 6 & more.\n",
    )
    spec = site_feed(load_content(content_dir))
    item = etree.fromstring(render_rss(spec)).find("channel/item")
    # readers treat <description> as HTML: the plain text goes in HTML-escaped
    assert item.findtext("description") == "A body that mentions &lt;aside&gt; and 5 &lt; 6 &amp; more."
    for document in (render_rss(spec), render_atom(spec)):
        entry = feedparser.parse(document).entries[0]
        assert entry.summary_detail.type == "text/html"
        assert "&lt;aside&gt;" in entry.summary  # shown as the word "<aside>", not swallowed as a tag
    atom_summary = etree.fromstring(render_atom(spec)).find("atom:entry/atom:summary", NS)
    assert atom_summary.get("type") == "html"
    assert json.loads(render_json_feed(spec))["items"][0]["summary"] == "A body that mentions <aside> and 5 < 6 & more."
