"""A restart of `serve` answers at once with the hot set the last run kept, and loads the archive meanwhile (warmstart.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from email.message import Message

import feedparser
from lxml import etree

import feedsvc
from feedsvc import create_app
from feedsvc.__main__ import CHECKED_SETTING, _warm_start
from feedsvc.publication import HotSet
from feedsvc.publisher import hot_set_key
from feedsvc.store import Store
from tests.conftest import ROOT, write_entry
from tests.servers import RecordingHub, free_port, running_service


def _get(url: str, timeout: float = 30) -> tuple[int, Message, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)


def _log(tmp_path, port: int) -> str:
    return (tmp_path / f"serve-{port}.log").read_text()


# --- with the real server ---------------------------------------------------------------------


def test_a_restart_answers_with_what_the_last_run_served_and_publishes_what_changed_while_it_was_down(content_dir, tmp_path):
    env, port = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}, free_port()
    with running_service(content_dir, tmp_path, env=env, port=port, workers=2) as (base, _):
        _, served_headers, served_feed = _get(base + "/feed.xml")
    assert "restarting on the documents the last run served" not in _log(tmp_path, port)  # nothing kept yet: checked
    with running_service(content_dir, tmp_path, env=env, port=port, workers=2) as (base, _):
        log = _log(tmp_path, port)
        assert "restarting on the documents the last run served" in log and "unchanged since" not in log, log
        _until(lambda: _log(tmp_path, port).count("serving the kept hot set of version") == 2)  # both workers
        status, headers, feed = _get(base + "/feed.xml")
        assert (status, feed) == (200, served_feed)  # the very bytes, tag and time the last run served
        assert (headers["ETag"], headers["Last-Modified"]) == (served_headers["ETag"], served_headers["Last-Modified"])
        assert json.loads(_get(base + "/healthz")[2])["status"] == "ok"  # the workers loaded the archive too
        assert _get(base + "/sitemap.xml")[0] == 200  # rendered on request, once started
        write_entry(
            content_dir, "live.md", 'id: "urn:example:live"\ntitle: Live after a warm start\ndate: 2025-07-09T10:00:00Z\nsection: latest'
        )
        _until(lambda: b"Live after a warm start" in _get(base + "/feed.xml")[2])  # the watcher follows the folder
    write_entry(
        content_dir, "offline.md", 'id: "urn:example:offline"\ntitle: Written while down\ndate: 2025-07-10T10:00:00Z\nsection: latest'
    )
    with running_service(content_dir, tmp_path, env=env, port=port, workers=2) as (base, _):
        assert "restarting on the documents the last run served" in _log(tmp_path, port)

        def titles() -> list[str]:
            return [entry.title for entry in feedparser.parse(_get(base + "/feed.xml")[2]).entries]

        # every worker, once it has looked at the folder (requests go to either)
        _until(lambda: all("Written while down" in titles() and "Live after a warm start" in titles() for _ in range(10)))


def test_a_first_start_answers_with_the_hot_documents_its_check_rendered(content_dir, tmp_path):
    port = free_port()
    env = {"FEEDSVC_STATE_DIR": str(tmp_path / "state"), "FEEDSVC_BASE_URL": f"http://127.0.0.1:{port}"}
    with running_service(content_dir, tmp_path, env=env, port=port, workers=2) as (base, _):
        status, headers, feed = _get(base + "/feed.xml")  # at once: from the check's hot set, or a publisher already
        assert status == 200 and b"<rss" in feed
        assert "restarting on the documents the last run served" not in _log(tmp_path, port)  # a first start: checked
        _until(lambda: _log(tmp_path, port).count("serving the kept hot set of version") == 2)  # both workers, the check's
        _until(lambda: json.loads(_get(base + "/healthz")[2])["status"] == "ok")  # and their publishers started since
        # what the publishers render is what the check rendered: the same bytes, tag and time
        later = {(body, h["ETag"], h["Last-Modified"]) for _, h, body in (_get(base + "/feed.xml") for _ in range(4))}
        assert later == {(feed, headers["ETag"], headers["Last-Modified"])}

    # the workers' settings differ from the check's (no public URL: serve gives them its port's): no hand-over
    port = free_port()
    with running_service(content_dir, tmp_path, env={"FEEDSVC_STATE_DIR": str(tmp_path / "other")}, port=port, workers=2) as (base, _):
        assert _get(base + "/feed.xml")[0] == 200
        assert "serving the kept hot set of version" not in _log(tmp_path, port)


def test_a_file_broken_while_the_service_was_down_leaves_the_last_version_served_and_named(content_dir, tmp_path):
    env, port = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}, free_port()
    with running_service(content_dir, tmp_path, env=env, port=port) as (base, _):
        _, _, served_feed = _get(base + "/feed.xml")
    broken = write_entry(content_dir, "broken.md", "title: no id")
    with running_service(content_dir, tmp_path, env=env, port=port) as (base, process):
        assert process.poll() is None  # not refused: an editor's typo never keeps the site down
        assert _get(base + "/feed.xml")[2] == served_feed
        health = json.loads(_get(base + "/healthz")[2])
        assert health["status"] == "degraded" and "posts/broken.md: id: is missing" in health["error"][0], health
        status, headers, body = _get(base + "/sitemap.xml")  # not in the hot set: nothing to serve it from
        assert status == 503 and headers["Retry-After"] and headers["Cache-Control"] == "no-store", (status, body)
        assert "posts/broken.md: id: is missing" in _log(tmp_path, port)
        broken.unlink()  # fixed: the start is tried again and succeeds
        _until(lambda: json.loads(_get(base + "/healthz")[2])["status"] == "ok")
        assert _get(base + "/sitemap.xml")[0] == 200


def test_other_settings_make_serve_check_the_folder_and_refuse_it_broken(content_dir, tmp_path):
    env, port = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}, free_port()
    with running_service(content_dir, tmp_path, env=env, port=port):
        pass
    write_entry(content_dir, "broken.md", "title: no id")
    # another max-age changes every feed's bytes: the kept ones are not used, the folder is checked
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "serve", "--port", str(port), "--content", str(content_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env, "FEEDSVC_MAX_AGE": "60"},
        timeout=60,
    )
    assert result.returncode == 1
    assert "posts/broken.md: id: is missing" in result.stderr


# --- in one process ---------------------------------------------------------------------------


def _kept(content_dir, state_dir, **config):
    """Start the service once (it keeps its hot set); return its config and what it served."""
    config = {"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0, **config}
    app = create_app(config)
    client = app.test_client()
    served = {path: client.get(path) for path in ("/", "/feed.xml", "/atom.xml")}
    notifier = app.extensions["feedsvc.websub"]
    if notifier is not None:  # the service stops: this worker serves nothing any more
        assert notifier.wait(30)
        notifier.close()
    return config, served


def test_every_version_served_is_kept_as_the_next_start_s_hot_set(content_dir, state_dir):
    config = {"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0}
    app = create_app(config)
    publisher, store = app.extensions["feedsvc"], Store(state_dir)
    for attempt in range(2):
        kept = store.load_hot_set()
        assert isinstance(kept, HotSet) and kept.key == hot_set_key(app.config)
        assert kept.version == publisher.current.version == store.hot_set_note()["version"]
        assert {path: d.etag for path, d in kept.documents.items()} == {path: d.etag for path, d in publisher.current.documents.items()}
        write_entry(content_dir, "new.md", f'id: "urn:example:new"\ntitle: New {attempt}\ndate: 2025-07-09T10:00:00Z\nsection: latest')
        assert publisher.refresh()


def test_a_warm_start_answers_from_the_hot_set_before_its_publisher_started(content_dir, state_dir, monkeypatch):
    config, served = _kept(content_dir, state_dir)
    released = threading.Event()
    real_publisher = feedsvc.Publisher

    def slow_publisher(*args, **kwargs):  # a large archive: the start takes a while
        assert released.wait(30)
        return real_publisher(*args, **kwargs)

    monkeypatch.setattr(feedsvc, "Publisher", slow_publisher)
    app = create_app({**config, "WARM_START": hot_set_key({**feedsvc.DEFAULTS, **config})})
    client = app.test_client()
    for path, response in served.items():
        again = client.get(path)
        assert (again.status_code, again.data, again.headers["ETag"]) == (200, response.data, response.headers["ETag"])
    conditional = client.get("/feed.xml", headers={"If-None-Match": served["/feed.xml"].headers["ETag"]})
    assert conditional.status_code == 304
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(app.test_client().get("/sitemap.xml")))
    waiting.start()
    time.sleep(0.3)
    assert not answers  # outside the hot set: it waits for the start
    released.set()
    waiting.join(30)
    assert answers[0].status_code == 200 and etree.fromstring(answers[0].data) is not None
    assert app.extensions["feedsvc.start"].wait(30)
    assert app.extensions["feedsvc"].current.version == app.extensions["feedsvc.start"].version
    assert app.extensions["feedsvc.start"].hot is None  # the publication has its own copies of those documents


def test_no_hub_ping_runs_ahead_of_a_worker_still_serving_its_hot_set(content_dir, state_dir, monkeypatch):
    hub = RecordingHub()
    try:
        config, _ = _kept(content_dir, state_dir, HUB_URL=hub.url)
        write_entry(content_dir, "offline.md", 'id: "urn:example:offline"\ntitle: Offline\ndate: 2025-07-10T10:00:00Z\nsection: latest')
        hub.clear()
        released = threading.Event()
        real_publisher = feedsvc.Publisher

        def held_in_warm_starts(*args, **kwargs):  # the warm worker's archive takes a while to load
            if threading.current_thread().name == "feedsvc-start":
                assert released.wait(30)
            return real_publisher(*args, **kwargs)

        monkeypatch.setattr(feedsvc, "Publisher", held_in_warm_starts)
        warm = create_app({**config, "WARM_START": hot_set_key({**feedsvc.DEFAULTS, **config})})
        other = create_app(config)  # the other worker, started the ordinary way: the new version
        assert b"urn:example:offline" in other.test_client().get("/feed.xml").data
        assert other.extensions["feedsvc.websub"].wait(30)
        assert hub.received == []  # the hub's fetch could land on the warm worker, still serving the old feed
        released.set()
        assert warm.extensions["feedsvc.start"].wait(30)
        assert warm.extensions["feedsvc.websub"].wait(30)
        assert "http://127.0.0.1:8000/feed.xml" in hub.topics()  # pinged once both serve the new version
    finally:
        hub.close()


def test_a_start_that_fails_unexpectedly_is_named_and_tried_again_on_the_next_change(content_dir, state_dir, monkeypatch):
    config, served = _kept(content_dir, state_dir)
    failures = [OSError("the state folder's disk is full")]
    real_publisher = feedsvc.Publisher

    def failing_once(*args, **kwargs):
        if failures:
            raise failures.pop()
        return real_publisher(*args, **kwargs)

    monkeypatch.setattr(feedsvc, "Publisher", failing_once)
    app = create_app({**config, "WARM_START": hot_set_key({**feedsvc.DEFAULTS, **config})})
    start, client = app.extensions["feedsvc.start"], app.test_client()
    _until(lambda: start.error is not None)
    assert client.get("/feed.xml").data == served["/feed.xml"].data  # the hot set stays served
    health = client.get("/healthz").get_json()
    assert health["status"] == "degraded" and health["error"] == ["(start): OSError: the state folder's disk is full"], health
    unavailable = client.get("/sitemap.xml")
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"]
    write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-09T10:00:00Z\nsection: latest')
    assert start.wait(30)  # the change: tried again, started
    assert client.get("/sitemap.xml").status_code == 200 and b"urn:example:new" in client.get("/feed.xml").data
    assert client.get("/healthz").get_json()["status"] == "ok"


def test_a_hot_set_is_not_used_under_other_settings_or_once_a_scheduled_entry_is_due(content_dir, state_dir):
    config, _ = _kept(content_dir, state_dir)
    other = create_app({**config, "MAX_AGE": 60, "WARM_START": hot_set_key({**feedsvc.DEFAULTS, **config})})
    assert "feedsvc.start" not in other.extensions  # serve's key is not this worker's: an ordinary start
    soon = datetime.now(UTC) + timedelta(seconds=30)
    write_entry(content_dir, "soon.md", f'id: "urn:example:soon"\ntitle: Soon\ndate: "{soon.isoformat()}"\nsection: latest')
    config, _ = _kept(content_dir, state_dir)
    key = hot_set_key({**feedsvc.DEFAULTS, **config})
    assert "feedsvc.start" in create_app({**config, "WARM_START": key}).extensions
    later = soon.timestamp() + 1
    app = create_app({**config, "WARM_START": key, "CLOCK": lambda: later})
    assert "feedsvc.start" not in app.extensions  # its version lacks the post due now
    assert b"urn:example:soon" in app.test_client().get("/feed.xml").data


def test_serve_restarts_warm_only_on_a_readable_hot_set_for_its_settings(content_dir, state_dir, monkeypatch):
    monkeypatch.setenv("FEEDSVC_CONTENT_DIR", str(content_dir.absolute()))
    for name in ("FEEDSVC_BASE_URL", "FEEDSVC_MAX_AGE", "FEEDSVC_ITEM_LIMIT", "FEEDSVC_HUB_URL"):
        monkeypatch.delenv(name, raising=False)
    store = Store(state_dir)
    store.remember(CHECKED_SETTING, json.dumps({"key": "k", "entries": 11, "default_base_url": True}))
    assert _warm_start(store, 8000) is None  # nothing kept
    create_app({"STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0})  # serves, and keeps its hot set
    key = hot_set_key({**feedsvc.DEFAULTS, "CONTENT_DIR": str(content_dir.absolute())})
    assert _warm_start(store, 8000) == {"entries": 11, "default_base_url": True, "hot_set": key}
    assert _warm_start(store, 8001) is None  # links would point at another port: other bytes
    monkeypatch.setenv("FEEDSVC_MAX_AGE", "60")
    assert _warm_start(store, 8000) is None
    monkeypatch.delenv("FEEDSVC_MAX_AGE")
    (state_dir / "hot-set.pickle").write_bytes(b"cut short")
    assert _warm_start(store, 8000) is None  # the workers could not use it: serve checks the folder
