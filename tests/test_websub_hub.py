"""WebSub against a real, independently written hub (flask-websub from PyPI), with two feedsvc workers."""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import feedparser
import pytest

from tests.conftest import ROOT, require, write_entry
from tests.servers import QuietHandler, free_port, running_service, serve_in_thread


class Subscriber:
    """A WebSub subscriber callback: confirms intent (echoes hub.challenge) and records deliveries."""

    def __init__(self):
        self.deliveries: list[bytes] = []
        self.delivered = threading.Condition()
        subscriber = self

        class Handler(QuietHandler):
            def do_GET(self):  # §5.3 intent verification
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                challenge = query.get("hub.challenge", "").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(challenge)))
                self.end_headers()
                self.wfile.write(challenge)

            def do_POST(self):  # §7 content distribution
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with subscriber.delivered:
                    subscriber.deliveries.append(body)
                    subscriber.delivered.notify_all()
                self.send_response(204)
                self.end_headers()

        self.server, self.url = serve_in_thread(Handler, "/callback")

    def wait_for(self, count: int, timeout: float = 20) -> list[bytes]:
        with self.delivered:
            assert self.delivered.wait_for(lambda: len(self.deliveries) >= count, timeout), self.deliveries
            return list(self.deliveries)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def running_hub(tmp_path):
    port = free_port()
    log = (tmp_path / "hub.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "websub_hub.py"), str(port), str(tmp_path / "hub.sqlite3")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/hub"
    try:
        deadline = time.monotonic() + 30
        while True:  # the hub answers GET with 405 once it is up
            try:
                urllib.request.urlopen(url, timeout=2)
            except urllib.error.HTTPError:
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "hub.log").read_text()
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


@pytest.mark.integration
def test_a_real_hub_delivers_every_edit_fresh_from_two_workers(content_dir, tmp_path):
    require(importlib.util.find_spec("flask_websub") is not None, "flask-websub is not installed (pip install -r requirements-dev.txt)")
    subscriber = Subscriber()
    env = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}
    with running_hub(tmp_path) as hub, contextlib.closing(subscriber):
        env["FEEDSVC_HUB_URL"] = hub
        with running_service(content_dir, tmp_path, workers=2, env=env) as (base, _):
            topic = f"{base}/feed.xml"
            # the start announces every feed once both workers serve it: a subscription made before that
            # ping reached the hub would get the start's feed delivered, before any edit
            deadline = time.monotonic() + 30
            while f"accepted the publish ping for {topic}\n" not in next(tmp_path.glob("serve-*.log")).read_text():
                assert time.monotonic() < deadline, "the start's feeds were not announced"
                time.sleep(0.05)
            form = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.topic": topic, "hub.callback": subscriber.url}).encode()
            with urllib.request.urlopen(urllib.request.Request(hub, data=form)) as response:
                assert response.status == 202  # the hub verified our intent before answering
            for number in range(1, 6):
                title = f"Edit number {number}"
                write_entry(content_dir, "live.md", f'id: "urn:example:live"\ntitle: {title}\ndate: 2025-07-08T10:00:00Z\nsection: latest')
                delivered = subscriber.wait_for(number)
                # pinged only once both workers served the edit: the hub's fetch got the new feed
                newest = feedparser.parse(delivered[-1])
                assert not newest.bozo and newest.entries[0].title == title, [feedparser.parse(d).entries[0].title for d in delivered]
            time.sleep(1)
            assert len(subscriber.deliveries) == 5  # one delivery per edit, none stale, none repeated
            log = next(tmp_path.glob("serve-*.log")).read_text()
            assert "accepted the publish ping" in log
