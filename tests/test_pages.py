"""HTML pages, parsed with lxml: landing page, entry pages, autodiscovery, escaping."""

from __future__ import annotations

import feedparser
import lxml.html
import pytest

from feedsvc.source.loader import load_content
from tests.conftest import write_entry

BASE = "http://127.0.0.1:8000"


def _page(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    return lxml.html.fromstring(response.data)


def test_landing_page_has_autodiscovery_for_every_feed(client):
    page = _page(client, "/")
    links = page.xpath("//head/link[@rel='alternate'][@type!='text/x-opml']")
    assert page.xpath("//head/link[@type='text/x-opml']/@href") == [f"{BASE}/feeds.opml"]  # every feed at once
    types = {"feed.xml": "application/rss+xml", "atom.xml": "application/atom+xml", "feed.json": "application/feed+json"}
    expected = {
        (media_type, f"{BASE}{prefix}/{name}") for prefix in ("", "/article", "/featured", "/latest") for name, media_type in types.items()
    }
    assert {(link.get("type"), link.get("href")) for link in links} == expected
    assert len({link.get("title") for link in links}) == len(links)  # every one distinguishable in a reader's picker
    # entry pages offer the site's three feeds
    entry_links = _page(client, "/posts/new-faces-proteas-announce-test-debutants/").xpath("//head/link[@rel='alternate']/@href")
    assert entry_links == [f"{BASE}/feed.xml", f"{BASE}/atom.xml", f"{BASE}/feed.json"]


def test_landing_page_shows_site_article_lists_and_subscribe_links(client):
    page = _page(client, "/")
    assert page.xpath("string(//h1)") == "Best Website"
    assert "Breaking news, trending updates" in page.text_content()
    lead = page.xpath("//article[contains(@class,'lead')]")[0]
    assert lead.xpath("string(.//h2)") == "Ketamine Therapy: High Risk, High Reward for Severe Depression?"
    assert "A groundbreaking treatment, or a risky gamble?" in lead.text_content()
    assert lead.xpath(".//a/@href")[0] == f"{BASE}/posts/ketamine-therapy-high-risk-high-reward-for-severe-depression/"
    for section, count in (("featured", 5), ("latest", 5)):
        items = page.xpath(f"//section[@aria-labelledby='section-{section}']//li")
        assert len(items) == count
        assert all(item.xpath(".//time/@datetime")[0].startswith("2025-07-07T") for item in items)
        assert all("Jul 07, 2025" in item.text_content() for item in items)
    subscribe = page.xpath("//section[@aria-labelledby='subscribe']")[0].text_content()
    for path in ("/feed.xml", "/atom.xml", "/feed.json"):
        assert BASE + path in subscribe


def test_pages_load_no_external_assets_and_no_script(client):
    for path in ("/", "/posts/new-faces-proteas-announce-test-debutants/"):
        page = _page(client, path)
        assert not page.xpath("//script")
        for url in page.xpath("//link[@rel='stylesheet' or @rel='icon']/@href"):
            assert url.startswith(BASE + "/static/")
            assert client.get(url.removeprefix(BASE)).status_code == 200


def test_every_feed_item_link_resolves_to_an_html_page(client):
    for entry in feedparser.parse(client.get("/feed.xml").data).entries:
        page = _page(client, entry.link.removeprefix(BASE))
        assert page.xpath("string(//h1)") == entry.title
        assert page.xpath("//link[@rel='canonical']/@href") == [entry.link]


def test_article_page_has_its_headings_lists_and_closing_advice(client):
    page = _page(client, "/posts/ketamine-therapy-high-risk-high-reward-for-severe-depression/")
    assert len(page.xpath("//h1")) == 1
    headings = page.xpath("//article//div[@class='body']//h2")
    assert len(headings) == 7
    assert len(page.xpath("//article//div[@class='body']//li")) == 7
    # the source page's table of contents: one link per heading, each to the heading's id
    contents = page.xpath("//nav[@class='contents']//a")
    assert [a.text for a in contents] == [h.text for h in headings]
    assert [a.get("href") for a in contents] == ["#" + h.get("id") for h in headings]
    assert "Always seek the advice of a healthcare professional" in page.text_content()


def test_title_only_post_renders_without_an_empty_body(client):
    page = _page(client, "/posts/new-faces-proteas-announce-test-debutants/")
    assert not page.xpath("//div[@class='body']")
    assert page.xpath("//article//time/@datetime") == ["2025-07-07T17:30:00+00:00"]


def test_titles_are_escaped_in_pages(content_dir):
    from feedsvc import create_app

    write_entry(
        content_dir,
        "xss.md",
        """
        id: "tag:example.com,2025:xss"
        title: '<script>alert(1)</script> & co'
        date: 2025-01-01T00:00:00Z
        section: latest
        """,
        body="<script>alert(2)</script>\n",
    )
    client = create_app({"CONTENT_DIR": str(content_dir), "RELOAD_INTERVAL": 0}).test_client()
    for path in ("/", "/posts/xss/"):
        data = client.get(path).data
        assert b"<script>" not in data
        assert b"&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in data


@pytest.mark.parametrize("path", ["/", "/posts/new-faces-proteas-announce-test-debutants/", "/nope"])
def test_pages_are_well_formed_with_one_h1_and_a_language(client, path):
    response = client.get(path)
    page = lxml.html.fromstring(response.data)
    assert page.get("lang") == "en"
    assert len(page.xpath("//h1")) == 1
    assert page.xpath("//main")


def test_every_page_is_under_10_kb_gzipped(app):
    publication = app.extensions["feedsvc"].current
    documents = {path: publication.document(path) for path in publication.paths()}
    pages = {path: rep for path, rep in documents.items() if rep.identity.headers[0][1].startswith("text/html")}
    assert len(pages) == 12 + 8 + 1  # landing page, 11 entries, 4 archive indexes, 4 month pages, the tags index
    for path, representation in pages.items():
        assert len(representation.gzip.body) < 10 * 1024, path


def test_entry_pages_carry_open_graph_metadata(client):
    page = _page(client, "/posts/ketamine-therapy-high-risk-high-reward-for-severe-depression/")
    meta = {m.get("property"): m.get("content") for m in page.xpath("//head/meta[@property]")}
    assert meta["og:type"] == "article"
    assert meta["og:title"] == "Ketamine Therapy: High Risk, High Reward for Severe Depression?"
    assert meta["og:url"] == f"{BASE}/posts/ketamine-therapy-high-risk-high-reward-for-severe-depression/"
    assert meta["og:site_name"] == "Best Website"
    assert meta["og:description"].startswith("A groundbreaking treatment")
    assert meta["article:published_time"] == "2025-07-07T19:00:00+00:00"
    assert meta["article:section"] == "Articles"


def test_assets_have_content_hashed_names_and_are_cached_forever(client, content_dir):
    import hashlib

    url = _page(client, "/").xpath("//link[@rel='stylesheet']/@href")[0]
    response = client.get(url.removeprefix(BASE))
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert hashlib.sha256(response.data).hexdigest()[:12] in url  # a new name whenever the bytes change


def test_entry_pages_are_found_by_path_though_held_by_slug(content_dir):
    from feedsvc.models import EntryPages

    entries = load_content(content_dir).entries
    pages = EntryPages(entries)
    assert len(pages) == len(entries) and set(pages) == {entry.path for entry in entries}
    first = entries[0]
    assert pages[first.path] is first and first.path in pages and pages.get(first.path) is first
    for other in (first.path.rstrip("/"), "/tags" + first.path, f"/posts/{first.slug}/x/", "/posts//", None, 7):
        assert other not in pages and pages.get(other) is None
