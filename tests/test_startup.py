"""A worker starts at any moment on its own: it answers at once with the hot set the state kept, and loads the folder meanwhile (startup.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import feedparser
from lxml import etree

import feedsvc
from feedsvc import create_app
from feedsvc.config import DEFAULTS, namespace_settings
from feedsvc.identity import build_identity
from feedsvc.publication import HotSet
from feedsvc.startup import usable_hot_set
from feedsvc.state import Store, namespace_of
from feedsvc.state.snapshots import load_pickle
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
    assert "the workers start at once" not in _log(tmp_path, port)  # nothing kept yet: checked
    with running_service(content_dir, tmp_path, env=env, port=port, workers=2) as (base, _):
        log = _log(tmp_path, port)
        assert "the workers start at once" in log, log
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
        assert "the workers start at once" in _log(tmp_path, port)

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
        assert "the workers start at once" not in _log(tmp_path, port)  # a first start: checked
        _until(lambda: _log(tmp_path, port).count("serving the kept hot set of version") == 2)  # both workers, the check's
        _until(lambda: json.loads(_get(base + "/healthz")[2])["status"] == "ok")  # and their publishers started since
        # what the publishers render is what the check rendered: the same bytes, tag and time
        later = {(body, h["ETag"], h["Last-Modified"]) for _, h, body in (_get(base + "/feed.xml") for _ in range(4))}
        assert later == {(feed, headers["ETag"], headers["Last-Modified"])}

    # no public URL: serve gives the check and its workers its own port's, so they share what the check kept
    port = free_port()
    with running_service(content_dir, tmp_path, env={"FEEDSVC_STATE_DIR": str(tmp_path / "other")}, port=port, workers=2) as (base, _):
        status, _, feed = _get(base + "/feed.xml")
        assert status == 200 and f"http://127.0.0.1:{port}/feed.xml".encode() in feed
        _until(lambda: _log(tmp_path, port).count("serving the kept hot set of version") == 2)


def test_a_file_broken_while_the_service_was_down_leaves_the_last_version_served_and_named(content_dir, tmp_path):
    env, port = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}, free_port()
    with running_service(content_dir, tmp_path, env=env, port=port) as (base, _):
        _, _, served_feed = _get(base + "/feed.xml")
        served_sitemap = _get(base + "/sitemap.xml")[:3:2]
    broken = write_entry(content_dir, "broken.md", "title: no id")
    with running_service(content_dir, tmp_path, env=env, port=port) as (base, process):
        assert process.poll() is None  # not refused: an editor's typo never keeps the site down
        assert _get(base + "/feed.xml")[2] == served_feed
        health = json.loads(_get(base + "/healthz")[2])
        assert health["status"] == "degraded" and "posts/broken.md: id: is missing" in health["error"][0], health
        # not in the hot set: the worker built the last good version again from the state, and serves all of it
        assert _get(base + "/sitemap.xml")[:3:2] == served_sitemap
        assert _get(base + "/posts/not-there/")[0] == 404
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


def test_a_worker_killed_while_a_file_is_broken_is_replaced_by_one_serving_the_last_good_version(content_dir, tmp_path):
    """granian respawns a crashed worker at any moment: it starts on the broken folder, serves the last good version."""
    env, port = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}, free_port()
    with running_service(content_dir, tmp_path, env=env, port=port, workers=1) as (base, process):
        served = {path: _get(base + path)[::2] for path in ("/feed.xml", "/sitemap.xml", "/archive/")}
        write_entry(content_dir, "broken.md", "title: no id")
        _until(lambda: json.loads(_get(base + "/healthz")[2])["status"] == "degraded")
        (worker,) = _worker_pids(process.pid)
        os.kill(worker, signal.SIGKILL)
        _until(lambda: _worker_pids(process.pid) not in (set(), {worker}))
        _until(lambda: _answers(base + "/healthz"))
        assert {path: _get(base + path)[::2] for path in served} == served  # the replacement serves all of it
        health = json.loads(_get(base + "/healthz")[2])
        assert health["status"] == "degraded" and any("posts/broken.md: id: is missing" in line for line in health["error"]), health
        assert process.poll() is None and "crash loop" not in _log(tmp_path, port).lower()


def test_a_wsgi_server_started_by_hand_on_a_broken_folder_serves_the_last_good_version(content_dir, tmp_path):
    """`feedsvc.wsgi:app` under any server, started at any time: no hand-over from `serve` is needed to serve what was good."""
    env, port = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}, free_port()
    with running_service(content_dir, tmp_path, env=env, port=port) as (base, _):
        served = {path: _get(base + path)[::2] for path in ("/feed.xml", "/sitemap.xml")}
    write_entry(content_dir, "broken.md", "title: no id")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    by_hand = {**clean, **env, "FEEDSVC_CONTENT_DIR": str(content_dir.absolute()), "FEEDSVC_BASE_URL": f"http://127.0.0.1:{port}"}
    with (tmp_path / "granian.log").open("wb") as log:
        granian = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "wsgi", "--port", str(port), "feedsvc.wsgi:app"],
            cwd=ROOT,
            env=by_hand,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"))
        assert {path: _get(f"http://127.0.0.1:{port}{path}")[::2] for path in served} == served
    finally:
        os.killpg(granian.pid, signal.SIGTERM)
        granian.wait(20)


def _answers(url: str) -> bool:
    try:
        return _get(url, timeout=5)[0] == 200
    except OSError:
        return False


def _worker_pids(server_pid: int) -> set[int]:
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children")
    return {int(pid) for pid in children.read_text().split()} if children.exists() else set()


# --- in one process ---------------------------------------------------------------------------


def _kept(content_dir, state_dir, **config):
    """Start the service once (it keeps its hot set); return its config and what it served."""
    config = {"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0, **config}
    app = create_app(config)
    client = app.test_client()
    served = {path: client.get(path) for path in ("/", "/feed.xml", "/atom.xml")}
    notifier = app.extensions["feedsvc.websub"]
    if notifier is not None:
        assert notifier.wait(30)
    app.extensions["feedsvc"].stop()  # the service stops: this worker serves nothing any more
    return config, served


def _store_of(config) -> Store:
    return Store(config["STATE_DIR"], namespace_of(config["CONTENT_DIR"], namespace_settings({**DEFAULTS, **config})))


def test_every_version_served_is_kept_as_the_next_start_s_hot_set(content_dir, state_dir):
    config = {"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0}
    app = create_app(config)
    publisher, store = app.extensions["feedsvc"], _store_of(config)
    for attempt in range(2):
        kept = usable_hot_set(store, build_identity(), time.time)
        assert isinstance(kept, HotSet)
        assert kept.version == publisher.current.version and kept.loaded_version == store.kept.version()[0]
        assert {path: d.etag for path, d in kept.documents.items()} == {path: d.etag for path, d in publisher.current.documents.items()}
        write_entry(content_dir, "new.md", f'id: "urn:example:new"\ntitle: New {attempt}\ndate: 2025-07-09T10:00:00Z\nsection: latest')
        assert publisher.refresh()


def test_a_worker_answers_from_the_hot_set_before_its_publisher_started(content_dir, state_dir, monkeypatch):
    config, served = _kept(content_dir, state_dir)
    released = threading.Event()
    real_publisher = feedsvc.Publisher

    def slow_publisher(*args, **kwargs):  # a large archive: the start takes a while
        assert released.wait(30)
        return real_publisher(*args, **kwargs)

    monkeypatch.setattr(feedsvc, "Publisher", slow_publisher)
    app = create_app({**config, "START_IN_BACKGROUND": True})
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
    start = app.extensions["feedsvc.start"]
    assert start.wait(30)
    assert app.extensions["feedsvc"].current.documents["/feed.xml"].etag == served["/feed.xml"].headers["ETag"]
    assert start.hot is None  # the publication has its own copies of those documents


def test_no_hub_ping_runs_ahead_of_a_worker_still_serving_its_hot_set(content_dir, state_dir, monkeypatch):
    hub = RecordingHub()
    try:
        config, _ = _kept(content_dir, state_dir, HUB_URL=hub.url)
        write_entry(content_dir, "offline.md", 'id: "urn:example:offline"\ntitle: Offline\ndate: 2025-07-10T10:00:00Z\nsection: latest')
        hub.clear()
        released = threading.Event()
        real_publisher = feedsvc.Publisher

        def held_in_background_starts(*args, **kwargs):  # the warm worker's archive takes a while to load
            if threading.current_thread().name == "feedsvc-start":
                assert released.wait(30)
            return real_publisher(*args, **kwargs)

        monkeypatch.setattr(feedsvc, "Publisher", held_in_background_starts)
        warm = create_app({**config, "START_IN_BACKGROUND": True})
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
    app = create_app({**config, "START_IN_BACKGROUND": True})
    start, client = app.extensions["feedsvc.start"], app.test_client()
    _until(lambda: start.error is not None)
    assert client.get("/feed.xml").data == served["/feed.xml"].data  # the hot set stays served
    health = client.get("/healthz").get_json()
    assert health["status"] == "degraded" and health["error"] == ["starting: OSError: the state folder's disk is full"], health
    unavailable = client.get("/sitemap.xml")
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"]
    write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-09T10:00:00Z\nsection: latest')
    assert start.wait(30)  # the change: tried again, started
    assert client.get("/sitemap.xml").status_code == 200 and b"urn:example:new" in client.get("/feed.xml").data
    assert client.get("/healthz").get_json()["status"] == "ok"


def test_a_hot_set_is_used_only_for_its_namespace_its_code_and_until_a_scheduled_entry_is_due(content_dir, state_dir):
    config, _ = _kept(content_dir, state_dir)
    store = _store_of(config)
    assert usable_hot_set(store, build_identity(), time.time) is not None
    assert usable_hot_set(_store_of({**config, "MAX_AGE": 60}), build_identity(), time.time) is None  # other bytes
    assert usable_hot_set(store, "another build", time.time) is None  # other code
    other = create_app({**config, "MAX_AGE": 60, "START_IN_BACKGROUND": True})
    assert other.extensions["feedsvc.start"].hot is None
    soon = datetime.now(UTC) + timedelta(seconds=30)
    write_entry(content_dir, "soon.md", f'id: "urn:example:soon"\ntitle: Soon\ndate: "{soon.isoformat()}"\nsection: latest')
    config, _ = _kept(content_dir, state_dir)
    assert create_app({**config, "START_IN_BACKGROUND": True}).extensions["feedsvc.start"].hot is not None
    later = soon.timestamp() + 1
    app = create_app({**config, "START_IN_BACKGROUND": True, "CLOCK": lambda: later})
    assert app.extensions["feedsvc.start"].hot is None  # its version lacks the post due now
    assert app.extensions["feedsvc.start"].wait(30)
    assert b"urn:example:soon" in app.test_client().get("/feed.xml").data


def test_a_hot_set_damaged_on_disk_or_left_by_another_database_is_never_served(content_dir, state_dir):
    """A hot set altered on disk would send wrong bytes under the right bytes' ETag: it is checked before it is used."""
    config, _ = _kept(content_dir, state_dir)
    store = _store_of(config)
    name = store.side_file("hot-set")
    kept = (state_dir / name).read_bytes()
    title = b"Best Website"
    assert title in kept
    (state_dir / name).write_bytes(kept.replace(title, b"Best W3bsite"))  # as bit rot or a stray tool would
    assert usable_hot_set(store, build_identity(), time.time) is None
    assert store.snapshots.read(name, load_pickle, store.snapshots.note(name)) is None
    (state_dir / name).write_bytes(kept)
    assert usable_hot_set(store, build_identity(), time.time) is not None
    (state_dir / "state.sqlite3").unlink()  # a new database: it never recorded that file
    assert usable_hot_set(_store_of(config), build_identity(), time.time) is None
