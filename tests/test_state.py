"""What a node serves is a function of the content, the settings and the code, never of the state folder's history.

Each test puts the state folder in a condition an operator meets (a worker replaced while a file
is broken, an upgrade, a deleted database, a picture replaced under a worker not yet switched, a
copy that keeps size and mtime, two services on one folder, a stop with pings under way, a full or
read-only disk, damage), then compares what the node serves with what a node started on an empty
state folder serves: status, bytes and entity tag of every document. The state may only make
things faster and give Last-Modified times.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pytest
from PIL import Image

import feedsvc.markdown
from feedsvc import create_app
from feedsvc.problems import ContentError
from tests.conftest import ROOT, require, write_entry
from tests.servers import RecordingHub

ARTICLE = "posts/ketamine-therapy-high-risk-high-reward-for-severe-depression.md"
UNKNOWN = ("/no-such-page/", "/posts/no-such-post/", "/media/gone.0123456789ab.png", "/archive/1999-01-01/feed.xml")


def _app(content_dir: Path, state_dir: Path, **config):
    return create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0, **config})


def _answers(app, paths) -> dict[str, tuple]:
    """Status, bytes and entity tag of every path, identity and gzip: what a reader or a cache gets."""
    client = app.test_client()
    found = {}
    for path in paths:
        for coding in ("identity", "gzip"):
            response = client.get(path, headers={"Accept-Encoding": coding})
            assert response.status_code < 500, (path, response.status_code, response.data[:200])
            found[path, coding] = (response.status_code, response.data, response.headers.get("ETag"))
    return found


def _paths(app) -> list[str]:
    return sorted(app.extensions["feedsvc"].current.paths()) + list(UNKNOWN)


def _assert_serves_what_an_empty_state_serves(app, content_dir: Path, tmp_path: Path, **config) -> None:
    reference = _app(content_dir, tmp_path / f"empty-{uuid.uuid4().hex}", **config)
    paths = _paths(reference)
    assert _paths(app) == paths
    served, expected = _answers(app, paths), _answers(reference, paths)
    assert [key for key in expected if served[key] != expected[key]] == []


def _database(state_dir: Path) -> Path:
    return next(state_dir.glob("*.sqlite3"))


def _replace_picture(folder: Path, name: str) -> None:
    """Draw new bytes into a picture of the content folder, the same size, as an editor's export would."""
    path = folder / name
    with Image.open(path) as image:
        image.load()
        redrawn = image.copy()
    redrawn.putpixel((0, 0), (1, 2, 3) if redrawn.mode == "RGB" else redrawn.getpixel((1, 1)))
    redrawn.paste((17, 99, 160) if redrawn.mode == "RGB" else redrawn.getpixel((2, 2)), (0, 0, 8, 8))
    redrawn.save(path)


@pytest.fixture
def newsroom(tmp_path) -> Path:
    folder = tmp_path / "newsroom"
    shutil.copytree(ROOT / "examples" / "newsroom", folder)
    return folder


# --- a worker that starts while a file is broken ---------------------------------------------------


def test_a_worker_started_while_a_file_is_broken_serves_the_last_good_version(content_dir, state_dir, tmp_path):
    """granian replaces a crashed worker at any moment: with a typo in the folder it must not take the site down."""
    serving = _app(content_dir, state_dir)
    good = _answers(serving, _paths(serving))
    broken = write_entry(content_dir, "broken.md", "title: no id")
    assert not serving.extensions["feedsvc"].refresh()  # the running worker keeps the last good version, as ever
    replaced = _app(content_dir, state_dir)  # the new worker: no load of the folder can succeed
    assert _answers(replaced, _paths(serving)) == good  # every document of it: pages on request, pictures, the 404
    health = replaced.test_client().get("/healthz").get_json()
    assert health["status"] == "degraded" and any("posts/broken.md: id: is missing" in line for line in health["error"])
    broken.unlink()  # fixed: the new worker follows the folder again
    assert not replaced.extensions["feedsvc"].refresh()  # the same version: nothing new to serve
    assert replaced.test_client().get("/healthz").get_json()["status"] == "ok"
    _assert_serves_what_an_empty_state_serves(replaced, content_dir, tmp_path)


def test_without_a_kept_version_a_worker_on_a_broken_folder_refuses_to_start(content_dir, state_dir):
    write_entry(content_dir, "broken.md", "title: no id")
    with pytest.raises(ContentError, match=r"posts/broken\.md: id: is missing"):
        _app(content_dir, state_dir)


# --- an upgrade ------------------------------------------------------------------------------------


def _upgrade(monkeypatch, renderer_version: str) -> None:
    """What a markdown-it-py upgrade within pyproject's range does, and a restart then: other heading anchors, a new identity."""
    real_version, real_slug = metadata.version, feedsvc.markdown._heading_slug
    monkeypatch.setattr(metadata, "version", lambda name: renderer_version if name == "markdown-it-py" else real_version(name))
    monkeypatch.setattr(feedsvc.markdown, "_heading_slug", lambda text: "h-" + real_slug(text))
    importlib.import_module("feedsvc.identity").build_identity.cache_clear()  # a new process computes it afresh


def test_an_upgrade_that_renders_differently_serves_what_a_fresh_node_serves(content_dir, state_dir, tmp_path, monkeypatch):
    before = _app(content_dir, state_dir)
    page = "/" + ARTICLE.removesuffix(".md") + "/"
    assert b'id="h-' not in before.test_client().get(page).data
    _upgrade(monkeypatch, "99.0.0")
    after = _app(content_dir, state_dir)  # restarted on the old state
    assert b'id="h-' in after.test_client().get(page).data
    _assert_serves_what_an_empty_state_serves(after, content_dir, tmp_path)
    # a worker replaced while a file is broken does not serve what the old code kept either: the new code's version
    write_entry(content_dir, "broken.md", "title: no id")
    replaced = _app(content_dir, state_dir)
    assert b'id="h-' in replaced.test_client().get(page).data


# --- the database gone, damaged or altered ------------------------------------------------------------


def test_deleting_the_database_and_keeping_the_side_files_is_safe(content_dir, state_dir, tmp_path, capsys):
    from feedsvc.__main__ import main

    _app(content_dir, state_dir)
    assert list(state_dir.glob("*.pickle"))  # the side files a restart starts from
    _database(state_dir).unlink()  # an operator's first reflex
    restarted = _app(content_dir, state_dir)
    _assert_serves_what_an_empty_state_serves(restarted, content_dir, tmp_path)
    os.environ["FEEDSVC_STATE_DIR"] = str(state_dir)
    try:
        assert main(["build", str(tmp_path / "export"), "--content", str(content_dir)]) == 0
        _database(state_dir).unlink()
        assert main(["build", str(tmp_path / "export"), "--content", str(content_dir)]) == 0
    finally:
        del os.environ["FEEDSVC_STATE_DIR"]
    assert "problem" not in capsys.readouterr().err


def test_a_parse_altered_in_the_database_is_never_served(content_dir, state_dir, tmp_path):
    _app(content_dir, state_dir)
    database = _database(state_dir)
    with sqlite3.connect(database) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, column in (("parsed_entries", "entry"), ("entry_texts", "html")):
            assert table in tables
            for key, value in db.execute(f"SELECT key, {column} FROM {table}").fetchall():
                altered = value.replace(b"Ketamine", b"Ketamone") if isinstance(value, bytes) else value.replace("ketamine", "ketamone")
                db.execute(f"UPDATE {table} SET {column} = ? WHERE key = ?", (altered, key))
    for side_file in state_dir.glob("*.pickle"):
        side_file.unlink()  # the restart reads every parse from the database
    restarted = _app(content_dir, state_dir)
    assert b"Ketamone" not in restarted.test_client().get("/feed.xml").data
    _assert_serves_what_an_empty_state_serves(restarted, content_dir, tmp_path)


def test_a_damaged_database_is_set_aside_and_serving_goes_on(content_dir, state_dir, tmp_path):
    app = _app(content_dir, state_dir)
    app.extensions["feedsvc"].stop()
    database = _database(state_dir)
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(database.read_bytes())
    assert len(data) > 8 * 4096
    for page in range(2, len(data) // 4096, 2):  # every other page after the schema's: a few damaged pages
        data[page * 4096 + 100 : page * 4096 + 400] = os.urandom(300)
    database.write_bytes(bytes(data))
    restarted = _app(content_dir, state_dir)
    _assert_serves_what_an_empty_state_serves(restarted, content_dir, tmp_path)
    assert list(state_dir.glob("*.damaged-*"))  # kept for a post-mortem, out of the way


def test_a_side_file_altered_on_disk_is_never_served(content_dir, state_dir, tmp_path):
    _app(content_dir, state_dir)
    for side_file in state_dir.glob("*.pickle"):
        data = side_file.read_bytes()
        assert b"Proteas" in data
        side_file.write_bytes(data.replace(b"Proteas", b"Proteaz"))  # a title changed inside it, the same length
    restarted = _app(content_dir, state_dir, START_IN_BACKGROUND=True)  # a worker that answers from the hot set at once
    assert b"Proteaz" not in restarted.test_client().get("/feed.xml").data
    assert restarted.extensions["feedsvc.start"].wait(30)
    _assert_serves_what_an_empty_state_serves(restarted, content_dir, tmp_path)


# --- a picture replaced under a worker that has not switched yet ----------------------------------------


def test_replacing_a_picture_leaves_the_version_still_served_whole(newsroom, state_dir, monkeypatch):
    import feedsvc.state.parses

    monkeypatch.setattr(feedsvc.state.parses, "RECENT_BODIES", 0)  # a busy worker: its memory holds other bodies
    first, second = _app(newsroom, state_dir), _app(newsroom, state_dir)  # two workers of one service
    pages = [path for path in second.extensions["feedsvc"].current.paths() if "market" in path or path.startswith("/archive/2025-03-08")]
    assert "/posts/market-day/" in pages and any(path.endswith("/atom.xml") for path in pages)
    _replace_picture(newsroom, "media/market.webp")
    assert first.extensions["feedsvc"].refresh()  # the first worker switched; the second has not looked yet
    client = second.test_client()
    for path in pages:  # documents rendered on request by the worker still serving the version before
        response = client.get(path)
        assert response.status_code in (200, 404), (path, response.status_code)  # 404: the old picture's bytes are gone
        if not path.startswith("/media/"):
            assert response.status_code == 200, path
    assert second.extensions["feedsvc"].refresh()
    assert second.extensions["feedsvc"].current.version == first.extensions["feedsvc"].current.version


def test_the_version_does_not_depend_on_the_order_pictures_were_loaded_in(newsroom, tmp_path):
    running = _app(newsroom, tmp_path / "running")
    for picture in ("media/market.webp", "media/harbour.jpg", "media/lighthouse.png"):
        _replace_picture(newsroom, picture)
        assert running.extensions["feedsvc"].refresh()
    fresh = _app(newsroom, tmp_path / "fresh")
    assert running.extensions["feedsvc"].current.version == fresh.extensions["feedsvc"].current.version
    _assert_serves_what_an_empty_state_serves(running, newsroom, tmp_path)


# --- an edit that keeps a file's size and mtime ---------------------------------------------------------


def _rewrite_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    """What ``cp -p``, ``rsync -t`` and ``tar x`` do: new bytes, the same length, the old mtime."""
    assert len(old) == len(new)
    info = path.stat()
    path.write_text(path.read_text().replace(old, new, 1))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (info.st_size, info.st_mtime_ns)


def test_an_edit_that_keeps_size_and_mtime_is_published_on_reload_and_restart(content_dir, state_dir, tmp_path):
    app = _app(content_dir, state_dir)
    path = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    _rewrite_keeping_size_and_mtime(path, "New Faces", "Old Faces")
    assert app.extensions["feedsvc"].refresh()
    assert b"Old Faces" in app.test_client().get("/feed.xml").data
    app.extensions["feedsvc"].stop()
    _rewrite_keeping_size_and_mtime(path, "Old Faces", "Odd Faces")  # while the service is down
    restarted = _app(content_dir, state_dir)
    assert b"Odd Faces" in restarted.test_client().get("/feed.xml").data
    _assert_serves_what_an_empty_state_serves(restarted, content_dir, tmp_path)


# --- two services on one folder and one state -------------------------------------------------------------


def test_a_preview_on_the_same_folder_and_state_never_disturbs_the_live_service(content_dir, state_dir, tmp_path):
    hub = RecordingHub()
    try:
        live = _app(content_dir, state_dir, BASE_URL="https://news.example.com", HUB_URL=hub.url)
        preview = _app(content_dir, state_dir, BASE_URL="http://127.0.0.1:8001")  # `serve --port 8001` beside it
        client = live.test_client()
        unchanged = "/posts/new-faces-proteas-announce-test-debutants/"
        times = {path: client.get(path).headers["Last-Modified"] for path in ("/feed.xml", unchanged)}
        assert live.extensions["feedsvc.websub"].wait(30)
        hub.clear()
        time.sleep(1.1)  # a new second: a change now gets a later Last-Modified
        write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-09T10:00:00Z\nsection: latest')
        assert live.extensions["feedsvc"].refresh() and preview.extensions["feedsvc"].refresh()
        assert preview.test_client().get("/sitemap.xml").status_code == 200
        assert client.get(unchanged).headers["Last-Modified"] == times[unchanged]  # the preview's bytes are not the live ones
        assert client.get("/feed.xml").headers["Last-Modified"] != times["/feed.xml"]
        for path in ("/sitemap.xml", "/archive/", "/posts/two-16-year-old-boys-found-dead-on-poynton-railway-line/"):
            assert client.get(path).headers.get("Last-Modified"), path  # documents rendered on request keep theirs
        assert live.extensions["feedsvc.websub"].wait(30)
        assert "https://news.example.com/feed.xml" in hub.topics()  # the preview holds up no ping
        _assert_serves_what_an_empty_state_serves(live, content_dir, tmp_path, BASE_URL="https://news.example.com", HUB_URL=hub.url)
    finally:
        hub.close()


# --- WebSub: a stop with pings under way ----------------------------------------------------------------


def test_pings_under_way_when_a_worker_stops_are_sent_by_the_next_start(content_dir, state_dir):
    hub = RecordingHub()
    unreachable = f"http://127.0.0.1:{_closed_port()}/hub"
    try:
        first = _app(content_dir, state_dir, HUB_URL=hub.url)
        assert first.extensions["feedsvc.websub"].wait(30)
        first.extensions["feedsvc"].stop()
        hub.clear()
        # the next run's hub cannot be reached yet (a restart of the hub, a network fault): its pings are retried
        second = _app(content_dir, state_dir, HUB_URL=unreachable)
        write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-09T10:00:00Z\nsection: latest')
        assert second.extensions["feedsvc"].refresh()
        second.extensions["feedsvc"].stop()  # the service stops while those pings wait for their next try
        _app(content_dir, state_dir, HUB_URL=hub.url)
        # ... and the next start (its hub reachable) sends them: nothing was recorded as told that the hub never accepted
        deadline = time.monotonic() + 30
        while "http://127.0.0.1:8000/feed.xml" not in hub.topics():
            assert time.monotonic() < deadline, hub.topics()
            time.sleep(0.05)
    finally:
        hub.close()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_proc_a_worker_is_alive_while_it_beats(state_dir, monkeypatch):
    """macOS and the BSDs have no /proc: liveness is a heartbeat, and a worker that stopped beating holds up no ping."""
    from feedsvc.state import Store, ledgers

    monkeypatch.setattr(ledgers, "PROC", Path("/no/proc/here"))
    store = Store(state_dir, "live")
    assert store.workers.serving("other", "v1") == []
    assert store.workers.serving("this", "v2", {"t": "a"}) == []  # "other" beat a moment ago and serves v1: wait for it
    with sqlite3.connect(_database(state_dir)) as db:  # "other" stopped beating (its process was killed)
        db.execute("UPDATE workers SET beat = beat - ? WHERE token = 'other'", (ledgers.LIVENESS_SECONDS + 1,))
    assert store.workers.serving("this", "v2", {"t": "a"}) == ["t"]


# --- a full or read-only disk ---------------------------------------------------------------------------


@contextmanager
def _small_disk(path: Path, size: str = "4m"):
    """A tmpfs of ``size`` at ``path``: a disk that can really fill up, or be made read-only."""
    require(os.geteuid() == 0 and shutil.which("mount") is not None, "mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    require(mounted.returncode == 0, f"mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    try:
        with open(filler, "wb", buffering=0) as out:
            while out.write(b"\0" * 65536):
                pass
    except OSError:  # full: as it should be
        pass
    return filler


@pytest.mark.integration
def test_a_full_state_disk_costs_last_modified_times_never_a_document(content_dir, tmp_path, monkeypatch):
    import feedsvc.live.publisher

    monkeypatch.setattr(feedsvc.live.publisher, "HEARTBEAT_SECONDS", 0.2)
    with _small_disk(tmp_path / "disk") as disk:
        app = _app(content_dir, disk / "state", RELOAD_INTERVAL=0.05)
        publisher = app.extensions["feedsvc"]
        try:
            filler = _fill(disk)
            write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-09T10:00:00Z\nsection: latest')
            _until(lambda: b"urn:example:new" in app.test_client().get("/feed.xml").data)
            _assert_serves_what_an_empty_state_serves(app, content_dir, tmp_path)  # every document: no 500, no wrong byte
            health = app.test_client().get("/healthz").get_json()
            assert health["status"] == "degraded" and health["error"][0].startswith("state: "), health
            assert not any(line.startswith("posts/") or line.startswith("(") for line in health["error"])  # not a content problem
            assert "Last-Modified" not in app.test_client().get("/feed.xml").headers
            filler.unlink()  # space freed: the version served gets its times, the problem goes
            _until(lambda: "Last-Modified" in app.test_client().get("/feed.xml").headers)
            _until(lambda: app.test_client().get("/healthz").get_json()["status"] == "ok")
        finally:
            publisher.stop()


@pytest.mark.integration
def test_a_read_only_state_folder_costs_last_modified_times_never_a_document(content_dir, tmp_path):
    state = tmp_path / "state"
    _app(content_dir, state).extensions["feedsvc"].stop()  # written while it could be
    with _small_disk(tmp_path / "read-only") as mount_point:
        subprocess.run(["mount", "--bind", str(state), str(mount_point)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(mount_point)], check=True)
        try:
            write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-09T10:00:00Z\nsection: latest')
            app = _app(content_dir, mount_point)  # a worker started on it: it can read what is there, write nothing
            _assert_serves_what_an_empty_state_serves(app, content_dir, tmp_path)
            health = app.test_client().get("/healthz").get_json()
            assert health["status"] == "degraded" and health["error"][0].startswith("state: "), health
            write_entry(content_dir, "newer.md", 'id: "urn:example:newer"\ntitle: Newer\ndate: 2025-07-10T10:00:00Z\nsection: latest')
            assert app.extensions["feedsvc"].refresh()
            _assert_serves_what_an_empty_state_serves(app, content_dir, tmp_path)
        finally:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _until(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)
