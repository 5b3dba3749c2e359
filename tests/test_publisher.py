"""Live reloads: new versions are swapped in whole; broken edits keep the last good version."""

from __future__ import annotations

import os
import time

from tests.conftest import write_entry

NEW_POST = """
    id: "urn:uuid:0d9e2f57-2f5b-4df4-9d43-6c0d3c7a0b11"
    title: A brand new post
    date: Jul 08, 2025 08:00
    section: latest
"""


def _bump_mtime(path):
    # some filesystems keep coarse timestamps: make sure the edit is visible to the fingerprint
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))


def test_added_entry_is_served_after_refresh(publisher, app):
    client = app.test_client()
    old_etag = client.get("/feed.xml").headers["ETag"]
    write_entry(publisher.directory, "brand-new.md", NEW_POST)
    assert publisher.refresh() is True
    response = client.get("/feed.xml")
    assert response.headers["ETag"] != old_etag
    assert b"A brand new post" in response.data
    assert client.get("/posts/brand-new/").status_code == 200


def test_deleted_entry_disappears(publisher, app):
    (publisher.directory / "posts" / "new-faces-proteas-announce-test-debutants.md").unlink()
    assert publisher.refresh() is True
    assert app.test_client().get("/posts/new-faces-proteas-announce-test-debutants/").status_code == 404
    assert publisher.status()["entries"] == 10


def test_broken_edit_keeps_serving_the_last_good_version_and_recovers(publisher, app, caplog):
    client = app.test_client()
    good = client.get("/feed.xml")
    path = write_entry(publisher.directory, "brand-new.md", NEW_POST.replace("Jul 08, 2025 08:00", "not a date"))
    assert publisher.refresh() is False
    assert client.get("/feed.xml").data == good.data
    status = client.get("/healthz").get_json()
    assert status["status"] == "degraded"
    assert status["error"] == [
        "posts/brand-new.md: date: 'not a date' is not a date; write it like 'Jul 07, 2025 18:00' or '2025-07-07T18:00:00+01:00'"
    ]
    assert sum("not a date" in r.getMessage() for r in caplog.records) == 1
    _bump_mtime(path)
    publisher.refresh()  # the same problem again is not logged again
    assert sum("not a date" in r.getMessage() for r in caplog.records) == 1

    write_entry(publisher.directory, "brand-new.md", NEW_POST)
    _bump_mtime(path)
    assert publisher.refresh() is True
    assert client.get("/healthz").get_json()["error"] is None
    assert b"A brand new post" in client.get("/feed.xml").data


def test_touching_a_file_changes_nothing(publisher, app):
    client = app.test_client()
    before = client.get("/feed.xml").headers["ETag"]
    version = publisher.current
    _bump_mtime(publisher.directory / "site.yaml")
    assert publisher.refresh() is False
    assert publisher.current is version
    assert client.get("/feed.xml").headers["ETag"] == before


def test_watcher_thread_picks_up_an_edit_within_seconds(content_dir):
    from feedsvc import create_app

    app = create_app({"CONTENT_DIR": str(content_dir), "RELOAD_INTERVAL": 0.1})
    publisher = app.extensions["feedsvc"]
    try:
        write_entry(content_dir, "brand-new.md", NEW_POST)
        deadline = time.monotonic() + 5
        while b"A brand new post" not in app.test_client().get("/feed.xml").data:
            assert time.monotonic() < deadline, "edit not served within 5 s"
            time.sleep(0.05)
    finally:
        publisher.stop()
