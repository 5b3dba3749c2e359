"""WebSub: hub discovery in documents and headers, publish pings to a local hub that records them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time

import pytest
from lxml import etree

from feedsvc import create_app
from tests.conftest import ROOT, write_entry
from tests.servers import RecordingHub

ATOM = "{http://www.w3.org/2005/Atom}link"
BASE = "http://127.0.0.1:8000"
FORMATS = ("feed.xml", "atom.xml", "feed.json")


@pytest.fixture
def hub():
    hub = RecordingHub()
    yield hub
    hub.close()


SUBSCRIPTION_FEEDS = sorted(f"{BASE}{prefix}/{name}" for prefix in ("", "/article", "/featured", "/latest") for name in FORMATS)


def make_app(content_dir, state_dir, hub_url, **config):
    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0, "HUB_URL": hub_url, **config})
    notifier = app.extensions["feedsvc.websub"]
    notifier.first_delay = 0.05
    assert notifier.wait(30)
    return app, app.extensions["feedsvc"]


def _feeds(*prefixes: str) -> list[str]:
    return sorted(f"{BASE}{prefix}/{name}" for prefix in prefixes for name in FORMATS)


def test_subscription_feeds_advertise_the_hub_and_exactly_one_self(content_dir, state_dir, hub):
    app, _ = make_app(content_dir, state_dir, hub.url)
    client = app.test_client()
    for path in ("/feed.xml", "/atom.xml", "/featured/atom.xml"):
        response = client.get(path)
        tree = etree.fromstring(response.data)
        links = [(link.get("rel"), link.get("href")) for link in tree.iter(ATOM)]
        assert ("hub", hub.url) in links
        assert [href for rel, href in links if rel == "self"] == [BASE + path]
        assert response.headers["Link"] == f'<{hub.url}>; rel="hub", <{BASE + path}>; rel="self"'
    document = json.loads(client.get("/feed.json").data)
    assert document["hubs"] == [{"type": "WebSub", "url": hub.url}]


def test_without_a_hub_nothing_is_advertised(client):
    assert b'rel="hub"' not in client.get("/feed.xml").data
    assert "Link" not in client.get("/feed.xml").headers


def test_a_fresh_state_announces_every_subscription_feed_once(content_dir, state_dir, hub):
    first, _ = make_app(content_dir, state_dir, hub.url)
    assert hub.topics() == SUBSCRIPTION_FEEDS
    for ping in hub.received:  # hubs read hub.topic (W3C WebSub) or hub.url (PubSubHubbub 0.4): send both
        assert ping["hub.mode"] == "publish" and ping["hub.url"] == ping["hub.topic"]
        assert ping["content_type"] == "application/x-www-form-urlencoded"
    hub.clear()
    first.extensions["feedsvc"].stop()
    make_app(content_dir, state_dir, hub.url)  # a restart on unchanged content: the hub already knows
    assert hub.received == []


def test_a_change_pings_the_hub_for_each_changed_feed_only(content_dir, state_dir, hub, caplog):
    app, publisher = make_app(content_dir, state_dir, hub.url)
    hub.clear()
    caplog.set_level(logging.INFO, logger="feedsvc.websub")
    write_entry(content_dir, "pushed.md", 'id: "urn:example:pushed"\ntitle: Pushed\ndate: 2025-07-08T10:00:00Z\nsection: featured')
    assert publisher.refresh()
    assert app.extensions["feedsvc.websub"].wait(30)
    assert hub.topics() == _feeds("", "/featured")  # article and latest feeds did not change
    assert sum("accepted the publish ping" in r.getMessage() for r in caplog.records) == 6


def test_changes_made_while_the_service_was_down_are_announced_on_start(content_dir, state_dir, hub):
    app, _ = make_app(content_dir, state_dir, hub.url)
    app.extensions["feedsvc"].stop()  # the service stops
    hub.clear()
    write_entry(content_dir, "offline.md", 'id: "urn:example:offline"\ntitle: Offline\ndate: 2025-07-08T10:00:00Z\nsection: latest')
    make_app(content_dir, state_dir, hub.url)
    assert hub.topics() == _feeds("", "/latest")


def test_pings_are_retried_with_backoff_until_the_hub_accepts(content_dir, state_dir):
    hub = RecordingHub(failures=2)
    try:
        make_app(content_dir, state_dir, hub.url)
        assert hub.failures == 0  # both failures were consumed by retries
        assert hub.topics() == SUBSCRIPTION_FEEDS
    finally:
        hub.close()


def test_a_refused_ping_is_not_retried_and_a_failing_feed_holds_up_no_other(content_dir, state_dir, hub):
    refused, failing = f"{BASE}/feed.json", f"{BASE}/atom.xml"
    hub.refuse = {refused: 400, failing: 503}
    app, _ = make_app(content_dir, state_dir, hub.url)
    notifier = app.extensions["feedsvc.websub"]
    assert hub.attempts.count(refused) == 1  # a 4xx is final
    assert hub.attempts.count(failing) == notifier.attempts  # a 5xx is retried, then given up
    assert hub.topics() == sorted(set(SUBSCRIPTION_FEEDS) - {refused, failing})
    # neither was recorded as announced: the next start tries them again, and only them
    hub.refuse = {}
    hub.clear()
    app.extensions["feedsvc"].stop()
    make_app(content_dir, state_dir, hub.url)
    assert hub.topics() == sorted([refused, failing])


def test_a_slow_failing_feed_does_not_delay_the_others(content_dir, state_dir, hub):
    failing = f"{BASE}/atom.xml"
    hub.refuse = {failing: 503}
    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0, "HUB_URL": hub.url})
    notifier = app.extensions["feedsvc.websub"]  # first retry after 1 s, then 2, 4, 8
    deadline = time.monotonic() + 5
    while len(hub.topics()) < len(SUBSCRIPTION_FEEDS) - 1:
        assert time.monotonic() < deadline, hub.topics()
        time.sleep(0.05)
    assert not notifier.wait(0)  # the failing feed is still waiting for its next try


def test_a_slow_hub_never_blocks_reloads_or_requests(content_dir, state_dir, hub):
    app, publisher = make_app(content_dir, state_dir, hub.url)
    hub.clear()
    hub.release.clear()  # the hub holds every ping until released
    hub.arrived.clear()
    write_entry(content_dir, "pushed.md", 'id: "urn:example:pushed"\ntitle: Pushed\ndate: 2025-07-08T10:00:00Z\nsection: latest')
    assert publisher.refresh()  # returns while the hub has not answered
    assert hub.arrived.wait(10)
    assert hub.received == []
    assert b"Pushed" in app.test_client().get("/feed.xml").data
    hub.release.set()
    assert app.extensions["feedsvc.websub"].wait(30)
    assert len(hub.received) == 6


def test_pings_wait_until_every_worker_serves_the_new_version(content_dir, state_dir, hub):
    # two workers sharing one state folder (here: two apps in one process)
    apps = [make_app(content_dir, state_dir, hub.url) for _ in range(2)]
    hub.clear()
    write_entry(content_dir, "pushed.md", 'id: "urn:example:pushed"\ntitle: Pushed\ndate: 2025-07-08T10:00:00Z\nsection: latest')
    (first_app, first), (second_app, second) = apps
    assert first.refresh()
    assert first_app.extensions["feedsvc.websub"].wait(10)
    assert hub.received == []  # the second worker still serves the old feeds: a hub fetch could get them
    assert second.refresh()
    assert second_app.extensions["feedsvc.websub"].wait(10)
    assert hub.topics() == _feeds("", "/latest")  # once, by the last worker to switch


def test_a_dead_worker_does_not_hold_up_pings(state_dir):
    from feedsvc.state import Store

    store = Store(state_dir)
    assert store.workers.serving("gone", "v1", {"t": "a"}) == ["t"]
    # a worker whose process is gone (pid 2**22 + 1 is beyond Linux's pid range) never blocks
    store.db._connection().execute("UPDATE workers SET pid = ? WHERE token = 'gone'", (2**22 + 1,))
    assert store.workers.serving("live", "v2", {"t": "b"}) == ["t"]


def test_build_pings_the_hub_after_the_export_is_in_place(content_dir, state_dir, tmp_path, hub):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env.update(FEEDSVC_HUB_URL=hub.url, FEEDSVC_STATE_DIR=str(state_dir))
    out = tmp_path / "out"
    export_at_ping = []
    hub.on_ping = lambda form: export_at_ping.append((out / "feed.xml").exists())
    command = [sys.executable, "-m", "feedsvc", "build", str(out), "--content", str(content_dir)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    assert hub.topics() == SUBSCRIPTION_FEEDS
    assert export_at_ping == [True] * len(SUBSCRIPTION_FEEDS)  # the hub could fetch the export at every ping
    hub.clear()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    assert hub.received == []  # nothing changed since the hub was told
