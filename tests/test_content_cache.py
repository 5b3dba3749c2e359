"""The loader's cache in the store: restarts and other workers read, parse and render only what they have not seen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

import feedsvc.problems
import feedsvc.source.fields
import feedsvc.source.loader
import feedsvc.source.scan
from feedsvc.identity import build_identity
from feedsvc.live.publisher import keep_load, kept_load
from feedsvc.problems import ContentError
from feedsvc.source.loader import load_content
from feedsvc.state import Store
from feedsvc.state.parses import ParseStore
from tests.conftest import ROOT, write_entry


@pytest.fixture
def reads(monkeypatch):
    """Names of the files the loader reads (the real reader, counted)."""
    seen: list[str] = []
    real = feedsvc.source.scan.read_limited

    def counting(path, name, limit, problems):
        seen.append(name)
        return real(path, name, limit, problems)

    monkeypatch.setattr(feedsvc.source.loader, "read_limited", counting)
    return seen


def _touch_later(path):
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10_000_000))


def test_a_second_load_reads_no_unchanged_file_and_gives_the_same_content(content_dir, state_dir, reads):
    first = load_content(content_dir, cache=Store(state_dir).parses)
    assert len(reads) == 1 + len(first.entries)  # site file + every entry
    reads.clear()
    again = load_content(content_dir, cache=Store(state_dir).parses)  # a restart: a new process, the same store
    assert reads == ["site.yaml"]
    assert again == first and again.version == first.version
    assert [e.body_html for e in again.entries] == [e.body_html for e in first.entries]


def test_an_edited_file_is_read_again(content_dir, state_dir, reads):
    store = Store(state_dir)
    load_content(content_dir, cache=store.parses)
    path = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    path.write_text(path.read_text().replace("New Faces", "Newer Faces"))
    _touch_later(path)
    reads.clear()
    content = load_content(content_dir, cache=store.parses)
    assert reads == ["site.yaml", "posts/new-faces-proteas-announce-test-debutants.md"]
    assert any(e.title.startswith("Newer Faces") for e in content.entries)


def test_a_changed_site_file_parses_every_entry_again(content_dir, state_dir):
    store = Store(state_dir)
    first = load_content(content_dir, cache=store.parses)
    site = content_dir / "site.yaml"
    site.write_text(site.read_text() + "base_url: https://elsewhere.example\n")
    second = load_content(content_dir, cache=store.parses)
    assert second.version != first.version
    assert all(new.body_html != "" or old.body_html == "" for new, old in zip(second.entries, first.entries, strict=True))
    assert {e.id for e in second.entries} == {e.id for e in first.entries}
    assert second == load_content(content_dir)  # what an uncached load gives


def test_parsing_on_several_processes_gives_what_one_gives(content_dir, monkeypatch):
    for number in range(30):
        write_entry(
            content_dir,
            f"generated-{number:02d}.md",
            f'id: "urn:uuid:00000000-0000-4000-8000-{number:012d}"\ntitle: Generated {number}\ndate: 2024-01-{number % 28 + 1:02d}T10:00:00Z\nsection: latest',
            body=f"Paragraph {number} with a [link](/posts/x/).\n",
        )
    monkeypatch.setattr(feedsvc.source.loader, "PARALLEL_FROM", 5)
    assert load_content(content_dir, processes=2) == load_content(content_dir, processes=1)
    write_entry(content_dir, "broken-a.md", "title: no id")
    write_entry(content_dir, "broken-b.md", "title: no date either")
    problems = []
    for processes in (1, 2):
        with pytest.raises(ContentError) as raised:
            load_content(content_dir, processes=processes)
        problems.append(raised.value.problems)
    assert problems[0] == problems[1]


def _parse_files_checking_the_collector(*args):
    import gc

    assert gc.isenabled(), "a parsing process must collect its own garbage"
    return _real_parse_files(*args)


_real_parse_files = feedsvc.source.loader._parse_files


def test_a_load_makes_no_collector_pass_in_its_process_while_its_parsers_collect(tmp_path, monkeypatch):
    import gc
    import inspect

    from bench.generate_content import generate

    directory = generate(tmp_path / "generated", 3000)
    passes: list[int] = []

    def count(phase, info):  # the passes made while a load runs (the one its end may trigger is the next code's)
        frame = sys._getframe()
        while frame is not None and frame.f_code is not inspect.unwrap(load_content).__code__:
            frame = frame.f_back
        if phase == "start" and frame is not None:
            passes.append(info["generation"])

    monkeypatch.setattr(feedsvc.source.loader, "PARALLEL_FROM", 5)
    monkeypatch.setattr(feedsvc.source.loader, "_parse_files", _parse_files_checking_the_collector)
    gc.callbacks.append(count)
    try:
        content = load_content(directory, processes=2)
    finally:
        gc.callbacks.remove(count)
    assert len(content.entries) == 3000
    assert passes == []  # each pass walks every entry made so far, and frees none
    assert gc.isenabled()  # and on again afterwards


def test_the_service_restarts_without_parsing(content_dir, state_dir, monkeypatch):
    from feedsvc import create_app

    create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0})
    parsed = []
    real = feedsvc.source.loader._parse_files
    monkeypatch.setattr(feedsvc.source.loader, "_parse_files", lambda site, items: parsed.extend(items) or real(site, items))
    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0})
    assert parsed == []
    assert app.test_client().get("/feed.xml").status_code == 200


def test_with_a_store_bodies_stay_in_it_and_read_back_exactly(content_dir, state_dir):
    from feedsvc.state.parses import StoredBody

    plain = load_content(content_dir)
    for attempt in ("first load", "restart"):
        stored = load_content(content_dir, cache=Store(state_dir).parses)
        assert all(isinstance(entry.body, StoredBody) for entry in stored.entries), attempt  # not held by the worker
        assert [e.body_html for e in stored.entries] == [e.body_html for e in plain.entries], attempt


def test_a_feed_and_an_export_s_pages_load_their_entries_bodies_from_the_store_with_one_query(tmp_path, state_dir):
    from bench.generate_content import generate
    from feedsvc.publication import build_publication

    directory = generate(tmp_path / "generated", 400)  # posts ten minutes apart: ~144 a day
    plain = build_publication(load_content(directory))
    publication = build_publication(load_content(directory, cache=Store(state_dir).parses))
    archives = sorted(path for path in publication.paths() if path.startswith("/archive/") and path.endswith("/atom.xml"))
    archive = archives[1]  # a whole day, not the first one's few entries
    store = next(entry.body.store for entry in publication.content.entries)
    statements: list[str] = []
    store.db._connection().set_trace_callback(statements.append)
    document = publication.document(archive)
    store.db._connection().set_trace_callback(None)
    assert document.body == plain.document(archive).body and document.body.count(b"<entry>") > 50
    assert len([sql for sql in statements if "FROM entry_texts" in sql]) == 1, statements
    # the same for the entry pages an export renders together (``prepare``)
    pages = sorted(path for path in publication.paths() if path.startswith("/posts/"))[:300]
    store = Store(state_dir)  # nothing in memory yet
    publication = build_publication(load_content(directory, cache=store.parses))
    statements.clear()
    store.db._connection().set_trace_callback(statements.append)
    publication.prepare(pages)
    rendered = [publication.document(path).body for path in pages]
    store.db._connection().set_trace_callback(None)
    assert rendered == [plain.document(path).body for path in pages]
    assert len([sql for sql in statements if "FROM entry_texts" in sql]) == 1, statements


def test_with_a_store_summaries_stay_in_it_with_the_body_and_read_back_exactly(content_dir, state_dir):
    import gc

    plain = load_content(content_dir)
    assert any(entry.summary for entry in plain.entries)
    for attempt in ("first load", "restart"):
        stored = load_content(content_dir, cache=Store(state_dir).parses)
        assert [e.summary for e in stored.entries] == [e.summary for e in plain.entries], attempt
        for entry, held in zip(stored.entries, plain.entries, strict=True):
            if held.summary:  # the worker holds no copy of it: the entry refers to no string equal to it
                assert held.summary not in gc.get_referents(entry), (attempt, entry.source)


def test_a_load_holds_one_string_per_file_name_parse_key_section_and_day(content_dir, state_dir, monkeypatch):
    from feedsvc.source.loader import LoadMemo

    store = Store(state_dir)
    load_content(content_dir, cache=store.parses)  # parsed, then stored
    memo = LoadMemo()
    load_content(content_dir, parsed=memo, cache=store.parses)  # a restart: every entry read from the store
    keep_load(store, memo, content_dir, build_identity())
    for attempt, loaded in (("from the store's parses", memo), ("from the kept load", kept_load(store, content_dir, build_identity())[0])):
        shared: dict[str, str] = {}
        for name, (file, key, entry) in loaded.files.items():
            assert entry.source is file.name is name, (attempt, name)
            assert entry.body.parse_key is key, (attempt, name)
            assert shared.setdefault(entry.section, entry.section) is entry.section, (attempt, name)
            assert shared.setdefault(entry.day, entry.day) is entry.day, (attempt, name)
    fresh = LoadMemo()  # parsed on two processes: the entries come back as copies
    monkeypatch.setattr(feedsvc.source.loader, "PARALLEL_FROM", 5)
    load_content(content_dir, parsed=fresh, processes=2)
    shared = {}
    for name, (file, _, entry) in fresh.files.items():
        assert entry.source is file.name is name
        assert shared.setdefault(entry.section, entry.section) is entry.section
        assert shared.setdefault(entry.day, entry.day) is entry.day


MOVED = "posts/new-faces-proteas-announce-test-debutants.md"


def _set_field(content_dir, field, value, name=MOVED):
    """Set a front matter field (added after the id when the file has none)."""
    path = content_dir / name
    lines = path.read_text().splitlines()
    if any(line.startswith(f"{field}:") for line in lines):
        lines = [f"{field}: {value}" if line.startswith(f"{field}:") else line for line in lines]
    else:
        lines.insert(2, f"{field}: {value}")
    path.write_text("\n".join(lines) + "\n")
    _touch_later(path)


def _other(content_dir, field):
    return next(getattr(e, field) for e in load_content(content_dir).entries if e.source != MOVED)


EDITS = {
    "body": lambda d: (d / MOVED).write_text((d / MOVED).read_text() + "\nOne more line.\n") or _touch_later(d / MOVED),
    "title": lambda d: _set_field(d, "title", "A new title"),
    "date (a new place)": lambda d: _set_field(d, "date", "2019-01-01T08:00:00Z"),
    "slug": lambda d: _set_field(d, "slug", "a-new-slug"),
    "id taken by another entry": lambda d: _set_field(d, "id", f'"{_other(d, "id")}"'),
    "slug taken by another entry": lambda d: _set_field(d, "slug", _other(d, "slug")),
    "draft": lambda d: _set_field(d, "draft", "true"),
    "added": lambda d: write_entry(d, "added.md", 'id: "urn:example:added"\ntitle: Added\ndate: 2030-01-01T08:00:00Z\nsection: latest'),
    "removed": lambda d: (d / MOVED).unlink(),
}


def _rescanned(directory, before: feedsvc.source.scan.FolderScan) -> feedsvc.source.scan.FolderScan:
    """The folder's scan as the watcher makes it: the scan before, updated at the paths that changed (as inotify names them)."""
    now = {file.name: file for file in feedsvc.source.scan.scan_folder(directory).files}
    then = {file.name: file for file in before.files}
    changed = [os.path.join(os.path.realpath(directory), name) for name in now.keys() | then.keys() if now.get(name) != then.get(name)]
    return feedsvc.source.scan.rescan_folder(directory, before, changed)


@pytest.mark.parametrize("rescanned", [False, True], ids=["full scan", "rescan"])
@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_a_reload_from_the_last_load_equals_a_fresh_load(content_dir, state_dir, edit, rescanned, monkeypatch):
    """A reload takes unchanged files from the last load (LoadMemo): whatever the edit, the result is a fresh load's.

    After a rescan (the watcher's way), the files that changed are found by comparing records by identity.
    """
    quick_looks = []
    real_look = feedsvc.source.loader._changed_entry_files
    monkeypatch.setattr(
        feedsvc.source.loader, "_changed_entry_files", lambda *args: quick_looks.append(real_look(*args)) or quick_looks[-1]
    )
    memo = feedsvc.source.loader.LoadMemo()
    scan = feedsvc.source.scan.scan_folder(content_dir)
    load_content(content_dir, parsed=memo, cache=Store(state_dir).parses, scan=scan)
    edit(content_dir)
    scan = _rescanned(content_dir, scan) if rescanned else None
    try:
        fresh = load_content(content_dir)
    except ContentError as error:
        with pytest.raises(ContentError) as reloaded:
            load_content(content_dir, parsed=memo, cache=Store(state_dir).parses, scan=scan)
        assert reloaded.value.problems == error.problems
        return
    reloaded = load_content(content_dir, parsed=memo, cache=Store(state_dir).parses, scan=scan)
    if rescanned and edit not in (EDITS["added"], EDITS["removed"]):  # the same files: only the edited one was looked at
        assert [[file.name for file in found] for found in quick_looks[-1:]] == [[MOVED]]
    assert reloaded == fresh and reloaded.version == fresh.version
    assert [e.source for e in reloaded.entries] == [e.source for e in fresh.entries]
    assert [e.source for e in reloaded.drafts] == [e.source for e in fresh.drafts]


def test_an_edit_in_place_is_neither_checked_nor_sorted_again_but_a_load_after_a_failure_is(content_dir, state_dir, monkeypatch):
    checks = []
    real_check = feedsvc.source.loader._check_unique
    monkeypatch.setattr(feedsvc.source.loader, "_check_unique", lambda entries, problems: checks.append(1) or real_check(entries, problems))
    memo = feedsvc.source.loader.LoadMemo()
    first = load_content(content_dir, parsed=memo)
    assert len(checks) == 1
    EDITS["title"](content_dir)
    second = load_content(content_dir, parsed=memo)
    assert len(checks) == 1  # the edited entry kept its id, slug, date and draft flag
    assert [e.source for e in second.entries] == [e.source for e in first.entries]
    EDITS["id taken by another entry"](content_dir)
    with pytest.raises(ContentError, match="is already used by"):
        load_content(content_dir, parsed=memo)
    EDITS["title"](content_dir)  # the id stays taken: the last load failed, so everything is checked again
    with pytest.raises(ContentError, match="is already used by"):
        load_content(content_dir, parsed=memo)


def test_a_restart_starts_from_the_last_load_the_store_kept(content_dir, state_dir, monkeypatch):
    from feedsvc.live.publisher import Publisher

    first = Publisher(content_dir, store=Store(state_dir))
    assert (state_dir / Store(state_dir).side_file("load")).exists()
    EDITS["title"](content_dir)  # saved while the service was down
    looked_up = []
    real = ParseStore.parsed_entries
    monkeypatch.setattr(ParseStore, "parsed_entries", lambda self, keys: real(self, looked_up.extend(keys := list(keys)) or keys))
    again = Publisher(content_dir, store=Store(state_dir))
    assert len(looked_up) == 1  # only the edited file's parse, the other entries come from the kept load
    fresh = load_content(content_dir)
    assert again.current.content == fresh and again.current.version == fresh.version != first.current.version
    assert [e.body_html for e in again.current.content.entries] == [e.body_html for e in fresh.entries]


def test_a_damaged_or_foreign_snapshot_is_ignored(content_dir, state_dir):
    from feedsvc.live.publisher import Publisher

    Publisher(content_dir, store=Store(state_dir))
    snapshot = state_dir / Store(state_dir).side_file("load")
    for damage in (snapshot.read_bytes()[:1000], b"not a pickle", __import__("pickle").dumps({"other": "code"})):
        snapshot.write_bytes(damage)
        assert Publisher(content_dir, store=Store(state_dir)).current.content == load_content(content_dir)


def test_a_snapshot_of_another_version_s_memo_is_ignored(content_dir, state_dir):
    """A kept load written by code with another layout (or without a field entries have now) is not taken half-read;
    one altered on disk after it was recorded (a title changed inside it) is not taken at all."""
    from feedsvc.source.loader import LoadMemo
    from feedsvc.state.snapshots import dump_pickle

    store = Store(state_dir)
    memo = LoadMemo()
    load_content(content_dir, parsed=memo, cache=store.parses)
    keep_load(store, memo, content_dir, build_identity())
    assert kept_load(store, content_dir, build_identity())[1]
    name, path = store.side_file("load"), state_dir / store.side_file("load")
    kept_bytes, note = path.read_bytes(), store.snapshots.note(name)
    title = memo.files[MOVED][2].title.encode()
    path.write_bytes(kept_bytes.replace(title, title.upper()))  # the same length, another title
    assert kept_load(store, content_dir, build_identity()) == (LoadMemo(), False)
    path.write_bytes(kept_bytes)
    assert kept_load(store, content_dir, build_identity())[1]
    for other in ({"format": "feedsvc kept load, columns 0"}, {"format": "feedsvc kept load, columns 4"}):
        store.snapshots.write(name, dump_pickle(other), note)  # recorded as written, but not a memo of this code's
        assert kept_load(store, content_dir, build_identity()) == (LoadMemo(), False)


def test_a_kept_load_comes_back_equal_sharing_what_it_shared(tmp_path, state_dir):
    """Written as columns, the memo reads back with every value and every shared object as the load made them."""
    from feedsvc.models import ENTRY_FIELDS
    from feedsvc.source.loader import LoadMemo

    folder = tmp_path / "content"
    shutil.copytree(ROOT / "examples" / "newsroom", folder)  # images, a draft, bylines, tags, an update
    write_entry(
        folder,
        "elsewhere.md",
        "id: urn:example:elsewhere\ntitle: Elsewhere\ndate: 2024-03-31T02:30:00+05:45\nupdated: 2024-04-02T08:00:00-05:00\nsection: news",
        "Two zones.",
    )
    store = Store(state_dir)
    memo = LoadMemo()
    load_content(folder, parsed=memo, cache=store.parses)
    keep_load(store, memo, folder, build_identity())
    back = kept_load(store, folder, build_identity())[0]
    for name in ("site_digest", "newest_first", "drafts", "fresh", "with_media", "scan", "images", "version"):
        assert getattr(back, name) == getattr(memo, name), name
    assert list(back.files) == list(memo.files)
    for (record, key, entry), (name_back, (record_back, key_back, entry_back)) in zip(memo.files.values(), back.files.items(), strict=True):
        assert (record_back, key_back) == (record, key)
        for field in ENTRY_FIELDS:
            value, value_back = getattr(entry, field), getattr(entry_back, field)
            if field == "body":
                assert (value_back.key, value_back.html()) == (value.key, value.html())
            else:
                assert (value_back, type(value_back)) == (value, type(value)), (name_back, field)
        assert (entry_back.published.utcoffset(), entry_back.updated.utcoffset()) == (
            entry.published.utcoffset(),
            entry.updated.utcoffset(),
        )
        assert (entry_back.updated is entry_back.published) == (entry.updated is entry.published)
        assert entry_back.body.parse_key is key_back and entry_back.source is name_back
    assert all(entry is back.files[entry.source][2] for entry in back.newest_first + back.drafts)
    assert back.drafts and any(entry.updated is not entry.published for entry in back.newest_first)
    assert any(entry.media for entry in back.newest_first) and back.images
    assert all(record is back.files[record.name][0] for record in back.scan.files if record.name in back.files)
    assert len(back.scan.files) > len(back.files)  # the site file and images too


# Writes a kept load of 20,000 entries (in one process), or loads it (in a fresh one) and reports
# pymalloc's bytes in use and in free slots of partly used pages, before and after.
_KEPT_LOAD_PROBE = """
import re, sys
from datetime import UTC, datetime, timedelta
from feedsvc.source.scan import ContentFile, FolderScan
from feedsvc.source.loader import LoadMemo
from feedsvc.models import Entry
from feedsvc.live.publisher import keep_load, kept_load
from feedsvc.state import Store
from feedsvc.state.parses import StoredBody
store = Store(sys.argv[2])
if sys.argv[1] == "write":
    files = {}
    for n in range(20_000):
        name = f"posts/story-{n:06d}.md"
        moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=n)
        key, digest = f"{n:064x}:{'s' * 64}", f"{n:032x}"
        entry = Entry(f"urn:example:{n}", f"story-{n:06d}", f"Story number {n} of the archive", moment, moment, "news", None,
                      StoredBody(store.parses, key, digest, name), name, digest)
        files[name] = (ContentFile(name, 2000 + n, 1_700_000_000_000_000_000 + n, n), key, entry)
    entries = tuple(entry for _, _, entry in files.values())
    memo = LoadMemo("s" * 64, files, entries[::-1], (), 0, (), FolderScan(tuple(r for r, _, _ in files.values()), ()), {})
    keep_load(store, memo, "/probe", "identity")
else:
    import os, tempfile
    def stats():
        with tempfile.TemporaryFile() as capture:
            saved = os.dup(2)
            os.dup2(capture.fileno(), 2)
            try:
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read().decode()
        used = int(re.search(r"# bytes in allocated blocks *= *([\\d,]+)", text)[1].replace(",", ""))
        holes = int(re.search(r"# bytes in available blocks *= *([\\d,]+)", text)[1].replace(",", ""))
        return used, holes
    before = stats()
    memo = kept_load(store, "/probe", "identity")[0]
    after = stats()
    assert len(memo.files) == 20_000
    print(after[0] - before[0], after[1] - before[1])
"""


def test_a_kept_load_leaves_no_holes_in_the_heap(state_dir):
    """Unpickled as objects, 100,000 entries left ~44 MB of freed temporaries between them in every worker (~25 %)."""

    def probe(mode: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _KEPT_LOAD_PROBE, mode, str(state_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    probe("write")
    used, holes = map(int, probe("load").split())
    assert used > 5_000_000  # the 20,000 entries are there
    assert holes < used * 0.03, (used, holes)


def test_the_state_forgets_parses_no_kept_version_names_once_they_outnumber_them_and_every_worker_serves_its_kept_version(state_dir):
    """The state folder stays bounded, and a body a served version still needs is never deleted under it."""
    from datetime import UTC, datetime

    from feedsvc.models import Entry
    from feedsvc.state.kept import KeptFile
    from feedsvc.state.parses import StoredBody

    def parses(first: int, count: int) -> dict:
        moment = datetime(2025, 1, 1, tzinfo=UTC)
        made = (
            Entry(f"urn:example:{n}", f"s{n}", "T", moment, moment, "latest", "", body="<p>x</p>", digest=f"d{n}", source=f"posts/s{n}.md")
            for n in range(first, first + count)
        )
        return {f"key-{entry.digest}": entry for entry in made}

    def keep(version: str, kept: dict) -> None:
        files = [KeptFile(entry.source, 1, 1, 1, key, entry.digest) for key, entry in kept.items()]
        record = store.kept.recorder(version, "identity", "site", "digest", lambda: iter(files))
        store.db.write(record, None)

    store = Store(state_dir, "live")
    old, newer = parses(0, 3100), parses(6000, 1000)
    store.parses.remember_parsed(old)
    store.parses.remember_parsed(newer)
    keep("v1", newer)
    store.workers.serving("another worker", "v0")  # a live worker (this process) serving a version not kept: nothing goes
    assert store.prune(1000) == 0
    assert len(store.parses.parsed_entries(old)) == 3100
    store.workers.serving("another worker", "v1")  # every worker serves the kept version now: the others go
    store.parses.parses_added = 1001
    assert store.prune(1000) == 3100
    assert store.parses.parsed_entries(old) == {} and len(store.parses.parsed_entries(newer)) == 1000
    gone = next(iter(old))
    with pytest.raises(LookupError):  # no body, and no loader to render it again from a file
        store.parses.body(StoredBody(store.parses, gone, old[gone].digest, old[gone].source))
    assert store.prune(1000) == 0  # counted again only after a thousand new parses


def test_the_write_ahead_log_is_cut_back_after_a_big_load(state_dir, monkeypatch):
    """SQLite keeps a WAL at its largest size; a cold parse of a big archive must not leave gigabytes behind."""
    import feedsvc.state.db

    monkeypatch.setattr(feedsvc.state.db, "WAL_SIZE_LIMIT", 256 * 1024)
    store = Store(state_dir)
    wal = state_dir / (feedsvc.state.db.DATABASE_FILE + "-wal")
    store.exports.remember("/export", {f"/posts/{n}/": ("k" * 200, "e" * 60, n) for n in range(20_000)})  # one big transaction
    assert wal.stat().st_size > 1024 * 1024
    store.db._connection().execute("PRAGMA wal_checkpoint(PASSIVE)")  # as SQLite does after a commit past 1,000 pages
    store.exports.remember("/other", {"/": ("k", "e", 1)})  # the next write starts the log again: at most the limit is kept
    assert wal.stat().st_size <= 256 * 1024


def test_an_entry_with_another_body_is_the_entry_replace_would_make(content_dir):
    import dataclasses

    from feedsvc.models import ENTRY_FIELDS

    for entry in load_content(content_dir).entries:
        copied, replaced = entry.with_body("<p>x</p>"), dataclasses.replace(entry, body="<p>x</p>", headings=())
        assert [getattr(copied, name) for name in ENTRY_FIELDS] == [getattr(replaced, name) for name in ENTRY_FIELDS]
        assert entry.body != "<p>x</p>"  # a copy: the entry keeps its own body


def test_a_build_after_one_edit_starts_from_the_last_build_s_load(content_dir, state_dir, tmp_path, monkeypatch):
    """`build` keeps its load in the state folder: the next build looks up only the edited file's parse, not every entry's."""
    from feedsvc.__main__ import main

    monkeypatch.setenv("FEEDSVC_STATE_DIR", str(state_dir))
    looked_up: list[int] = []
    real_lookup = ParseStore.parsed_entries
    monkeypatch.setattr(
        ParseStore, "parsed_entries", lambda store, keys: looked_up.append(len(keys := list(keys))) or real_lookup(store, keys)
    )
    assert main(["build", str(tmp_path / "site"), "--content", str(content_dir)]) == 0
    edited = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    edited.write_text(edited.read_text().replace("New Faces", "Newer Faces"))
    looked_up.clear()
    assert main(["build", str(tmp_path / "site"), "--content", str(content_dir)]) == 0
    assert sum(looked_up) == 1
    assert b"Newer Faces" in (tmp_path / "site" / "posts" / "new-faces-proteas-announce-test-debutants" / "index.html").read_bytes()


def test_the_kept_load_of_another_folder_is_not_taken(content_dir, tmp_path, state_dir):
    """The load's records hold no paths: they are its folder's files, known by name (a copy has the same names)."""
    from feedsvc.source.loader import LoadMemo

    store = Store(state_dir)
    memo = LoadMemo()
    load_content(content_dir, parsed=memo, cache=store.parses)
    keep_load(store, memo, content_dir, build_identity())
    shutil.copytree(content_dir, tmp_path / "copy")
    assert kept_load(store, content_dir, build_identity())[1]
    assert kept_load(store, tmp_path / "copy", build_identity()) == (LoadMemo(), False)


def test_the_kept_load_is_taken_for_its_folder_however_it_is_named(content_dir, state_dir, monkeypatch):
    """serve checks ``--content content`` and gives its workers the absolute path: both are one folder."""
    from feedsvc.source.loader import LoadMemo

    monkeypatch.chdir(content_dir.parent)
    store = Store(state_dir)
    memo = LoadMemo()
    load_content(content_dir.name, parsed=memo, cache=store.parses)
    keep_load(store, memo, content_dir.name, build_identity())
    memo, kept = kept_load(store, content_dir.absolute(), build_identity())
    assert kept and memo.scan.root == str(content_dir.absolute())
    assert all(os.path.isfile(memo.scan.path(record)) for record in memo.scan.files)


def test_where_fork_is_unsafe_a_load_and_an_export_work_in_one_process(content_dir, tmp_path, monkeypatch):
    """macOS: forking a process whose libraries started threads is unsafe; the work is done in this process instead."""
    import feedsvc.export
    from feedsvc.export import export_publication
    from feedsvc.publication import build_publication

    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(feedsvc.source.loader, "PARALLEL_FROM", 5)
    monkeypatch.setattr(feedsvc.export, "PARALLEL_FROM", 5)

    def no_pool(*args, **kwargs):
        raise AssertionError("no process pool where fork is unsafe")

    monkeypatch.setattr(feedsvc.source.loader, "ProcessPoolExecutor", no_pool)
    monkeypatch.setattr(feedsvc.export, "ProcessPoolExecutor", no_pool)
    content = load_content(content_dir, processes=4)
    assert export_publication(build_publication(content), tmp_path / "site", processes=4) > len(content.entries)
