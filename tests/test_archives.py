"""Section feeds and RFC 5005 archived feeds, on the bundled content and on 10,000 generated entries."""

from __future__ import annotations

import json

import feedparser
import pytest
from lxml import etree

from bench.generate_content import generate
from feedsvc import create_app
from feedsvc.content import load_content
from feedsvc.publication import build_publication

FH = "{http://purl.org/syndication/history/1.0}archive"
BASE = "http://127.0.0.1:8000"


def test_each_section_has_feeds_of_its_own_entries_with_their_own_validators(client):
    site_feed = client.get("/feed.xml")
    for section, count, newest in (("article", 1, "19:00"), ("featured", 5, "18:00"), ("latest", 5, "17:10")):
        for filename in ("feed.xml", "atom.xml"):
            response = client.get(f"/{section}/{filename}")
            assert response.status_code == 200
            parsed = feedparser.parse(response.data)
            assert not parsed.bozo and len(parsed.entries) == count
            assert all("/posts/" in e.link for e in parsed.entries)
            assert response.headers["Last-Modified"] == f"Mon, 07 Jul 2025 {newest}:00 GMT"
            assert response.headers["ETag"] != site_feed.headers["ETag"]
            assert client.get(f"/{section}/{filename}", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
        document = json.loads(client.get(f"/{section}/feed.json").data)
        assert len(document["items"]) == count and document["feed_url"] == f"{BASE}/{section}/feed.json"
    featured = feedparser.parse(client.get("/featured/atom.xml").data)
    assert featured.feed.title == "Best Website: Featured Posts"
    assert featured.feed.id == f"{BASE}/featured/"


def test_small_content_has_no_archives(client):
    assert "prev-archive" not in client.get("/feed.xml").get_data(as_text=True)
    assert "next_url" not in json.loads(client.get("/feed.json").data)
    assert client.get("/archive/1/feed.xml").status_code == 404


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A publication of 10,000 generated entries shaped like the seed's posts."""
    directory = generate(tmp_path_factory.mktemp("big") / "content", 10_000)
    app = create_app({"CONTENT_DIR": str(directory), "RELOAD_INTERVAL": 0})
    return app.test_client(), app.extensions["feedsvc"].current


def _follow(client, path: str, rel: str) -> list[str]:
    """Walk an RFC 5005 chain from ``path`` and return every entry id seen, in order."""
    ids, seen = [], set()
    while path:
        assert path not in seen
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200
        parsed = feedparser.parse(response.data)
        assert not parsed.bozo
        ids += [e.id for e in parsed.entries]
        link = next((link.href for link in parsed.feed.get("links", []) if link.rel == rel), None)
        path = link.removeprefix(BASE) if link else None
    return ids


@pytest.mark.parametrize("filename", ["feed.xml", "atom.xml"])
def test_prev_archive_chain_reaches_every_entry_exactly_once(big, filename):
    client, publication = big
    ids = _follow(client, f"/{filename}", "prev-archive")
    assert len(set(ids)) == 10_000
    assert set(ids) == {entry.id for entry in publication.content.entries}
    assert len(ids) == 10_000 + 20  # the subscription document overlaps the newest archive page only


def test_json_feed_pages_through_next_url(big):
    client, _ = big
    ids, path = [], "/feed.json"
    while path:
        document = json.loads(client.get(path).data)
        ids += [item["id"] for item in document["items"]]
        path = document.get("next_url", "").removeprefix(BASE)
    assert len(set(ids)) == 10_000


def test_subscription_feed_is_an_ordinary_feed_of_the_newest_entries(big):
    client, publication = big
    parsed = feedparser.parse(client.get("/feed.xml").data)
    assert [e.id for e in parsed.entries] == [e.id for e in publication.content.entries[:20]]
    channel = etree.fromstring(client.get("/feed.xml").data).find("channel")
    assert channel.find(FH) is None


def test_archive_documents_are_marked_linked_and_cached_long(big):
    client, _ = big
    response = client.get("/archive/7/atom.xml")
    feed = etree.fromstring(response.data)
    assert feed.find(FH) is not None
    links = {link.get("rel"): link.get("href") for link in feed.findall("{http://www.w3.org/2005/Atom}link")}
    assert links["current"] == f"{BASE}/atom.xml"
    assert links["prev-archive"] == f"{BASE}/archive/6/atom.xml"
    assert links["next-archive"] == f"{BASE}/archive/8/atom.xml"
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    oldest = etree.fromstring(client.get("/archive/1/feed.xml").data).find("channel")
    assert not [link for link in oldest.findall("{http://www.w3.org/2005/Atom}link") if link.get("rel") == "prev-archive"]
    # sections page through their own archives
    assert len(set(_follow(client, "/featured/feed.xml", "prev-archive"))) == 5_000


def test_full_archive_pages_never_change_when_new_entries_arrive(tmp_path):
    from tests.conftest import write_entry

    directory = generate(tmp_path / "content", 45)
    before = build_publication(load_content(directory))
    write_entry(directory, "newest.md", 'id: "urn:x:newest"\ntitle: Newest\ndate: 2030-01-01\nsection: latest')
    after = build_publication(load_content(directory))
    for path in ("/archive/1/feed.xml", "/archive/2/atom.xml", "/archive/2/feed.json"):
        assert after.document(path).identity.etag == before.document(path).identity.etag
    assert after.documents["/feed.xml"].identity.etag != before.documents["/feed.xml"].identity.etag


def test_archive_pages_are_rendered_on_first_request_then_served_from_memory(tmp_path):
    directory = generate(tmp_path / "content", 45)
    app = create_app({"CONTENT_DIR": str(directory), "RELOAD_INTERVAL": 0})
    publication = app.extensions["feedsvc"].current
    assert "/archive/1/feed.xml" in publication.paths()
    assert "/archive/1/feed.xml" not in publication.documents
    first = app.test_client().get("/archive/1/feed.xml")
    assert first.status_code == 200
    rendered = publication.documents["/archive/1/feed.xml"]  # now in the fast path's dict, with its siblings
    assert "/archive/1/atom.xml" in publication.documents
    assert app.test_client().get("/archive/1/feed.xml").data == first.data
    assert publication.documents["/archive/1/feed.xml"] is rendered


def test_a_reload_reuses_everything_an_edit_did_not_touch(tmp_path):
    directory = generate(tmp_path / "content", 45)
    app = create_app({"CONTENT_DIR": str(directory), "RELOAD_INTERVAL": 0})
    publisher = app.extensions["feedsvc"]
    old = publisher.current
    old.document("/archive/1/feed.xml")
    edited = directory / "posts" / "post-00003.md"
    edited.write_text(edited.read_text().replace("story number 3", "story number three"))
    assert publisher.refresh()
    new = publisher.current
    assert new.documents["/posts/post-00007/"] is old.documents["/posts/post-00007/"]
    assert new.documents["/posts/post-00003/"] is not old.documents["/posts/post-00003/"]
    assert b"story number three" in new.documents["/posts/post-00003/"].identity.body
    assert new.documents["/archive/1/feed.xml"] is old.documents["/archive/1/feed.xml"]  # oldest 20: untouched
    assert new.document("/feed.xml").identity.etag != old.document("/feed.xml").identity.etag  # post 3 is among the newest 20
