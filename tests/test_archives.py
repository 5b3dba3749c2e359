"""Section feeds and RFC 5005 archived feeds, on the bundled content and on 10,000 generated entries."""

from __future__ import annotations

import gzip
import json
from datetime import UTC

import feedparser
import pytest
from lxml import etree

from bench.generate_content import generate
from feedsvc import create_app
from feedsvc.publication import build_publication
from feedsvc.source.loader import load_content
from tests.conftest import settled, write_entry

FH = "{http://purl.org/syndication/history/1.0}archive"
BASE = "http://127.0.0.1:8000"


def test_each_section_has_feeds_of_its_own_entries_with_their_own_validators(client):
    site_feed = client.get("/feed.xml")
    for section, count in (("article", 1), ("featured", 5), ("latest", 5)):
        for filename in ("feed.xml", "atom.xml"):
            response = client.get(f"/{section}/{filename}")
            assert response.status_code == 200
            parsed = feedparser.parse(response.data)
            assert not parsed.bozo and len(parsed.entries) == count
            assert all("/posts/" in e.link for e in parsed.entries)
            assert response.headers["ETag"] != site_feed.headers["ETag"]
            assert client.get(f"/{section}/{filename}", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
        document = json.loads(client.get(f"/{section}/feed.json").data)
        assert len(document["items"]) == count and document["feed_url"] == f"{BASE}/{section}/feed.json"
    featured = feedparser.parse(client.get("/featured/atom.xml").data)
    assert featured.feed.title == "Best Website: Featured Posts"


def test_feed_ids_are_permanent_whatever_the_base_url(content_dir, state_dir):
    ids = {}
    for base_url in ("http://127.0.0.1:8000", "https://news.example.org:8443"):
        client = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0, "BASE_URL": base_url})
        client = client.test_client()
        ids[base_url] = [feedparser.parse(client.get(f"{prefix}/atom.xml").data).feed.id for prefix in ("", "/featured", "/latest")]
    first, second = ids.values()
    assert first == second  # RFC 4287 §4.2.6: the id does not move with the site
    site_id = load_content(content_dir).site.id
    assert first[0] == site_id and first[0].startswith("urn:uuid:")
    assert len(set(first)) == 3 and all(feed_id.startswith("urn:uuid:") for feed_id in first)


def test_small_content_on_one_day_has_no_archives(client):
    # the subscription documents already hold every entry, all of one day: a lone archive would link nowhere
    assert "prev-archive" not in client.get("/feed.xml").get_data(as_text=True)
    assert "next_url" not in json.loads(client.get("/feed.json").data)
    assert client.get("/archive/2025-07-07/feed.xml").status_code == 404


def test_archive_urls_stay_when_the_feed_drops_back_to_item_limit_entries(content_dir, state_dir):
    """An archive URL a reader was given stays while the feed spans two days: deleting entries never turns it into a 404."""
    for day in range(8, 18):  # 21 entries over 11 days: more than the 20 a feed shows
        write_entry(
            content_dir,
            f"later-{day}.md",
            f"id: urn:example:later-{day}\ntitle: Later {day}\ndate: 2025-07-{day:02d}T08:00:00Z\nsection: latest",
        )
    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0})
    client = app.test_client()
    assert client.get("/archive/2025-07-07/atom.xml").status_code == 200
    for day in range(9, 18):  # back to 12 entries on two days: within item_limit
        (content_dir / "posts" / f"later-{day}.md").unlink()
    assert app.extensions["feedsvc"].refresh()
    archive = feedparser.parse(client.get("/archive/2025-07-07/atom.xml").data)
    assert {entry.published[:10] for entry in archive.entries} == {"2025-07-07"} and len(archive.entries) == 11
    assert client.get("/archive/2025-07-08/atom.xml").status_code == 200


def test_an_empty_feed_is_dated_by_the_sites_newest_change_not_the_epoch(content_dir, state_dir):
    site = content_dir / "site.yaml"
    site.write_text(site.read_text().replace("  latest: Latest Posts", "  latest: Latest Posts\n  sport: Sport"))
    client = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0}).test_client()
    feed = feedparser.parse(client.get("/sport/atom.xml").data)
    assert feed.entries == [] and feed.feed.updated == "2025-07-07T19:00:00+00:00"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A publication of 10,000 generated entries shaped like the seed's posts."""
    directory = generate(tmp_path_factory.mktemp("big") / "content", 10_000)
    app = create_app({"CONTENT_DIR": str(directory), "STATE_DIR": str(directory.parent / "state"), "RELOAD_INTERVAL": 0})
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


def test_archive_documents_are_marked_linked_and_cached_like_the_feed(big):
    client, publication = big
    archives = sorted(path for path in publication.paths() if path.startswith("/archive/") and path.endswith("/atom.xml"))
    assert archives[0] == "/archive/2025-04-29/atom.xml" and archives[-1] == "/archive/2025-07-07/atom.xml"
    response = client.get("/archive/2025-06-10/atom.xml")
    feed = etree.fromstring(response.data)
    assert feed.find(FH) is not None
    links = {link.get("rel"): link.get("href") for link in feed.findall("{http://www.w3.org/2005/Atom}link")}
    assert links["current"] == f"{BASE}/atom.xml"
    assert links["prev-archive"] == f"{BASE}/archive/2025-06-09/atom.xml"
    assert links["next-archive"] == f"{BASE}/archive/2025-06-11/atom.xml"
    assert len(feed.findall("{http://www.w3.org/2005/Atom}entry")) == 144  # a day of posts ten minutes apart
    subscription = client.get("/atom.xml").get_data(as_text=True)
    assert f'href="{BASE}/archive/2025-07-07/atom.xml" rel="prev-archive"' in subscription
    assert json.loads(client.get("/feed.json").data)["next_url"] == f"{BASE}/archive/2025-07-07/feed.json"
    # any edit of an entry changes its archive document: cached no longer than the subscription document
    assert response.headers["Cache-Control"] == "public, max-age=300"
    oldest = etree.fromstring(client.get("/archive/2025-04-29/feed.xml").data).find("channel")
    assert not [link for link in oldest.findall("{http://www.w3.org/2005/Atom}link") if link.get("rel") == "prev-archive"]
    # sections page through their own archives
    assert len(set(_follow(client, "/featured/feed.xml", "prev-archive"))) == 5_000


def test_archive_documents_are_compressed_fast_and_subscription_feeds_small(big):
    """Archive feeds and entry pages, thousands each read now and then: gzip level 1 (nginx's default); the feeds polled all day
    and the landing page: level 6."""
    client, _ = big
    for path, level in (
        ("/archive/2025-06-10/feed.xml", 1),
        ("/archive/2025-06-10/feed.json", 1),
        ("/posts/post-00001/", 1),  # one of the newest: rendered at start
        ("/posts/post-09000/", 1),  # rendered when first asked for
        ("/feed.xml", 6),
        ("/atom.xml", 6),
        ("/", 6),
    ):
        identity = client.get(path).data
        zipped = client.get(path, headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped.data) == identity
        assert zipped.data == gzip.compress(identity, compresslevel=level, mtime=0), path
        assert zipped.data != gzip.compress(identity, compresslevel=7 - level, mtime=0), path  # the levels do differ here


def _archive_entries(publication) -> dict[str, list]:
    """Return each RSS archive document's entries: (id, content) in order."""
    archives = {}
    for path in publication.paths():
        if "/archive/" in path and path.endswith("feed.xml"):
            parsed = feedparser.parse(publication.document(path).body)
            archives[path] = [(e.id, e.get("content", [{}])[0].get("value"), e.title) for e in parsed.entries]
    return archives


@pytest.mark.parametrize(
    ("edit", "changed_days"),
    [
        ("add", {"2025-07-08"}),  # a new day: only its document (and the links of its neighbour) are new
        ("delete-oldest", {"2025-06-30"}),
        ("backdate", {"2025-07-07", "2025-06-01"}),  # the day it left and the day it joined
    ],
)
def test_an_edit_changes_only_the_archive_documents_that_hold_the_entry(tmp_path, edit, changed_days):
    from tests.conftest import write_entry

    directory = generate(tmp_path / "content", 1_000)  # 2025-06-30 to 2025-07-07
    before = build_publication(load_content(directory))
    if edit == "add":
        write_entry(directory, "newest.md", 'id: "urn:example:newest"\ntitle: Newest\ndate: 2025-07-08T09:00:00Z\nsection: latest')
    elif edit == "delete-oldest":
        (directory / "posts" / "post-00999.md").unlink()
    else:
        post = directory / "posts" / "post-00100.md"
        post.write_text(post.read_text().replace("Jul 07, 2025 01:20", "Jun 01, 2025 12:00"))
    after = build_publication(load_content(directory))
    old, new = _archive_entries(before), _archive_entries(after)
    changed = {path.split("/")[-2] for path in old.keys() | new.keys() if old.get(path) != new.get(path)}
    assert changed == changed_days  # a day that gains or loses a neighbour changes only its links
    assert old.keys() - new.keys() == set()  # archive URLs that existed keep working


@pytest.mark.parametrize("edit", ["retitle", "add", "delete-oldest", "backdate"])
def test_feed_specs_taken_from_the_version_before_are_those_a_fresh_build_makes(tmp_path, edit):
    """A reload reuses the archive specs whose entries are the same objects; every spec is what a build from nothing makes."""
    from feedsvc.source.loader import LoadMemo
    from tests.conftest import write_entry

    directory = settled(generate(tmp_path / "content", 1_000))
    memo = LoadMemo()
    before = build_publication(load_content(directory, parsed=memo))
    post = directory / "posts" / "post-00100.md"
    if edit == "retitle":
        post.write_text(post.read_text().replace("title: ", "title: Retitled ", 1))
    elif edit == "add":
        write_entry(directory, "newest.md", 'id: "urn:example:newest"\ntitle: Newest\ndate: 2025-07-08T09:00:00Z\nsection: latest')
    elif edit == "delete-oldest":
        (directory / "posts" / "post-00999.md").unlink()
    else:
        post.write_text(post.read_text().replace("Jul 07, 2025 01:20", "Jun 01, 2025 12:00"))
    reused = build_publication(load_content(directory, parsed=memo), previous=before)
    fresh = build_publication(load_content(directory))
    assert {path: spec.digest for path, spec in reused.feed_specs.items()} == {path: spec.digest for path, spec in fresh.feed_specs.items()}
    assert _archive_entries(reused) == _archive_entries(fresh)
    made_anew = {prefix for prefix, spec in reused.feeds.items() if spec.history.is_archive and before.feeds.get(prefix) is not spec}
    if edit == "retitle":  # the same entries but one: only the archives that hold it are new
        holding = {prefix for prefix, spec in reused.feeds.items() if any(e.source == "posts/post-00100.md" for e in spec.entries)}
        assert made_anew == {prefix for prefix in holding if "/archive/" in prefix} and len(made_anew) == 2  # the site's day, the section's
    else:
        assert 0 < len(made_anew) < len(reused.feeds) / 2


def test_archive_and_old_entry_pages_are_rendered_on_first_request_then_served_from_memory(tmp_path):
    directory = generate(tmp_path / "content", 450)
    app = create_app({"CONTENT_DIR": str(directory), "STATE_DIR": str(tmp_path / "state"), "RELOAD_INTERVAL": 0})
    publication = app.extensions["feedsvc"].current
    for path, sibling in (("/archive/2025-07-05/feed.xml", "/archive/2025-07-05/atom.xml"), ("/posts/post-00400/", None)):
        assert path in publication.paths()
        assert publication.cached(path) is None  # not rendered at start
        first = app.test_client().get(path)
        assert first.status_code == 200
        assert first.headers["Last-Modified"]  # stamped by the store like every document
        rendered = publication.cached(path)  # now kept, with its siblings
        assert sibling is None or publication.cached(sibling) is not None
        assert app.test_client().get(path).data == first.data
        assert publication.cached(path) is rendered
    assert publication.cached("/posts/post-00000/") is not None  # the newest pages are rendered with the version


def test_documents_rendered_on_request_are_kept_within_a_byte_budget():
    from feedsvc.publication import RenderedCache
    from feedsvc.representation import build_representation

    cache = RenderedCache(budget=10_000)
    for number in range(50):
        cache.update({f"/posts/{number}/": build_representation(bytes([65 + number % 26]) * 1000, "text/plain", cache_control="no-store")})
        cache.get("/posts/0/")  # used again and again: kept
    kept = dict(cache.items())
    assert cache.size <= 10_000
    assert "/posts/0/" in kept and "/posts/49/" in kept and "/posts/1/" not in kept


def test_a_reload_reuses_everything_an_edit_did_not_touch(tmp_path):
    directory = generate(tmp_path / "content", 450)
    app = create_app({"CONTENT_DIR": str(directory), "STATE_DIR": str(tmp_path / "state"), "RELOAD_INTERVAL": 0})
    publisher = app.extensions["feedsvc"]
    old = publisher.current
    old.document("/archive/2025-07-05/feed.xml")
    old.document("/posts/post-00400/")
    edited = directory / "posts" / "post-00003.md"
    edited.write_text(edited.read_text().replace("story number 3", "story number three"))
    assert publisher.refresh()
    new = publisher.current
    assert new.documents["/posts/post-00007/"] is old.documents["/posts/post-00007/"]
    assert new.cached("/posts/post-00400/") is old.cached("/posts/post-00400/")  # rendered on request, reused
    assert new.documents["/posts/post-00003/"] is not old.documents["/posts/post-00003/"]
    assert b"story number three" in new.documents["/posts/post-00003/"].identity.body
    assert new.cached("/archive/2025-07-05/feed.xml") is old.cached("/archive/2025-07-05/feed.xml")  # another day: untouched
    assert new.document("/feed.xml").identity.etag != old.document("/feed.xml").identity.etag  # post 3 is among the newest 20


def _links(html: bytes, base: str) -> list[str]:
    import lxml.html

    return [href[len(base) :] for href in lxml.html.fromstring(html).xpath("//main//a/@href") if href.startswith(base)]


def test_every_entry_is_reachable_in_html_through_stable_month_pages(tmp_path):
    directory = generate(tmp_path / "content", 450)
    app = create_app({"CONTENT_DIR": str(directory), "STATE_DIR": str(tmp_path / "state"), "RELOAD_INTERVAL": 0})
    client = app.test_client()
    content = app.extensions["feedsvc"].current.content
    base = content.site.base_url
    landing = client.get("/").data
    assert "/archive/" in _links(landing, base)  # one click from the landing page
    for prefix, expected in [("", content.entries)] + [(f"/{s.key}", content.in_section(s.key)) for s in content.site.sections]:
        index = client.get(f"{prefix}/archive/")
        assert index.status_code == 200
        months = [link for link in _links(index.data, base) if link.startswith(f"{prefix}/archive/") and link != f"{prefix}/archive/"]
        assert months == sorted(months, reverse=True) and len(set(months)) == len(months)  # newest first, each once
        found = []
        for month in months:
            page = client.get(month)
            assert page.status_code == 200
            found += [link for link in _links(page.data, base) if link.startswith("/posts/")]
        assert found == [entry.path for entry in expected]  # every entry exactly once, newest first
    # the oldest story: landing page -> archive -> its month -> the story
    oldest = content.entries[-1]
    month_path = f"/archive/{oldest.published.astimezone(UTC).strftime('%Y-%m')}/"
    assert month_path in _links(client.get("/archive/").data, base)
    assert oldest.path in _links(client.get(month_path).data, base)


def test_month_pages_link_to_the_months_around_them_and_are_exported(tmp_path):
    directory = generate(tmp_path / "content", 5_000)  # ten minutes apart: about five weeks
    app = create_app({"CONTENT_DIR": str(directory), "STATE_DIR": str(tmp_path / "state"), "RELOAD_INTERVAL": 0})
    publication = app.extensions["feedsvc"].current
    months = sorted(path for path in publication.paths() if path.startswith("/archive/") and path.endswith("/") and path != "/archive/")
    assert len(months) >= 2
    assert all(publication.cached(path) is None for path in months)  # rendered on request
    import lxml.html

    middle = lxml.html.fromstring(app.test_client().get(months[1]).data)
    assert middle.xpath("//a[@rel='prev']/@href")[0].endswith(months[0])
    if len(months) > 2:
        assert middle.xpath("//a[@rel='next']/@href")[0].endswith(months[2])


def test_two_nodes_with_different_paths_and_state_serve_identical_bytes_and_etags(tmp_path):
    import shutil

    first = generate(tmp_path / "node-a" / "site", 450)
    second = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(first, second)
    apps = [
        create_app({"CONTENT_DIR": str(folder), "STATE_DIR": str(tmp_path / f"state-{n}"), "RELOAD_INTERVAL": 0})
        for n, folder in enumerate((first, second))
    ]
    publications = [app.extensions["feedsvc"].current for app in apps]
    assert publications[0].paths() == publications[1].paths()
    for path in sorted(publications[0].paths()):
        a, b = (publication.document(path) for publication in publications)
        assert a.body == b.body and a.etag == b.etag, path
        assert (a.gzip_body is None) == (b.gzip_body is None) and a.gzip_body == b.gzip_body, path
