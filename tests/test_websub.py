"""WebSub: hub discovery in documents and headers, publish pings to a local hub that records them."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lxml import etree

from feedsvc import create_app
from tests.conftest import write_entry

ATOM = "{http://www.w3.org/2005/Atom}link"
BASE = "http://127.0.0.1:8000"


class Hub:
    """A local HTTP server playing the hub: records each POST; can fail or hold requests on purpose."""

    def __init__(self, failures: int = 0):
        self.received: list[dict] = []
        self.failures = failures
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hub.arrived.set()
                hub.release.wait(30)
                if hub.failures > 0:
                    hub.failures -= 1
                    self.send_response(503)
                else:
                    hub.received.append({"content_type": self.headers["Content-Type"], **dict(urllib.parse.parse_qsl(body.decode()))})
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hub"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub():
    hub = Hub()
    yield hub
    hub.close()


def make_app(content_dir, hub_url):
    app = create_app({"CONTENT_DIR": str(content_dir), "RELOAD_INTERVAL": 0, "HUB_URL": hub_url})
    return app, app.extensions["feedsvc"]


def test_subscription_feeds_advertise_the_hub_and_exactly_one_self(content_dir, hub):
    app, _ = make_app(content_dir, hub.url)
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


def test_a_change_pings_the_hub_for_each_changed_feed_only(content_dir, hub):
    app, publisher = make_app(content_dir, hub.url)
    write_entry(content_dir, "pushed.md", 'id: "urn:x:pushed"\ntitle: Pushed\ndate: 2030-01-01\nsection: featured')
    assert publisher.refresh()
    app.extensions["feedsvc.websub"].wait()
    urls = sorted(ping["hub.url"] for ping in hub.received)
    expected = sorted(f"{BASE}{prefix}/{name}" for prefix in ("", "/featured") for name in ("feed.xml", "atom.xml", "feed.json"))
    assert urls == expected  # article and latest feeds did not change
    assert all(p["hub.mode"] == "publish" and p["content_type"] == "application/x-www-form-urlencoded" for p in hub.received)


def test_pings_are_retried_with_backoff_until_the_hub_accepts(content_dir):
    hub = Hub(failures=2)
    try:
        from feedsvc.websub import HubNotifier

        notifier = HubNotifier(hub.url, first_delay=0.05, claim_key=str(content_dir) + "retry")
        app = create_app({"CONTENT_DIR": str(content_dir), "RELOAD_INTERVAL": 0})
        publisher = app.extensions["feedsvc"]
        publisher.on_new_version = notifier.on_new_version
        write_entry(content_dir, "pushed.md", 'id: "urn:x:pushed"\ntitle: Pushed\ndate: 2030-01-01\nsection: article')
        assert publisher.refresh()
        notifier.wait()
        assert hub.failures == 0  # both failures were consumed by retries
        assert sorted(p["hub.url"] for p in hub.received) == sorted(
            f"{BASE}{prefix}/{name}" for prefix in ("", "/article") for name in ("feed.xml", "atom.xml", "feed.json")
        )
    finally:
        hub.close()


def test_a_slow_hub_never_blocks_reloads_or_requests(content_dir, hub):
    hub.release.clear()  # the hub holds every ping until released
    app, publisher = make_app(content_dir, hub.url)
    write_entry(content_dir, "pushed.md", 'id: "urn:x:pushed"\ntitle: Pushed\ndate: 2030-01-01\nsection: latest')
    assert publisher.refresh()  # returns while the hub has not answered
    assert hub.arrived.wait(10)
    assert hub.received == []
    assert b"Pushed" in app.test_client().get("/feed.xml").data
    hub.release.set()
    app.extensions["feedsvc.websub"].wait()
    assert len(hub.received) == 6


def test_one_version_is_announced_once_across_workers(content_dir, hub):
    from feedsvc.websub import HubNotifier

    # two workers (here: two notifiers sharing the claim) reload the same edit
    first, second = (HubNotifier(hub.url, claim_key=str(content_dir)) for _ in range(2))
    app = create_app({"CONTENT_DIR": str(content_dir), "RELOAD_INTERVAL": 0})
    old = app.extensions["feedsvc"].current
    write_entry(content_dir, "pushed.md", 'id: "urn:x:pushed"\ntitle: Pushed\ndate: 2030-01-01\nsection: latest')
    app.extensions["feedsvc"].refresh()
    new = app.extensions["feedsvc"].current
    first.on_new_version(old, new)
    second.on_new_version(old, new)
    first.wait()
    second.wait()
    assert len(hub.received) == 6
