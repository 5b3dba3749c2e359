"""Truthful validators: Last-Modified is when a document's bytes last changed; bytes depend only on the content."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from werkzeug.http import http_date

from feedsvc import create_app
from tests.conftest import ROOT, require, write_entry
from tests.servers import fetch, running_nginx, running_service

ARTICLE = "posts/ketamine-therapy-high-risk-high-reward-for-severe-depression.md"
ARTICLE_PAGE = "/posts/ketamine-therapy-high-risk-high-reward-for-severe-depression/"
OTHER_PAGE = "/posts/new-faces-proteas-announce-test-debutants/"
START = 1_800_000_000  # 2027-01-15, a clock the test moves by hand


class Clock:
    """An injected wall clock (seconds since the epoch); waiting on it moves it."""

    def __init__(self, now: float = START):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _app(content_dir: Path, state_dir: Path, clock: Clock):
    return create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0, "CLOCK": clock})


def _last_modified(app, path: str) -> int:
    return int(parsedate_to_datetime(app.test_client().get(path).headers["Last-Modified"]).timestamp())


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


EDITS = {
    # name: (edit of the content folder, documents whose bytes change, a document whose bytes do not)
    "typo in the article body": (
        lambda d: _edit(d / ARTICLE, "groundbreaking", "ground-breaking"),
        ["/feed.xml", "/atom.xml", "/article/feed.json", ARTICLE_PAGE],
        OTHER_PAGE,
    ),
    "newest post deleted": (
        lambda d: (d / ARTICLE).unlink(),
        ["/feed.xml", "/article/atom.xml", "/"],
        OTHER_PAGE,
    ),
    "post moved to another section": (
        lambda d: _edit(d / "posts/new-faces-proteas-announce-test-debutants.md", "section: featured", "section: latest"),
        ["/featured/feed.xml", "/latest/atom.xml", "/feed.json", OTHER_PAGE],
        ARTICLE_PAGE,
    ),
    "site title changed": (
        lambda d: _edit(d / "site.yaml", "title: Best Website", "title: Better Website"),
        ["/feed.xml", "/featured/feed.json", ARTICLE_PAGE, OTHER_PAGE],
        None,
    ),
}


@pytest.mark.parametrize("edit", EDITS)
def test_last_modified_advances_exactly_when_a_documents_bytes_change(content_dir, state_dir, edit):
    change, changed, unchanged = EDITS[edit]
    clock = Clock()
    app = _app(content_dir, state_dir, clock)
    client = app.test_client()
    before = {path: client.get(path) for path in [*changed, unchanged] if path}
    for response in before.values():
        assert response.headers["Last-Modified"] == http_date(START)  # first seen now, not an editorial date
    clock.now += 3600
    change(content_dir)
    assert app.extensions["feedsvc"].refresh()
    for path in changed:
        response = client.get(path)
        assert response.data != before[path].data
        assert response.headers["Last-Modified"] == http_date(START + 3600), path  # never later than now, never earlier
        # a poller that revalidates with If-Modified-Since alone gets the new bytes
        assert client.get(path, headers={"If-Modified-Since": before[path].headers["Last-Modified"]}).status_code == 200
    if unchanged:
        assert client.get(unchanged).headers["Last-Modified"] == http_date(START)
        assert client.get(unchanged, headers={"If-Modified-Since": http_date(START)}).status_code == 304


def test_last_modified_never_goes_backwards_nor_ahead_of_the_clock(content_dir, state_dir):
    """RFC 9110 §8.8.2.1: a Last-Modified later than the response's Date must not be sent; and a validator that went back
    would make caches keep the newer bytes as if older."""
    clock = Clock()
    app = _app(content_dir, state_dir, clock)
    publisher, client = app.extensions["feedsvc"], app.test_client()

    def publish(title: str) -> None:
        write_entry(content_dir, "moving.md", f'id: "urn:example:moving"\ntitle: {title}\ndate: 2025-07-08T10:00:00Z\nsection: latest')
        assert publisher.refresh()

    assert _last_modified(app, "/feed.xml") == START
    publish("Within the same second")  # the clock stands still: the stamp waits for the next second, not ahead of it
    assert _last_modified(app, "/feed.xml") == START + 1 <= clock.now
    clock.now = START - 3600  # the clock is set back an hour (NTP)
    publish("While the clock is behind")
    assert "Last-Modified" not in client.get("/feed.xml").headers  # a time after the clock's would be in the future
    assert client.get("/feed.xml").headers["ETag"]  # the entity tag still validates
    assert "Last-Modified" not in client.get(OTHER_PAGE).headers  # its time, START, is ahead of the clock too
    clock.now = START + 7200
    publish("Once the clock caught up")
    assert _last_modified(app, "/feed.xml") == START + 7200  # later than every time before
    assert _last_modified(app, OTHER_PAGE) == START  # unchanged bytes kept their time all along


def test_a_restart_on_unchanged_content_keeps_every_last_modified(content_dir, state_dir):
    first = _app(content_dir, state_dir, Clock())
    paths = sorted(first.extensions["feedsvc"].current.documents)
    before = {path: first.test_client().get(path).headers["Last-Modified"] for path in paths}
    later = _app(content_dir, state_dir, Clock(START + 86400))  # a deploy the next day
    assert {path: later.test_client().get(path).headers["Last-Modified"] for path in paths} == before


def test_a_reloaded_worker_serves_what_a_fresh_start_serves_after_an_offset_rewrite(content_dir, tmp_path):
    # the same instant written with another UTC offset: the renderers print the offset, so bytes change
    app = _app(content_dir, tmp_path / "state-a", Clock())
    post = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    _edit(post, "date: Jul 07, 2025 17:30", "date: 2025-07-07T19:30:00+02:00")
    assert app.extensions["feedsvc"].refresh()
    fresh = _app(content_dir, tmp_path / "state-b", Clock())
    reloaded, started = app.extensions["feedsvc"].current, fresh.extensions["feedsvc"].current
    assert reloaded.paths() == started.paths()
    for path in sorted(started.paths()):
        assert reloaded.document(path).body == started.document(path).body, path
    assert b"2025-07-07T19:30:00+02:00" in started.document("/feed.json").body


def test_two_instances_on_different_paths_serve_the_same_bytes(content_dir, tmp_path):
    copy = shutil.copytree(content_dir, tmp_path / "elsewhere" / "site-content")
    first = _app(content_dir, tmp_path / "state-a", Clock()).extensions["feedsvc"].current
    second = _app(copy, tmp_path / "state-b", Clock(START + 7)).extensions["feedsvc"].current
    assert first.version == second.version
    for path in sorted(first.paths()):
        assert first.document(path).etag == second.document(path).etag, path


def _export_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_start_on_another_day_writes_the_same_bytes(content_dir, tmp_path):
    require(shutil.which("faketime") is not None, "faketime is not installed (apt-get install faketime)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    outputs = []
    for day, faked in (("today", []), ("another day", ["faketime", "2031-03-29 01:30:00"])):
        out = tmp_path / day.replace(" ", "-")
        subprocess.run(
            [*faked, sys.executable, "-m", "feedsvc", "build", str(out), "--content", str(content_dir)],
            cwd=ROOT,
            env={**env, "FEEDSVC_STATE_DIR": str(tmp_path / f"state-{out.name}")},
            check=True,
            capture_output=True,
        )
        outputs.append(_export_files(out.resolve()))
    assert outputs[0] == outputs[1]
    # and faketime really moved the clock: the files' times (Last-Modified) are that day's
    assert (tmp_path / "another-day" / "feed.xml").stat().st_mtime > 1_900_000_000


@pytest.mark.integration
def test_last_modified_is_never_later_than_date_when_edits_come_within_a_second(content_dir, tmp_path):
    with running_service(content_dir, tmp_path, env={"FEEDSVC_STATE_DIR": str(tmp_path / "state")}) as (base, _):
        seen = []
        for title in ("First", "Second", "Third"):
            write_entry(content_dir, "quick.md", f'id: "urn:example:quick"\ntitle: {title}\ndate: 2025-07-08T10:00:00Z\nsection: latest')
            for _ in range(200):
                _, headers, body = fetch(base + "/feed.xml")
                if title.encode() in body:
                    break
                time.sleep(0.02)
            assert title.encode() in body
            last_modified, date = parsedate_to_datetime(headers["Last-Modified"]), parsedate_to_datetime(headers["Date"])
            assert last_modified <= date
            seen.append(last_modified)
        assert seen == sorted(set(seen))


@pytest.mark.integration
def test_nginx_validators_change_after_a_same_length_typo_fix_in_the_export(content_dir, tmp_path):
    require(shutil.which("nginx") is not None, "nginx is not installed (apt-get install nginx)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env["FEEDSVC_STATE_DIR"] = str(tmp_path / "state")
    export = tmp_path / "export"

    def build():
        command = [sys.executable, "-m", "feedsvc", "build", str(export), "--content", str(content_dir)]
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)

    build()
    config = subprocess.run(
        [sys.executable, "-m", "feedsvc", "nginx-config"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    (tmp_path / "static.conf").write_text(config.stdout)
    with running_nginx(tmp_path, "access_log off;", f"root {export};\ninclude {tmp_path}/static.conf;", "/feed.xml") as static:
        _, before, body = fetch(static + "/feed.xml")
        _edit(content_dir / ARTICLE, "gamble", "gambol")  # same length: nginx's ETag is mtime + size
        build()
        _, after, new_body = fetch(static + "/feed.xml")
        assert len(new_body) == len(body) and new_body != body
        assert after["ETag"] != before["ETag"] and after["Last-Modified"] != before["Last-Modified"]
        assert fetch(static + "/feed.xml", {"If-None-Match": before["ETag"]})[0] == 200
        assert fetch(static + "/feed.xml", {"If-Modified-Since": before["Last-Modified"]})[0] == 200
        assert fetch(static + "/feed.xml", {"If-None-Match": after["ETag"]})[0] == 304
