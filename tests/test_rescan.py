"""A reload rescans only the paths inotify named: the result must be the full scan's, whatever the change."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from watchfiles import watch

from feedsvc.live import publisher as publisher_module
from feedsvc.live.publisher import Publisher
from feedsvc.live.watcher import FolderWatch
from feedsvc.source import loader as loader_module
from feedsvc.source import scan as scan_module
from feedsvc.source.scan import rescan_folder, scan_folder
from feedsvc.state import Store
from tests.conftest import write_entry

POST = 'id: "urn:uuid:8d2b7a1e-0c4f-4b7e-9d1a-5e6f7a8b9c{n:02d}"\ntitle: Post {n}\ndate: 2025-07-0{day}T08:00:00Z\nsection: latest'


def _post(directory: Path, name: str, n: int) -> Path:
    return write_entry(directory, name, POST.format(n=n, day=1 + n % 9), f"Body {n}.")


def _edit(directory: Path) -> None:
    path = directory / "posts" / "a.md"
    path.write_text(path.read_text() + "\nMore.\n")


def _add(directory: Path) -> None:
    _post(directory, "new.md", 20)


def _delete(directory: Path) -> None:
    (directory / "posts" / "b.md").unlink()


def _rename(directory: Path) -> None:
    (directory / "posts" / "b.md").rename(directory / "posts" / "renamed.md")


def _save_like_an_editor(directory: Path) -> None:  # write a swap file, write a temporary copy, rename it over the file
    (directory / "posts" / ".a.md.swp").write_bytes(b"swap")
    temporary = directory / "posts" / "a.md~"
    temporary.write_text((directory / "posts" / "a.md").read_text().replace("Post 1", "Post one"))
    temporary.rename(directory / "posts" / "a.md")
    (directory / "posts" / ".a.md.swp").unlink()


def _new_folder(directory: Path) -> None:
    (directory / "posts" / "2026").mkdir()
    _post(directory, "2026/deep.md", 21)


def _delete_folder(directory: Path) -> None:
    shutil.rmtree(directory / "posts" / "old")


def _rename_folder(directory: Path) -> None:
    (directory / "posts" / "old").rename(directory / "posts" / "older")


def _edit_a_linked_file(directory: Path) -> None:  # the link's name is never in the events, only its target's
    target = directory / "posts" / "old" / "c.md"
    target.write_text(target.read_text() + "\nLinked edit.\n")


def _link_out(directory: Path) -> None:
    (directory / "posts" / "out.md").symlink_to("/etc/hostname")


def _fifo(directory: Path) -> None:
    os.mkfifo(directory / "posts" / "pipe.md")


def _readme_and_backup(directory: Path) -> None:
    (directory / "posts" / "README.md").write_text("notes")
    (directory / "posts" / "#a.md#").write_text("autosave")


def _unreadable_folder(directory: Path) -> None:
    (directory / "posts" / "old").chmod(0)


def _non_utf8_name(directory: Path) -> None:
    (directory / "posts" / os.fsdecode(b"bad-\xff.md")).write_text("x")


CHANGES = [
    _edit,
    _add,
    _delete,
    _rename,
    _save_like_an_editor,
    _new_folder,
    _delete_folder,
    _rename_folder,
    _edit_a_linked_file,
    _link_out,
    _fifo,
    _readme_and_backup,
    _unreadable_folder,
    _non_utf8_name,
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "content"
    (directory / "posts" / "old").mkdir(parents=True)
    (directory / "site.yaml").write_text("id: urn:example:site\ntitle: T\ndescription: D\nbase_url: https://example.org\n")
    _post(directory, "a.md", 1)
    _post(directory, "b.md", 2)
    _post(directory, "old/c.md", 3)
    (directory / "posts" / "linked.md").symlink_to("old/c.md")
    an_hour_ago = time.time() - 3600  # not racy (files changed within RACY_NS are looked at again by every rescan)
    for path in directory.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago), follow_symlinks=False)
    yield directory
    for path in directory.rglob("*"):  # let tmp_path's cleanup in again
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def _events_of(directory: Path, change) -> set[str]:
    """The paths real inotify names for ``change`` (watching the folder as the publisher does, with watchfiles)."""
    paths: set[str] = set()
    changed = False
    for batch in watch(os.path.realpath(directory), watch_filter=None, debounce=200, step=50, rust_timeout=300, yield_on_timeout=True):
        if not changed:  # the first batch (empty, a timeout) says the watch is in place
            change(directory)
            changed = True
        elif not batch:
            return paths
        paths.update(path for _, path in batch)
    return paths


@pytest.mark.parametrize("change", CHANGES, ids=[change.__name__.strip("_") for change in CHANGES])
def test_a_rescan_of_the_paths_inotify_names_equals_a_full_scan(folder, change):
    before = scan_folder(folder)
    assert "posts/linked.md" in before.links
    if change is _non_utf8_name:  # watchfiles cannot name it (its watch raises and the watcher rescans everything): as inotify does
        change(folder)
        changed = {os.path.join(os.path.realpath(folder), "posts", os.fsdecode(b"bad-\xff.md"))}
    else:
        changed = _events_of(folder, change)
    assert rescan_folder(folder, before, changed) == scan_folder(folder)
    # a full scan given the records before keeps those of unchanged regular files, and finds the same
    again = scan_folder(folder, before.files)
    assert again == scan_folder(folder)
    kept = {record.name for record in before.files if record.name not in before.links}
    for record in again.files:
        assert (record in before.files and record.name in kept) == any(record is earlier for earlier in before.files)


def test_a_rescan_stats_only_the_named_paths_and_the_links(folder, monkeypatch):
    an_hour_ago = time.time() - 3600
    for n in range(30):
        os.utime(_post(folder, f"many-{n}.md", 30 + n), (an_hour_ago, an_hour_ago))  # not racy: nothing to look at again
    before = scan_folder(folder)
    changed = _events_of(folder, _edit)
    looked_at = set()
    real_lstat = os.lstat
    monkeypatch.setattr(scan_module.os, "lstat", lambda path: looked_at.add(os.fspath(path)) or real_lstat(path))
    after = rescan_folder(folder, before, changed)
    assert after != before
    files_looked_at = {Path(path).relative_to(folder).as_posix() for path in looked_at if path.endswith(".md")}
    # the edited file, the link and (resolving the link) its target: none of the 32 others
    assert files_looked_at == {"posts/a.md", "posts/linked.md", "posts/old/c.md"}


def test_one_full_scan_serves_a_start_its_check_the_watcher_and_an_edit(content_dir, state_dir, monkeypatch):
    """The start's build is checked against inotify events (no second scan), the watcher carries on from the same watch."""
    full_scans = []
    real_scan = publisher_module.scan_folder
    monkeypatch.setattr(
        publisher_module, "scan_folder", lambda directory, *known: full_scans.append(directory) or real_scan(directory, *known)
    )
    publisher = Publisher(content_dir, store=Store(state_dir), watch_every=0.05)
    try:
        deadline = time.monotonic() + 10
        write_entry(content_dir, "brand-new.md", POST.format(n=40, day=8), "Fresh.")
        while not any(entry.title == "Post 40" for entry in publisher.current.content.entries):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert len(full_scans) == 1
    finally:
        publisher.stop()


def test_an_edit_saved_while_a_version_builds_is_not_stamped_as_that_version(content_dir, state_dir, monkeypatch):
    """The truth check of a watched build is "no inotify event since the folder was read": an edit in between makes it stale."""
    publisher = Publisher(content_dir, store=Store(state_dir))
    building, edited = threading.Event(), threading.Event()
    real_build = publisher._build

    def build_while_editing(*args):
        if not edited.is_set():
            building.set()
            edited.wait(10)
            time.sleep(0.2)  # the kernel has reported the write by now
        return real_build(*args)

    monkeypatch.setattr(publisher, "_build", build_while_editing)
    accepted = []  # the versions the state made current (stamped), in order
    real_last_modified = publisher.store.stamps.last_modified

    def last_modified(etags, version, still_current=None, also=None):
        stamps = real_last_modified(etags, version, still_current, also)
        if still_current is not None:
            accepted.append(version)
        return stamps

    monkeypatch.setattr(publisher.store.stamps, "last_modified", last_modified)
    publisher.watch(0.05)
    try:
        write_entry(content_dir, "first.md", POST.format(n=41, day=8), "First.")
        assert building.wait(10)
        write_entry(content_dir, "second.md", POST.format(n=42, day=9), "Second.")
        edited.set()
        deadline = time.monotonic() + 10
        while {"Post 41", "Post 42"} - {entry.title for entry in publisher.current.content.entries}:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # the version with only the first post was built but never made current: the edit in between made it stale
        assert accepted == [publisher.current.version]
    finally:
        publisher.stop()


def _inotify_instances() -> int:
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor, closed by now
            found += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
    return found


def test_a_publisher_that_does_not_watch_keeps_no_inotify_instance(content_dir, state_dir):
    """The start's watch is closed unless a watcher takes it over: 128 instances per user would run out (they did, in this suite)."""
    gc.collect()  # earlier tests' watchers, closed when collected
    before = _inotify_instances()
    publishers = [Publisher(content_dir, store=Store(state_dir)) for _ in range(5)]
    base = _inotify_instances()
    assert base <= before
    watched = Publisher(content_dir, store=Store(state_dir), watch_every=0.05)
    try:
        deadline = time.monotonic() + 5
        while _inotify_instances() != base + 1:  # the start's watch, now the watcher's
            assert time.monotonic() < deadline, (_inotify_instances(), base, watched.status())
            time.sleep(0.05)
    finally:
        watched.stop()
        watched._watcher.join(5)
    assert _inotify_instances() == base and len(publishers) == 5


def test_after_a_full_scan_that_finds_nothing_changed_an_edit_is_found_by_identity(content_dir, state_dir, monkeypatch):
    """The safety net's full scan keeps the records the last load shares when nothing changed: the next edit is not a full pass."""
    quick_looks = []
    real_look = loader_module._changed_entry_files
    monkeypatch.setattr(loader_module, "_changed_entry_files", lambda *args: quick_looks.append(real_look(*args)) or quick_looks[-1])
    publisher = Publisher(content_dir, store=Store(state_dir))
    with FolderWatch(content_dir) as events:
        events.everything()  # as the safety net does
        assert not publisher.refresh(events)  # nothing changed
        edited = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
        edited.write_text(edited.read_text().replace("New Faces", "Newer Faces"))
        assert events.wait(5)
        time.sleep(0.1)  # the rest of the save's events
        assert publisher.refresh(events)
    assert [file.name for file in quick_looks[-1]] == ["posts/new-faces-proteas-announce-test-debutants.md"]
    assert publisher.current.pages["/posts/new-faces-proteas-announce-test-debutants/"].title.startswith("Newer Faces")


def test_a_restart_keeps_one_record_per_file(content_dir, state_dir):
    """The scan at a start reuses the kept load's records of unchanged files: 100,000 records are held once, not twice."""
    Publisher(content_dir, store=Store(state_dir)).stop()  # keeps its load in the state folder
    edited = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    edited.write_text(edited.read_text().replace("New Faces", "Newer Faces"))
    publisher = Publisher(content_dir, store=Store(state_dir))
    try:
        remembered = {name: record for name, (record, _, _) in publisher._parsed.files.items()}
        shared = [record.name for record in publisher._scan.files if remembered.get(record.name) is record]
        entry_files = [record.name for record in publisher._scan.files if record.name.endswith(".md")]
        assert len(entry_files) > 5 and shared == entry_files  # the edited file's new record is the memo's too
    finally:
        publisher.stop()


def _counting_full_scans(monkeypatch) -> list[Path]:
    full_scans: list[Path] = []
    real_scan = publisher_module.scan_folder
    monkeypatch.setattr(
        publisher_module, "scan_folder", lambda directory, *known: full_scans.append(directory) or real_scan(directory, *known)
    )
    return full_scans


def test_a_worker_started_at_any_moment_looks_at_every_file_itself(content_dir, state_dir, monkeypatch):
    """No hand-over from `serve`'s check: a worker granian starts hours later publishes what changed since, at its start."""
    Publisher(content_dir, store=Store(state_dir)).stop()  # keeps its load (and that load's scan) in the state folder
    edited = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    edited.write_text(edited.read_text().replace("New Faces", "Newer Faces"))  # saved after that start, before this one
    full_scans = _counting_full_scans(monkeypatch)
    publisher = Publisher(content_dir, store=Store(state_dir), watch_every=0.05)
    try:
        assert any(entry.title.startswith("Newer Faces") for entry in publisher.current.content.entries)  # at its start
        assert len(full_scans) == 1  # the start's own look; the watcher carries on from its events
    finally:
        publisher.stop()


def test_a_file_changed_again_within_its_stats_granularity_is_read_again(content_dir, state_dir):
    """git's racily-clean rule: a file whose mtime is as recent as the look may change without its stat changing."""
    publisher = Publisher(content_dir, store=Store(state_dir))
    path = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    path.write_text(path.read_text())  # saved unchanged just now: its record is RACY
    assert not publisher.refresh()
    assert publisher._scan.racy == ("posts/new-faces-proteas-announce-test-debutants.md",)
    info = path.stat()
    path.write_text(path.read_text().replace("New Faces", "Old Faces"))  # the same size, and
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # the same mtime, as a 1-second file system would show it
    assert publisher.refresh()
    assert b"Old Faces" in publisher.current.documents["/feed.xml"].body
