"""Bodies a start defers: checked by their front matter, rendered once serving, byte for byte what a full parse renders."""

from __future__ import annotations

import shutil
import sqlite3
import time

import pytest

import feedsvc.markdown
from feedsvc import create_app
from feedsvc.markdown import DeferredBody, has_no_pictures
from feedsvc.problems import ContentError
from feedsvc.publication import build_publication
from feedsvc.source.loader import load_content
from feedsvc.state import Store
from feedsvc.state.db import DATABASE_FILE
from feedsvc.state.parses import ParseStore
from tests.conftest import ROOT, write_entry


@pytest.fixture
def newsroom(tmp_path):
    """A copy of the newsroom example (bodies with and without pictures, headings, a written summary) plus a few more entries."""
    folder = tmp_path / "newsroom"
    shutil.copytree(ROOT / "examples" / "newsroom", folder)
    for number in range(6):
        write_entry(
            folder,
            f"more-{number}.md",
            f"id: urn:example:more-{number}\ntitle: More {number}\ndate: 2024-02-0{number + 1}T09:00:00Z\nsection: news",
            f"Lede with [a link](../other/) and `code`.\n\n## A heading\n\n- one\n- two\n\n[ref]: https://example.org/{number}\n",
        )
    return folder


def _documents(content) -> dict[str, bytes]:
    publication = build_publication(content)
    return {path: publication.document(path).body for path in sorted(publication.paths())}


def _deferred_keys(state_dir) -> set[str]:
    with sqlite3.connect(state_dir / DATABASE_FILE) as db:
        return {key for (key,) in db.execute("SELECT key FROM deferred_bodies")}


@pytest.mark.parametrize("folder", ["bundled", "newsroom"])
def test_a_deferring_load_serves_every_document_byte_for_byte_as_a_full_parse(folder, content_dir, newsroom, state_dir):
    directory = content_dir if folder == "bundled" else newsroom
    full = _documents(load_content(directory))
    store = Store(state_dir)
    deferring = load_content(directory, cache=store.parses, defer_bodies=True)
    deferred = store.parses.deferred_bodies()

    def deferrable(entries) -> int:
        bodies = [(directory / entry.source).read_text().split("---", 2)[2] for entry in entries]
        return sum(bool(body.strip()) and has_no_pictures(body) for body in bodies)

    assert deferred == deferrable((*deferring.entries, *deferring.drafts)) > 0  # the others were rendered: checked
    assert _documents(deferring) == full
    # each rendered when a document asked for it, and kept for every process; a draft's waits for the workers
    assert store.parses.deferred_bodies() == deferrable(deferring.drafts)
    # another process (a second worker) finds them rendered: a fresh store, nothing deferred, the same bytes
    assert _documents(load_content(directory, cache=Store(state_dir).parses)) == full


def test_a_missing_picture_in_a_body_still_fails_a_deferring_load(content_dir, state_dir):
    write_entry(
        content_dir,
        "pictured.md",
        "id: urn:example:pictured\ntitle: Pictured\ndate: 2024-01-01T09:00:00Z\nsection: latest",
        "Text.\n\n![A harbour](media/nowhere.png)\n",
    )
    with pytest.raises(ContentError) as raised:
        load_content(content_dir, cache=Store(state_dir).parses, defer_bodies=True)
    assert any(p.file == "posts/pictured.md" and p.field == "body" and "nowhere.png" in p.message for p in raised.value.problems)


def test_only_a_body_with_an_image_s_mark_can_show_a_picture():
    assert has_no_pictures("Text with [a link](x.png) and an exclamation! [not an image]")
    assert not has_no_pictures("![alt](media/a.png)")
    assert not has_no_pictures("By reference: ![alt][pic]\n\n[pic]: media/a.png")


def test_workers_render_deferred_bodies_newest_first_each_its_own(newsroom, state_dir):
    content = load_content(newsroom, cache=Store(state_dir).parses, defer_bodies=True)
    waiting = _deferred_keys(state_dir)  # each "parse key:entry digest"
    published = {
        key: entry.published for entry in (*content.entries, *content.drafts) for key in waiting if key.endswith(f":{entry.digest}")
    }
    assert len(published) == len(waiting) > 4
    first, second = Store(state_dir), Store(state_dir)  # two workers
    assert first.parses.render_deferred_bodies(limit=2) == (2, len(waiting) - 2)
    assert waiting - _deferred_keys(state_dir) == set(sorted(published, key=published.get, reverse=True)[:2])
    assert second.parses.render_deferred_bodies(limit=2) == (2, len(waiting) - 4)
    assert len(waiting - _deferred_keys(state_dir)) == 4  # the second took two others


def test_a_claim_a_stopped_worker_left_is_taken_again_once_it_lapsed(newsroom, state_dir):
    load_content(newsroom, cache=Store(state_dir).parses, defer_bodies=True)
    waiting = len(_deferred_keys(state_dir))
    with sqlite3.connect(state_dir / DATABASE_FILE) as db:  # every body claimed by a worker that stopped
        db.execute("UPDATE deferred_bodies SET claimed = ?", (time.time(),))
    store = Store(state_dir)
    assert store.parses.render_deferred_bodies(limit=100, lease=60) == (0, waiting)
    with sqlite3.connect(state_dir / DATABASE_FILE) as db:
        db.execute("UPDATE deferred_bodies SET claimed = ?", (time.time() - 61,))
    assert store.parses.render_deferred_bodies(limit=100, lease=60) == (waiting, 0)


def test_a_serving_publisher_renders_every_deferred_body_and_health_counts_them(newsroom, state_dir, tmp_path):
    parsing = create_app({"CONTENT_DIR": str(newsroom), "STATE_DIR": str(tmp_path / "other-state"), "RELOAD_INTERVAL": 0})
    full = {path: parsing.extensions["feedsvc"].current.document(path).body for path in parsing.extensions["feedsvc"].current.paths()}
    load_content(newsroom, cache=Store(state_dir).parses, defer_bodies=True)  # as serve's check leaves the store
    assert Store(state_dir).parses.deferred_bodies() > 0
    app = create_app({"CONTENT_DIR": str(newsroom), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0.05})
    publisher = app.extensions["feedsvc"]
    try:
        deadline = time.monotonic() + 30
        while publisher.bodies_to_render and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.test_client().get("/healthz").get_json()["bodies_to_render"] == 0
        assert Store(state_dir).parses.deferred_bodies() == 0
        publication = publisher.current
        assert {path: publication.document(path).body for path in publication.paths()} == full
    finally:
        publisher.stop()


def test_a_body_the_renderer_fails_on_is_shown_as_its_text_never_as_an_error(monkeypatch, caplog):
    def choke(source, page_url, find_image=None):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(feedsvc.markdown, "render_markdown", choke)
    body = DeferredBody.of("Odd <script>alert(1)</script> & text", "https://example.org/posts/odd/", None)
    assert body.html() == "<pre>Odd &lt;script&gt;alert(1)&lt;/script&gt; &amp; text</pre>\n"
    assert body.summary() == ""
    assert "https://example.org/posts/odd/" in caplog.text and "RecursionError" in caplog.text


def test_serve_s_check_defers_the_old_bodies_and_still_refuses_a_missing_picture(content_dir, state_dir, capsys):
    from feedsvc.__main__ import _check
    from feedsvc.config import DEFAULTS

    for number in range(150):  # more than the hot documents show: the oldest bodies are left to the workers
        write_entry(
            content_dir,
            f"old-{number:03}.md",
            f"id: urn:example:old-{number}\ntitle: Old {number}\ndate: 2019-01-01T{number // 60:02}:{number % 60:02}:00Z\nsection: latest",
            f"Old story {number}.\n\n## Then\n\nMore.\n",
        )
    checked = _check(str(content_dir), Store(state_dir), {**DEFAULTS})
    assert checked is not None and checked["entries"] == 161
    assert 0 < Store(state_dir).parses.deferred_bodies() < 150

    write_entry(
        content_dir,
        "old-000.md",
        "id: urn:example:old-0\ntitle: Old 0\ndate: 2019-01-01T00:00:00Z\nsection: latest",
        "Old story.\n\n![The pier](media/pier.png)\n",
    )
    checked = _check(str(content_dir), Store(state_dir, "another"), {**DEFAULTS})
    assert checked is None  # serve refuses to start
    assert "posts/old-000.md: body: image 'media/pier.png'" in capsys.readouterr().err


def test_the_renderer_carries_on_after_the_store_failed_it(newsroom, state_dir, monkeypatch, caplog):
    import feedsvc.live.publisher

    load_content(newsroom, cache=Store(state_dir).parses, defer_bodies=True)
    real = ParseStore.render_deferred_bodies
    failures = []

    def busy_once(self, limit=64, lease=60):
        if not failures:
            failures.append(limit)
            raise sqlite3.OperationalError("database is locked")
        return real(self, limit, lease)

    monkeypatch.setattr(ParseStore, "render_deferred_bodies", busy_once)
    monkeypatch.setattr(feedsvc.live.publisher, "DEFERRED_FAILED_SECONDS", 0.05)
    app = create_app({"CONTENT_DIR": str(newsroom), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0.05})
    publisher = app.extensions["feedsvc"]
    try:
        deadline = time.monotonic() + 30
        while Store(state_dir).parses.deferred_bodies() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert failures and Store(state_dir).parses.deferred_bodies() == 0
        assert "cannot render deferred bodies (OperationalError: database is locked)" in caplog.text
    finally:
        publisher.stop()
