"""What newsroom feeds carry, on examples/newsroom: pictures, bylines, tags, drafts, scheduled posts, and the site's indexes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import quote

import feedparser
import lxml.html
import pytest
from lxml import etree
from PIL import Image

from feedsvc import create_app
from feedsvc.models import Entry, tag_labels, tag_slug
from feedsvc.problems import ContentError
from feedsvc.source.loader import load_content
from tests.conftest import NEWSROOM, ROOT, write_entry
from tests.servers import RecordingHub

BASE = "http://127.0.0.1:8000"
NOW = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # after every example post but the one scheduled for 2099
CENTENARY = datetime(2099, 6, 1, 8, tzinfo=UTC).timestamp()  # 09:00 in London (summer time)
HARBOUR = "/posts/harbour-reopens/"
NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "media": "http://search.yahoo.com/mrss/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "sm": "http://www.sitemaps.org/schemas/sitemap/0.9",
}


class Clock:
    """An injected wall clock (seconds since the epoch)."""

    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_app(folder: Path, state: Path, clock: Clock | None = None, **config):
    return create_app({"CONTENT_DIR": str(folder), "STATE_DIR": str(state), "RELOAD_INTERVAL": 0, "CLOCK": clock or Clock(), **config})


@pytest.fixture
def app(newsroom: Path, tmp_path: Path):
    return make_app(newsroom, tmp_path / "state")


@pytest.fixture(params=[True, False], ids=["fast-path", "flask-views"])
def client(request, newsroom: Path, tmp_path: Path):
    return make_app(newsroom, tmp_path / "state", FAST_PATH=request.param).test_client()


def page(client, path: str):
    response = client.get(path)
    assert response.status_code == 200, path
    return lxml.html.fromstring(response.data)


def every_document(client, publication) -> dict[str, bytes]:
    return {path: client.get(quote(path)).data for path in sorted(publication.paths())}


# --- pictures ------------------------------------------------------------------------------------


def test_feeds_carry_the_picture_the_way_readers_show_it(client):
    image = NEWSROOM / "media" / "harbour.jpg"
    size, digest = image.stat().st_size, hashlib.sha256(image.read_bytes()).hexdigest()[:12]
    url = f"{BASE}/media/harbour.{digest}.jpg"
    for path in ("/feed.xml", "/atom.xml"):
        entry = next(e for e in feedparser.parse(client.get(path).data).entries if e.link == BASE + HARBOUR)
        assert [dict(e) for e in entry.enclosures] == [{"href": url, "length": str(size), "type": "image/jpeg"}]
        (media,) = entry.media_content
        assert media["url"] == url and media["medium"] == "image" and media["type"] == "image/jpeg"
        assert (media["width"], media["height"], media["filesize"]) == ("960", "540", str(size))
    rss = etree.fromstring(client.get("/feed.xml").data)
    item = next(i for i in rss.iter("item") if i.findtext("link") == BASE + HARBOUR)
    assert item.find("enclosure").attrib == {"url": url, "length": str(size), "type": "image/jpeg"}
    assert item.findtext("media:content/media:description", namespaces=NS).startswith("A yellow-sailed boat")
    atom = etree.fromstring(client.get("/atom.xml").data)
    entry = next(e for e in atom.iterfind("atom:entry", NS) if e.find("atom:link", NS).get("href") == BASE + HARBOUR)
    assert [link.get("rel") for link in entry.iterfind("atom:link", NS)].count("enclosure") == 1
    item = next(i for i in json.loads(client.get("/feed.json").data)["items"] if i["url"] == BASE + HARBOUR)
    assert item["image"] == url


def test_a_local_image_is_served_from_its_content_hashed_url_forever(client):
    data = (NEWSROOM / "media" / "harbour.jpg").read_bytes()
    picture = page(client, HARBOUR).xpath("//figure[@class='picture']/img")[0]
    src = picture.get("src")
    assert src == f"{BASE}/media/harbour.{hashlib.sha256(data).hexdigest()[:12]}.jpg"
    assert (picture.get("width"), picture.get("height")) == ("960", "540")
    assert picture.get("alt").startswith("A yellow-sailed boat")
    response = client.get(src.removeprefix(BASE))
    assert response.status_code == 200 and response.data == data
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Encoding" not in client.get(src.removeprefix(BASE), headers={"Accept-Encoding": "gzip"}).headers
    assert client.get(src.removeprefix(BASE), headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_entry_pages_show_the_picture_byline_and_tags_and_offer_og_image(client):
    html = page(client, HARBOUR)
    assert html.xpath("//meta[@property='og:image']/@content") == html.xpath("//figure/img/@src")
    assert html.xpath("//meta[@property='og:image:alt']/@content")[0].startswith("A yellow-sailed boat")
    byline = html.xpath("//p[@class='byline']")[0]
    assert byline.text_content() == "By Ada Example and Bo Sample"
    assert byline.xpath("a[@rel='author']/@href") == ["https://example.com/ada"]
    assert html.xpath("//p[@class='tags']/a[@rel='tag']/text()") == ["Harbour", "Local Politics", "Boats"]
    assert html.xpath("//p[@class='tags']/a/@href")[0] == f"{BASE}/tags/harbour/"
    # no byline given: the site's author
    assert page(client, "/posts/council-budget/").xpath("string(//p[@class='byline'])") == "By Chronicle Newsroom"


def test_images_in_the_body_point_into_the_content_folder_with_their_size(client):
    data = (NEWSROOM / "media" / "lighthouse.png").read_bytes()
    (image,) = page(client, HARBOUR).xpath("//div[@class='body']//img")
    assert image.get("src") == f"{BASE}/media/lighthouse.{hashlib.sha256(data).hexdigest()[:12]}.png"
    assert (image.get("width"), image.get("height")) == ("480", "640")
    assert client.get(image.get("src").removeprefix(BASE)).data == data
    item = next(i for i in json.loads(client.get("/feed.json").data)["items"] if i["url"] == BASE + HARBOUR)
    assert image.get("src") in item["content_html"]  # the feeds' copy of the body shows it too


def test_the_landing_page_shows_thumbnails_with_their_dimensions(client):
    html = page(client, "/")
    thumbs = html.xpath("//img[@class='thumb']")
    assert thumbs and all(t.get("width") and t.get("height") and t.get("alt") == "" for t in thumbs)  # decorative: the link says it
    lead = html.xpath("//img[@class='lead-picture']")
    assert lead and lead[0].get("alt")


def test_a_replaced_image_gets_a_new_url_and_the_pages_follow(newsroom, tmp_path):
    app = make_app(newsroom, tmp_path / "state")
    client = app.test_client()
    old = page(client, HARBOUR).xpath("//figure/img/@src")[0]
    Image.new("RGB", (300, 200), "#123456").save(newsroom / "media" / "harbour.jpg")
    assert app.extensions["feedsvc"].refresh()
    img = page(client, HARBOUR).xpath("//figure/img")[0]
    assert img.get("src") != old and (img.get("width"), img.get("height")) == ("300", "200")
    assert client.get(img.get("src").removeprefix(BASE)).status_code == 200
    assert client.get(old.removeprefix(BASE)).status_code == 404  # those bytes are gone
    # a restart reuses the cached parse only with the image as it is now
    again = make_app(newsroom, tmp_path / "state").test_client()
    assert page(again, HARBOUR).xpath("//figure/img/@src")[0] == img.get("src")


@pytest.mark.parametrize(
    ("front_matter", "body", "field", "message"),
    [
        ("image: media/harbour.jpg", "", "image_alt", "is missing; describe the image"),
        ("image_alt: A view", "", "image_alt", "describes no image"),
        ("image: media/nothing.jpg\nimage_alt: x", "", "image", "media/nothing.jpg is not in the content folder"),
        ("image: ../outside.jpg\nimage_alt: x", "", "image", "leaves the content folder"),
        ("image: http://example.com/x.jpg\nimage_alt: x", "", "image", "is not an absolute https URL"),
        ("image: media/notes.txt\nimage_alt: x", "", "image", "is not an image file"),
        ("", "![a](../media/missing.png)\n", "body", "media/missing.png is not in the content folder"),
        ("image: media/fake.jpg\nimage_alt: x", "", "image", "is not a readable JPEG image"),
        ("image: media/png-named.jpg\nimage_alt: x", "", "image", "is image/png an image of the type its name says"),
        ("authors: [{name: A, url: not-a-url}]", "", "authors", "is not an absolute http(s) URL"),
        ("authors: [{name: A, email: nope}]", "", "authors", "is not an e-mail address"),
        ("authors: [{url: https://example.com/}]", "", "authors", "needs a name"),
        ("authors: [{name: A, twitter: x}]", "", "authors", "unknown field 'twitter'"),
        ("authors: []", "", "authors", "is empty"),
        ("tags: ['!!!']", "", "tags", "has no letter or digit"),
        ("draft: yes please", "", "draft", "must be true or false"),
    ],
)
def test_a_broken_field_names_the_file_the_field_and_the_fix(newsroom, front_matter, body, field, message):
    (newsroom / "media" / "fake.jpg").write_bytes(b"not a picture at all")
    Image.new("RGB", (4, 4)).save(newsroom / "media" / "png-named.jpg", format="PNG")
    (newsroom / "media" / "notes.txt").write_text("notes")
    write_entry(
        newsroom, "broken.md", f'id: "urn:example:broken"\ntitle: Broken\ndate: 2025-01-01 10:00\nsection: news\n{front_matter}', body
    )
    with pytest.raises(ContentError) as caught:
        load_content(newsroom)
    problems = [p for p in caught.value.problems if p.file == "posts/broken.md"]
    assert len(problems) == 1 and problems[0].field == field and message in problems[0].message, problems


def test_an_https_image_is_shown_and_carried_without_a_length(newsroom, tmp_path):
    url = "https://images.example.org/wire/harbour.jpg"
    write_entry(
        newsroom,
        "wire.md",
        f'id: "urn:example:wire"\ntitle: Wire\ndate: 2025-04-01 10:00\nsection: news\nimage: {url}\nimage_alt: A wire photo',
    )
    client = make_app(newsroom, tmp_path / "state").test_client()
    assert page(client, "/posts/wire/").xpath("//figure/img/@src") == [url]
    rss = etree.fromstring(client.get("/feed.xml").data)
    item = next(i for i in rss.iter("item") if i.findtext("link") == f"{BASE}/posts/wire/")
    assert item.find("enclosure") is None  # RSS needs a length, unknown for someone else's image
    assert item.find("media:content", NS).get("url") == url
    assert json.loads(client.get("/feed.json").data)["items"][0]["image"] == url


# --- authors and tags ----------------------------------------------------------------------------


def test_authors_reach_every_format(client):
    rss = etree.fromstring(client.get("/feed.xml").data)
    item = next(i for i in rss.iter("item") if i.findtext("link") == BASE + HARBOUR)
    assert item.xpath("dc:creator/text()", namespaces=NS) == ["Ada Example", "Bo Sample"]
    assert item.find("author") is None  # dc:creator says it; RSS <author> beside it would say it twice
    atom = etree.fromstring(client.get("/atom.xml").data)
    entry = next(e for e in atom.iterfind("atom:entry", NS) if e.find("atom:link", NS).get("href") == BASE + HARBOUR)
    authors = [[(child.tag.split("}")[1], child.text) for child in author] for author in entry.iterfind("atom:author", NS)]
    assert authors == [[("name", "Ada Example"), ("uri", "https://example.com/ada"), ("email", "ada@example.com")], [("name", "Bo Sample")]]
    parsed = next(e for e in feedparser.parse(client.get("/atom.xml").data).entries if e.link == BASE + HARBOUR)
    assert [a["name"] for a in parsed.authors] == ["Ada Example", "Bo Sample"]  # (feedparser copies e-mails between authors)
    item = next(i for i in json.loads(client.get("/feed.json").data)["items"] if i["url"] == BASE + HARBOUR)
    assert item["authors"] == [{"name": "Ada Example", "url": "https://example.com/ada"}, {"name": "Bo Sample"}]
    plain = next(
        e for e in feedparser.parse(client.get("/archive/2025-02-27/feed.xml").data).entries if e.link == f"{BASE}/posts/council-budget/"
    )
    assert plain.author == "Chronicle Newsroom"  # the site's author when none is given


def test_tags_are_categories_with_a_stable_term_and_the_sites_label(client):
    entry = next(e for e in feedparser.parse(client.get("/atom.xml").data).entries if e.link == f"{BASE}/posts/lighthouse-restored/")
    tags = {(t.term, t.scheme, t.label) for t in entry.tags}
    # written "harbour" in this file, "Harbour" in more entries: one tag, labelled as most entries spell it
    assert ("harbour", f"{BASE}/tags/", "Harbour") in tags
    assert ("heritage", f"{BASE}/tags/", "Heritage") in tags
    assert ("features", None, "Features") in tags  # the section stays a category too
    rss_entry = next(e for e in feedparser.parse(client.get("/feed.xml").data).entries if e.link == f"{BASE}/posts/lighthouse-restored/")
    assert {t.term for t in rss_entry.tags} == {"Features", "Harbour", "Heritage"}  # RSS <category> carries the label
    item = next(i for i in json.loads(client.get("/feed.json").data)["items"] if i["url"] == f"{BASE}/posts/lighthouse-restored/")
    assert item["tags"] == ["Features", "Harbour", "Heritage"]


@pytest.mark.parametrize(
    ("spellings", "label"),
    [
        ((["Climate Change"], ["climate-change"], ["Climate Change"]), "Climate Change"),  # the most used spelling
        ((["café culture"], ["Café Culture"]), "café culture"),  # equally used: the newest entry's
    ],
)
def test_spellings_that_slug_the_same_are_one_tag(spellings, label):
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    entries = tuple(  # newest first, as a content's entries are
        Entry(f"urn:example:{n}", f"e{n}", "E", moment, moment, "news", "", "", tags=tuple(tags)) for n, tags in enumerate(spellings)
    )
    assert tag_labels(entries) == {tag_slug(label): label}


@pytest.mark.parametrize(
    ("label", "slug"),
    [
        ("Climate Change", "climate-change"),
        ("  CLIMATE   change! ", "climate-change"),
        ("Zürich", "zürich"),
        ("東京 2025", "東京-2025"),
        ("C++", "c"),
    ],
)
def test_tag_slugs_keep_every_language_and_drop_punctuation(label, slug):
    assert tag_slug(label) == slug


def test_every_tag_has_pages_and_feeds_with_autodiscovery(client):
    index = page(client, "/tags/")
    listed = dict(zip(index.xpath("//ul[@class='tags']/li/a/text()"), index.xpath("//ul[@class='tags']/li/a/@href"), strict=True))
    assert set(listed) == {"Boats", "Café Culture", "Harbour", "Heritage", "Local Politics"}
    assert listed["Café Culture"] == f"{BASE}/tags/caf%C3%A9-culture/"
    for label, url in listed.items():
        tag_page = page(client, url.removeprefix(BASE))
        assert label in tag_page.xpath("string(//h1)")
        feeds = tag_page.xpath("//head/link[@rel='alternate']/@href")
        assert feeds[-3:] == [url + name for name in ("feed.xml", "atom.xml", "feed.json")]
        for feed_url in feeds[-3:]:
            response = client.get(feed_url.removeprefix(BASE))
            assert response.status_code == 200
        parsed = feedparser.parse(client.get(url.removeprefix(BASE) + "atom.xml").data)
        assert parsed.feed.title == f"Harbour Town Chronicle: {label}"
        assert all(any(t.term == tag_slug(label) for t in entry.tags) for entry in parsed.entries)
        linked = {a.get("href") for a in tag_page.xpath("//ul[@class='entries']//a")}
        assert {entry.link for entry in parsed.entries} <= linked


def test_a_tags_feed_has_rfc5005_archives_holding_every_entry(client):
    feed = feedparser.parse(client.get("/tags/harbour/feed.xml").data)
    assert len(feed.entries) == 3  # item_limit of the example site
    seen = {e.id for e in feed.entries}
    links = {link.rel: link.href for link in feed.feed.links}
    archive = links.get("prev-archive")
    while archive:
        document = feedparser.parse(client.get(archive.removeprefix(BASE)).data)
        seen |= {e.id for e in document.entries}
        archive = {link.rel: link.href for link in document.feed.links}.get("prev-archive")
    tagged = [e for e in load_content(NEWSROOM).entries if "harbour" in map(tag_slug, e.tags) and e.published.year < 2099]
    assert seen == {e.id for e in tagged}


def test_tag_pages_are_paginated_with_stable_urls(tmp_path):
    folder = tmp_path / "many"
    shutil.copytree(NEWSROOM, folder)
    for number in range(120):
        write_entry(
            folder,
            f"n{number:03}.md",
            f'id: "urn:example:n{number}"\ntitle: Note {number}\ndate: 2024-01-01T00:{number // 60:02}:{number % 60:02}Z\nsection: news\ntags: [Notes]',
        )
    client = make_app(folder, tmp_path / "state").test_client()
    titles, path = [], "/tags/notes/"
    while path:
        html = page(client, path)
        titles += html.xpath("//ul[@class='entries']/li/a/text()")
        older = html.xpath("//a[@rel='next']/@href")
        path = older[0].removeprefix(BASE) if older else None
    assert titles == [f"Note {n}" for n in range(119, -1, -1)]  # each once, newest first
    assert page(client, "/tags/notes/page/3/").xpath("//a[@rel='prev']/@href") == [f"{BASE}/tags/notes/page/2/"]
    assert client.get("/tags/notes/page/4/").status_code == 404


def test_a_non_ascii_tag_is_served_at_its_percent_encoded_url(client):
    response = client.get("/tags/caf%C3%A9-culture/")
    assert response.status_code == 200
    html = lxml.html.fromstring(response.data)
    assert html.xpath("//head/link[@type='application/rss+xml']/@href")[-1] == f"{BASE}/tags/caf%C3%A9-culture/feed.xml"
    assert feedparser.parse(client.get("/tags/caf%C3%A9-culture/feed.xml").data).feed.title.endswith("Café Culture")


# --- drafts and scheduled posts ----------------------------------------------------------------------


def test_drafts_and_scheduled_posts_are_published_nowhere(client):
    publication = client.application.extensions["feedsvc"].current
    assert {e.slug for e in publication.content.drafts} == {"fireworks-plan"}
    assert [e.slug for e in publication.content.scheduled] == ["centenary"]
    for path, data in every_document(client, publication).items():
        for secret in (b"fireworks-plan", b"Fireworks over", b"centenary", b"second centenary"):
            assert secret not in data, (path, secret)
    assert client.get("/posts/fireworks-plan/").status_code == 404
    assert client.get("/posts/centenary/").status_code == 404
    assert json.loads(client.get("/healthz").data)["entries"] == 7


def test_check_validates_drafts_and_says_when_scheduled_posts_go_live(newsroom):
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "check", "--content", str(newsroom)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "7 entries" in result.stdout
    assert "scheduled: posts/centenary.md goes live 2099-06-01T09:00:00+01:00" in result.stdout
    assert "draft: posts/fireworks-plan.md" in result.stdout
    (newsroom / "posts" / "fireworks-plan.md").write_text(
        (newsroom / "posts" / "fireworks-plan.md").read_text().replace("section: news", "section: gossip")
    )
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "check", "--content", str(newsroom)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 1 and "posts/fireworks-plan.md: section: 'gossip' is not a section" in result.stderr


def _last_modified(response) -> float:
    return parsedate_to_datetime(response.headers["Last-Modified"]).timestamp()


def test_a_scheduled_post_goes_live_at_its_time_with_advancing_validators(newsroom, tmp_path):
    clock = Clock()
    app = make_app(newsroom, tmp_path / "state", clock)
    publisher, client = app.extensions["feedsvc"], app.test_client()
    before = client.get("/feed.xml")
    clock.now = CENTENARY - 1
    assert not publisher.refresh()  # not yet: nothing to do, nothing changes
    assert client.get("/feed.xml").data == before.data
    clock.now = CENTENARY
    assert publisher.refresh()
    after = client.get("/feed.xml")
    assert after.headers["ETag"] != before.headers["ETag"]
    assert _last_modified(after) == CENTENARY  # when these bytes first existed
    assert feedparser.parse(after.data).entries[0].link == f"{BASE}/posts/centenary/"
    assert client.get("/posts/centenary/").status_code == 200
    assert client.get("/feed.xml", headers={"If-None-Match": before.headers["ETag"]}).status_code == 200
    tag_feed = client.get("/tags/heritage/feed.xml")
    assert "centenary" in tag_feed.data.decode()
    assert _last_modified(tag_feed) == CENTENARY  # a tag's feed has truthful validators like the site's
    # a restart after its time publishes it from the start, with the same bytes
    clock.now = CENTENARY + 3600
    restarted = make_app(newsroom, tmp_path / "state", clock).test_client()
    assert restarted.get("/feed.xml").data == after.data
    assert _last_modified(restarted.get("/feed.xml")) == CENTENARY


def test_a_scheduled_post_goes_live_within_a_second_without_a_file_event_and_the_hub_is_pinged(newsroom, tmp_path):
    hub = RecordingHub()
    try:
        due = time.time() + 2
        moment = datetime.fromtimestamp(due, UTC).isoformat(timespec="milliseconds")
        write_entry(newsroom, "soon.md", f'id: "urn:example:soon"\ntitle: Soon\ndate: "{moment}"\nsection: news\ntags: [Harbour]')
        app = create_app({"CONTENT_DIR": str(newsroom), "STATE_DIR": str(tmp_path / "state"), "RELOAD_INTERVAL": 0.3, "HUB_URL": hub.url})
        notifier = app.extensions["feedsvc.websub"]
        notifier.first_delay = 0.05
        assert notifier.wait(30)
        hub.clear()
        client = app.test_client()
        assert b"urn:example:soon" not in client.get("/feed.xml").data
        while b"urn:example:soon" not in client.get("/feed.xml").data and time.time() < due + 10:
            time.sleep(0.05)
        # "within about a second": the watcher looks every 0.3 s; the margin is for a busy CI machine
        assert time.time() - due < 1.5, "published more than a second late"
        # the watcher thread queues the pings just after the new version is served: wait for them to arrive
        deadline = time.monotonic() + 30
        while f"{BASE}/feed.xml" not in hub.topics() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert notifier.wait(30)
        assert f"{BASE}/feed.xml" in hub.topics() and f"{BASE}/tags/harbour/feed.xml" in hub.topics()
        assert f"{BASE}/features/feed.xml" not in hub.topics()  # unchanged feeds are not pinged
    finally:
        app.extensions["feedsvc"].stop()
        hub.close()


def test_a_scheduled_post_goes_live_even_while_an_edit_is_broken(newsroom, tmp_path):
    clock = Clock()
    app = make_app(newsroom, tmp_path / "state", clock)
    publisher = app.extensions["feedsvc"]
    (newsroom / "posts" / "tide-tables.md").write_text("---\ntitle: [unclosed\n---\n")
    assert not publisher.refresh()
    assert publisher.error is not None
    clock.now = CENTENARY
    assert publisher.refresh()
    assert b"centenary" in app.test_client().get("/feed.xml").data
    assert publisher.error is not None  # the broken file is still reported


# --- site level --------------------------------------------------------------------------------------


def test_summary_only_feeds_carry_no_body(newsroom, tmp_path):
    site = newsroom / "site.yaml"
    site.write_text(site.read_text().replace("feed_content: full", "feed_content: summary"))
    client = make_app(newsroom, tmp_path / "state").test_client()
    rss = etree.fromstring(client.get("/feed.xml").data)
    assert not rss.findall(".//content:encoded", NS)
    assert all(item.findtext("description") for item in rss.iter("item"))
    atom = etree.fromstring(client.get("/atom.xml").data)
    assert not atom.findall(".//atom:content", NS) and atom.findall(".//atom:summary", NS)
    items = json.loads(client.get("/feed.json").data)["items"]
    assert all("content_html" not in item and item["content_text"] for item in items)
    assert page(client, HARBOUR).xpath("//div[@class='body']//h2")  # the page keeps the whole story


def test_feed_content_must_be_full_or_summary(newsroom):
    site = newsroom / "site.yaml"
    site.write_text(site.read_text().replace("feed_content: full", "feed_content: teaser"))
    with pytest.raises(ContentError) as caught:
        load_content(newsroom)
    assert [(p.file, p.field) for p in caught.value.problems] == [("site.yaml", "feed_content")]


def test_the_sitemap_lists_every_public_page_with_its_last_change(client):
    publication = client.application.extensions["feedsvc"].current
    response = client.get("/sitemap.xml")
    assert response.headers["Content-Type"] == "application/xml; charset=utf-8"
    urls = {u.findtext("sm:loc", namespaces=NS): u.findtext("sm:lastmod", namespaces=NS) for u in etree.fromstring(response.data)}
    for entry in publication.content.entries:
        assert urls[BASE + entry.path] == entry.updated.isoformat()
    assert {f"{BASE}/", f"{BASE}/news/archive/", f"{BASE}/features/archive/", f"{BASE}/tags/", f"{BASE}/tags/caf%C3%A9-culture/"} <= set(
        urls
    )
    assert len(urls) == 7 + 2 + 2 + 1 + 5  # entries, landing + archive, two sections, tags index, five tags
    for url in urls:
        assert client.get(url.removeprefix(BASE)).status_code == 200
    robots = client.get("/robots.txt")
    assert robots.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert f"Sitemap: {BASE}/sitemap.xml" in robots.data.decode().splitlines()


def test_a_large_sitemap_becomes_an_index_of_sitemaps(newsroom, tmp_path, monkeypatch):
    import feedsvc.publication

    monkeypatch.setattr(feedsvc.publication, "SITEMAP_LIMIT", 5)
    client = make_app(newsroom, tmp_path / "state").test_client()
    index = etree.fromstring(client.get("/sitemap.xml").data)
    assert index.tag == f"{{{NS['sm']}}}sitemapindex"
    locations = [s.findtext("sm:loc", namespaces=NS) for s in index]
    assert locations == [f"{BASE}/sitemaps/{n}.xml" for n in range(1, 5)]  # 17 pages, 5 a file
    listed = [u.findtext("sm:loc", namespaces=NS) for loc in locations for u in etree.fromstring(client.get(loc.removeprefix(BASE)).data)]
    assert len(listed) == len(set(listed)) == 17


def test_the_opml_file_lists_every_subscription_feed_and_each_answers(client):
    response = client.get("/feeds.opml")
    assert response.headers["Content-Type"] == "text/x-opml; charset=utf-8"
    opml = etree.fromstring(response.data)
    assert opml.get("version") == "2.0"
    feeds = opml.xpath("//outline[@type='rss']")
    urls = [feed.get("xmlUrl") for feed in feeds]
    prefixes = [
        "",
        "/news",
        "/features",
        *(f"/tags/{quote(s)}" for s in ("boats", "café-culture", "harbour", "heritage", "local-politics")),
    ]
    assert sorted(urls) == sorted(f"{BASE}{prefix}/feed.xml" for prefix in prefixes)
    for feed in feeds:
        parsed = feedparser.parse(client.get(feed.get("xmlUrl").removeprefix(BASE)).data)
        assert not parsed.bozo and parsed.feed.title == feed.get("title")
    assert [group.get("text") for group in opml.xpath("/opml/body/outline")] == ["Harbour Town Chronicle", "Sections", "Tags"]


def test_a_table_of_contents_needs_three_headings_and_never_steals_an_id(newsroom, tmp_path):
    write_entry(
        newsroom, "two.md", 'id: "urn:example:two"\ntitle: Two\ndate: 2025-01-01 10:00\nsection: news', "## One\n\nx\n\n## Two\n\ny\n"
    )
    write_entry(
        newsroom,
        "main.md",
        'id: "urn:example:main"\ntitle: Main\ndate: 2025-01-02 10:00\nsection: news',
        "## Main\n\na\n\n## Main\n\nb\n\n### Contents\n\nc\n",
    )
    client = make_app(newsroom, tmp_path / "state").test_client()
    assert not page(client, "/posts/two/").xpath("//nav[@class='contents']")
    html = page(client, "/posts/main/")
    ids = html.xpath("//@id")
    assert len(ids) == len(set(ids))  # "Main" twice and "Contents" take none of the page's own ids
    anchors = html.xpath("//nav[@class='contents']//a/@href")
    assert anchors == ["#" + i for i in html.xpath("//div[@class='body']/*[self::h2 or self::h3]/@id")]
    assert len(anchors) == 3
    assert html.xpath("//nav[@class='contents']//li/@class") == ["level-2", "level-2", "level-3"]


def test_the_export_holds_images_tag_pages_and_indexes(newsroom, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "build", str(tmp_path / "out"), "--content", str(newsroom)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "FEEDSVC_STATE_DIR": str(tmp_path / "state")},
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    for name in ("sitemap.xml", "robots.txt", "feeds.opml", "tags/index.html", "tags/café-culture/feed.xml", "tags/harbour/atom.xml"):
        assert (out / name).is_file(), name
    images = sorted(p.name for p in (out / "media").iterdir())
    assert [name.split(".")[0] for name in images] == ["harbour", "lighthouse", "market"]
    assert not any(p.suffix == ".gz" for p in (out / "media").iterdir())  # pictures are compressed already
    assert not (out / "posts" / "centenary").exists() and not (out / "posts" / "fireworks-plan").exists()


def _documents(app) -> dict[str, bytes]:
    publication = app.extensions["feedsvc"].current
    return {path: publication.document(path).body for path in sorted(publication.paths())}


@pytest.mark.parametrize("edit", ["a tag's label changes", "a picture changes"])
def test_an_edit_that_changes_other_entries_output_reaches_every_document_like_a_fresh_build(newsroom, tmp_path, edit):
    app = make_app(newsroom, tmp_path / "state")
    _documents(app)  # render everything, so a stale reuse would show
    if edit == "a tag's label changes":
        # "café culture" becomes the most used spelling: market-day's file is untouched, its output is not
        write_entry(
            newsroom, "coffee.md", 'id: "urn:example:coffee"\ntitle: Coffee\ndate: 2025-01-05 10:00\nsection: news\ntags: [café culture]'
        )
    else:  # the lighthouse picture: shown by two entries, in their pages, feeds and archives
        Image.new("RGB", (640, 480), "#abcdef").save(newsroom / "media" / "lighthouse.png")
    assert app.extensions["feedsvc"].refresh()
    reloaded = _documents(app)
    fresh = _documents(make_app(newsroom, tmp_path / "fresh-state"))
    assert reloaded.keys() == fresh.keys()
    assert [path for path in fresh if reloaded[path] != fresh[path]] == []
    if edit == "a tag's label changes":
        assert b">caf\xc3\xa9 culture</a>" in reloaded["/posts/market-day/"]


def test_headings_live_in_the_store_with_the_body_not_in_every_worker(newsroom, tmp_path):
    from feedsvc.state import Store

    parsed = next(e for e in load_content(newsroom).entries if e.slug == "harbour-reopens")
    assert [h.text for h in parsed.contents] == ["What was repaired", "What it cost", "What comes next"]
    load_content(newsroom, cache=Store(tmp_path / "state").parses)  # parsed, then stored
    stored = next(e for e in load_content(newsroom, cache=Store(tmp_path / "state").parses).entries if e.slug == "harbour-reopens")
    assert stored.headings == () and stored.contents == parsed.contents


def test_feeds_rendered_together_share_entries_and_give_the_bytes_each_gives_alone(monkeypatch):
    """A build renders many feeds in one sharing block: pictured or not, with bylines and tags, every feed
    comes out as it alone would write it, from fewer builds of the entries' elements."""
    from feedgen.entry import FeedEntry

    from feedsvc.feeds import render_xml_feeds, sharing_entries
    from feedsvc.models import release
    from feedsvc.publication import build_publication

    content = release(load_content(NEWSROOM), datetime.fromtimestamp(NOW, UTC))
    specs = list({id(spec): spec for spec in build_publication(content).feed_specs.values()}.values())
    alone = [render_xml_feeds(spec) for spec in specs]
    built: list[str] = []
    original = FeedEntry.rss_entry

    def counting(self, *args, **kwargs):
        built.append(self.id())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FeedEntry, "rss_entry", counting)
    with sharing_entries():
        together = [render_xml_feeds(spec) for spec in specs]
    assert together == alone
    assert len(built) < sum(len(spec.entries) for spec in specs)  # shared: fewer builds than feed items
