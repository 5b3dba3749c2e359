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
from watchfiles._rust_notify import RustNotify

from feedsvc import content as content_module
from feedsvc import publisher as publisher_module
from feedsvc.content import rescan_folder, scan_folder
from feedsvc.publisher import Publisher
from feedsvc.store import Store
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
    yield directory
    for path in directory.rglob("*"):  # let tmp_path's cleanup in again
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o755)


def _events_of(directory: Path, change) -> set[str]:
    """The paths real inotify names for ``change`` (watching the folder as the publisher does)."""
    with RustNotify([os.path.realpath(directory)], False, False, 300, True, False) as notify:
        change(directory)
        paths: set[str] = set()
        while True:
            result = notify.watch(200, 50, 500, None)
            if not isinstance(result, set):
                return paths
            paths.update(path for _, path in result)


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
    for n in range(30):
        _post(folder, f"many-{n}.md", 30 + n)
    before = scan_folder(folder)
    changed = _events_of(folder, _edit)
    looked_at = set()
    real_lstat = os.lstat
    monkeypatch.setattr(content_module.os, "lstat", lambda path: looked_at.add(os.fspath(path)) or real_lstat(path))
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
    accepted = []  # the versions the store made current (stamped), in order
    real_last_modified = publisher.store.last_modified

    def last_modified(etags, version, still_current=None):
        stamps = real_last_modified(etags, version, still_current)
        if still_current is not None:
            accepted.append(version)
        return stamps

    monkeypatch.setattr(publisher.store, "last_modified", last_modified)
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
    real_look = content_module._changed_entry_files
    monkeypatch.setattr(content_module, "_changed_entry_files", lambda *args: quick_looks.append(real_look(*args)) or quick_looks[-1])
    publisher = Publisher(content_dir, store=Store(state_dir))
    notify, events, _ = publisher_module.open_watch(content_dir)
    with notify:
        events.everything()  # as the safety net does
        assert not publisher.refresh(events)  # nothing changed
        edited = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
        edited.write_text(edited.read_text().replace("New Faces", "Newer Faces"))
        while isinstance(result := notify.watch(200, 50, 500, None), set):
            events.add(result)
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


def test_a_worker_starts_from_the_look_serve_s_check_just_made_and_the_watcher_then_looks_at_every_file(
    content_dir, state_dir, monkeypatch
):
    """`serve` looks at every file for its check; a worker whose kept load has that very look takes it instead of a second one.

    What changed between that look and the worker's watch sent no event the worker saw: the watcher's first look covers every file.
    """
    Publisher(content_dir, store=Store(state_dir)).stop()  # keeps its load (and that load's scan) in the state folder
    checked = publisher_module.fingerprint(content_dir, scan_folder(content_dir))  # what serve's check saw
    edited = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    edited.write_text(edited.read_text().replace("New Faces", "Newer Faces"))  # saved after the check, before the worker watched
    full_scans = _counting_full_scans(monkeypatch)
    publisher = Publisher(content_dir, store=Store(state_dir), watch_every=0.05, checked_scan=checked)
    try:
        deadline = time.monotonic() + 10
        while not any(entry.title.startswith("Newer Faces") for entry in publisher.current.content.entries):
            assert time.monotonic() < deadline, "the edit made before the watch started was never published"
            time.sleep(0.02)
        assert len(full_scans) == 1  # the watcher's, none at the start
    finally:
        publisher.stop()


def test_a_worker_whose_kept_load_is_not_what_the_check_saw_looks_at_every_file(content_dir, state_dir, monkeypatch):
    Publisher(content_dir, store=Store(state_dir)).stop()
    edited = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    edited.write_text(edited.read_text().replace("New Faces", "Newer Faces"))  # saved before the check
    checked = publisher_module.fingerprint(content_dir, scan_folder(content_dir))
    full_scans = _counting_full_scans(monkeypatch)
    publisher = Publisher(content_dir, store=Store(state_dir), checked_scan=checked)
    assert len(full_scans) == 1  # the start's own look: the kept one is older than the check's
    assert any(entry.title.startswith("Newer Faces") for entry in publisher.current.content.entries)


def test_only_a_worker_started_soon_after_serve_s_check_relies_on_its_look(monkeypatch):
    """granian respawns a crashed worker with the same environment, maybe hours later: by then the folder may have changed."""
    for _ in range(1000):  # at once, too (a time rounded up to the millisecond was in the future half the time)
        assert publisher_module.recent_handover(publisher_module.handover_note("f1ngerpr1nt")) == "f1ngerpr1nt"
    note = publisher_module.handover_note("f1ngerpr1nt")
    later = time.time() + publisher_module.HANDOVER_SECONDS + 1
    monkeypatch.setattr(publisher_module.time, "time", lambda: later)
    assert publisher_module.recent_handover(note) is None
    for garbage in (None, "", "f1ngerpr1nt", "f1ngerpr1nt soon", f" {later}"):
        assert publisher_module.recent_handover(garbage) is None
