"""Live reloads: new versions are swapped in whole; broken edits keep the last good version."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, write_entry

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

    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(content_dir.parent / "state"), "RELOAD_INTERVAL": 0.1})
    publisher = app.extensions["feedsvc"]
    try:
        write_entry(content_dir, "brand-new.md", NEW_POST)
        deadline = time.monotonic() + 5
        while b"A brand new post" not in app.test_client().get("/feed.xml").data:
            assert time.monotonic() < deadline, "edit not served within 5 s"
            time.sleep(0.05)
    finally:
        publisher.stop()


def test_a_failure_while_rendering_is_a_content_problem_and_changes_nothing_served(publisher, app, fail_rendering):
    client = app.test_client()
    before = client.get("/feed.xml")
    status_before = publisher.status()
    fail_rendering("brand-new")
    write_entry(publisher.directory, "brand-new.md", NEW_POST)
    assert publisher.refresh() is False
    status = publisher.status()
    assert status["status"] == "degraded"
    assert status["error"] == ["posts/brand-new.md: file: cannot be rendered: OverflowError: date value out of range"]
    # the transaction did not happen: same version, same load time, same bytes
    assert status["content_version"] == status_before["content_version"]
    assert status["last_successful_load"] == status_before["last_successful_load"]
    assert client.get("/feed.xml").data == before.data
    # retried on the next change
    fail_rendering(None)
    _bump_mtime(publisher.directory / "posts" / "brand-new.md")
    assert publisher.refresh() is True
    assert publisher.status()["status"] == "ok"
    assert b"A brand new post" in client.get("/feed.xml").data


def test_an_editors_lock_file_does_not_stop_the_save_being_served(content_dir, state_dir):
    from feedsvc import create_app

    lock = content_dir / "posts" / ".#brand-new.md"
    lock.symlink_to("editor@host.4242:1700000000")  # Emacs: a dangling link while the buffer is modified
    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0.05})
    publisher = app.extensions["feedsvc"]
    try:
        write_entry(content_dir, "brand-new.md", NEW_POST)
        lock.unlink()  # saved: the lock goes
        deadline = time.monotonic() + 5
        while b"A brand new post" not in app.test_client().get("/feed.xml").data or publisher.status()["status"] != "ok":
            assert time.monotonic() < deadline, publisher.status()
            time.sleep(0.05)
    finally:
        publisher.stop()


def test_a_save_made_while_the_service_started_is_served_without_waiting_for_the_safety_net(content_dir, state_dir):
    from feedsvc import create_app

    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0})
    publisher = app.extensions["feedsvc"]
    write_entry(content_dir, "brand-new.md", NEW_POST)  # after the content was read, before the watch began
    publisher.watch(0.05)
    try:
        deadline = time.monotonic() + 5  # the safety net would take 30 s
        while b"A brand new post" not in app.test_client().get("/feed.xml").data:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        publisher.stop()


def _wait_for(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_healthz_is_degraded_while_a_reload_is_stuck_and_recovers(content_dir, state_dir, monkeypatch):
    import threading

    import feedsvc.live.publisher
    from feedsvc import create_app

    monkeypatch.setattr(feedsvc.live.publisher, "WATCH_STALL_SECONDS", 0.5)
    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0.05})
    publisher = app.extensions["feedsvc"]
    client = app.test_client()
    released = threading.Event()
    real_build = publisher._build

    def hung_build(*args):  # as a read from a hung network file system would
        released.wait(30)
        return real_build(*args)

    monkeypatch.setattr(publisher, "_build", hung_build)
    try:
        assert client.get("/healthz").get_json()["status"] == "ok"
        write_entry(content_dir, "brand-new.md", NEW_POST)
        _wait_for(lambda: client.get("/healthz").get_json()["status"] == "degraded")
        assert client.get("/healthz").get_json()["error"][0].startswith("watcher: has not finished a look at the folder for")
        released.set()
        _wait_for(lambda: client.get("/healthz").get_json()["status"] == "ok")
        assert b"A brand new post" in client.get("/feed.xml").data
    finally:
        released.set()
        publisher.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the thread dies on purpose
def test_healthz_is_degraded_when_the_watcher_has_died(content_dir, state_dir, monkeypatch):
    from feedsvc import create_app

    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0.05})
    publisher = app.extensions["feedsvc"]

    class Crash(BaseException):
        """Not an Exception: the watcher's own guard does not catch it."""

    def die():
        raise Crash

    monkeypatch.setattr(publisher, "refresh", die)
    write_entry(content_dir, "brand-new.md", NEW_POST)
    _wait_for(lambda: not publisher._watcher.is_alive())
    status = app.test_client().get("/healthz").get_json()
    assert status["status"] == "degraded"
    assert status["error"] == ["watcher: stopped; edits are not published until the service restarts"]


def test_a_missing_folder_is_reported_and_followed_again_when_it_returns(content_dir, state_dir):
    from feedsvc import create_app

    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0.05})
    publisher = app.extensions["feedsvc"]
    client = app.test_client()
    try:
        content_dir.rename(content_dir.with_name("away"))
        # the watcher may report losing the folder before the reload records that it is gone: wait for the reload's word
        _wait_for(lambda: any("folder: does not exist" in line for line in client.get("/healthz").get_json()["error"] or ()))
        assert client.get("/healthz").get_json()["status"] == "degraded"
        assert client.get("/feed.xml").status_code == 200  # the last good version
        content_dir.with_name("away").rename(content_dir)
        write_entry(content_dir, "brand-new.md", NEW_POST)
        _wait_for(lambda: b"A brand new post" in client.get("/feed.xml").data)
        _wait_for(lambda: client.get("/healthz").get_json()["status"] == "ok")  # and the watcher follows the folder again
    finally:
        publisher.stop()


def test_the_safety_net_sees_added_removed_and_renamed_files_without_statting_them(content_dir):
    from feedsvc.live.watcher import folders_signature

    before = folders_signature(content_dir)
    path = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    path.write_text(path.read_text() + "\nOne more line.\n")  # in place: inotify's to report, not the net's
    assert folders_signature(content_dir) == before
    time.sleep(0.01)
    path.rename(path.with_name("renamed.md"))
    after_rename = folders_signature(content_dir)
    assert after_rename != before
    time.sleep(0.01)
    write_entry(content_dir, "brand-new.md", NEW_POST)
    assert folders_signature(content_dir) != after_rename


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_settling_after_a_build_gives_freed_heap_memory_back_to_the_system():
    from feedsvc.live import memory

    # 60 MB of 1 KB objects (past pymalloc's 512 bytes: glibc's heap), every hundredth kept: what a
    # build leaves behind, freed pages between live ones that free() alone never returns
    garbage = [bytes(1024) + i.to_bytes(4, "little") for i in range(60_000)]
    kept = garbage[::100]
    del garbage
    before = _rss_kib()
    memory.settle_heap()
    assert before - _rss_kib() > 20_000, (before, _rss_kib())
    assert len(kept) == 600


# In a fresh process (mallopt settings are process-wide): what glibc does with a freed large block's
# successors and with eight threads' allocations, with and without ``tune_heap``.
_HEAP_PROBE = """
import ctypes, ctypes.util, sys, threading
if sys.argv[1] == "tuned":
    from feedsvc.live.memory import tune_heap
    tune_heap()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
freed = bytes(4 * 1024 * 1024)
del freed  # glibc's threshold for mapping a block now grows past 4 MB
mapped = libc.mallinfo2().hblks
# say, archive feeds rendered on request; several, since one may fit a free chunk the imports left in the heap
documents = [bytes(512 * 1024) for _ in range(8)]
print(libc.mallinfo2().hblks - mapped, flush=True)
barrier = threading.Barrier(8)
def allocate():
    barrier.wait()
    kept = [bytes(2000) for _ in range(100)]  # past pymalloc's 512 bytes: glibc's heap
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()  # one "Arena N:" paragraph per arena, on stderr
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_tuning_the_heap_maps_large_blocks_and_bounds_the_arenas():
    def probe(mode: str) -> tuple[int, int]:
        done = subprocess.run([sys.executable, "-c", _HEAP_PROBE, mode], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
        return int(done.stdout.split()[0]), done.stderr.count("Arena ")

    plain_mapped, plain_arenas = probe("plain")
    tuned_mapped, tuned_arenas = probe("tuned")
    assert plain_mapped == 0 and tuned_mapped >= 6, (
        plain_mapped,
        tuned_mapped,
    )  # untuned, a freed 512 KB document leaves a hole in the heap
    assert plain_arenas > 2 >= tuned_arenas, (plain_arenas, tuned_arenas)


def test_a_publisher_tunes_the_heap_before_its_first_load(content_dir, monkeypatch):
    from feedsvc.live import publisher as publisher_module
    from feedsvc.live.publisher import Publisher

    order = []
    monkeypatch.setattr(publisher_module, "tune_heap", lambda: order.append("tuned"))
    real_load = publisher_module.load_content
    monkeypatch.setattr(publisher_module, "load_content", lambda *a, **k: order.append("loaded") or real_load(*a, **k))
    Publisher(content_dir)
    assert order[:2] == ["tuned", "loaded"]


def test_an_idle_watcher_hands_freed_memory_back_every_safety_net_round(content_dir, state_dir, monkeypatch):
    from feedsvc.live import memory
    from feedsvc.live import publisher as publisher_module
    from feedsvc.live.publisher import Publisher
    from feedsvc.state import Store

    trims = []
    real_trim = memory._MALLOC_TRIM
    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: trims.append(pad) or (real_trim(pad) if real_trim else 0))
    monkeypatch.setattr(publisher_module, "SAFETY_NET_SECONDS", 0.2)
    watched = Publisher(content_dir, store=Store(state_dir), watch_every=0.05)
    try:
        started = len(trims)
        assert started >= 1  # the start's build was settled
        time.sleep(1.5)  # nothing changes: only the safety net runs, several times
        assert len(trims) - started >= 3, trims
    finally:
        watched.stop()


def test_healthz_names_no_absolute_path_of_the_machine(content_dir, state_dir, monkeypatch):
    """/healthz is public: a failure whose message carries the content or state folder's path names files relative to it."""
    from feedsvc import create_app
    from feedsvc.live import publisher as publisher_module

    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0})
    broken = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"

    def failing_load(*args, **kwargs):
        raise OSError(f"[Errno 5] Input/output error: '{broken}' (state in {state_dir})")

    monkeypatch.setattr(publisher_module, "load_content", failing_load)
    write_entry(content_dir, "brand-new.md", NEW_POST)
    assert not app.extensions["feedsvc"].refresh()
    health = app.test_client().get("/healthz").get_data(as_text=True)
    assert "posts/new-faces-proteas-announce-test-debutants.md" in health
    assert str(content_dir) not in health and str(state_dir) not in health and str(content_dir.parent) not in health
