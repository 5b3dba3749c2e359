"""The live publication: load, build, stamp, swap one reference; watch the content folder; keep the last good version.

A reload is a transaction: the new version is loaded, rendered and given its Last-Modified
times before anything a client or /healthz sees changes; any failure on the way is a content
problem (logged, reported by /healthz, retried on the next change) and the last good version
stays served.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchfiles._rust_notify import RustNotify  # watchfiles.watch() offers no hook once the watch is in place

from .content import ContentError, FolderScan, LoadMemo, Problem, load_content, rescan_folder, scan_folder
from .markdown import shorten
from .models import Content, release
from .publication import Publication, Stamper, build_publication, code_digest, hot_set
from .store import StaleBuildError, Store

log = logging.getLogger(__name__)
# The safety net behind inotify: every SAFETY_NET_SECONDS the folders' own mtimes are compared
# (they change when a file is added, removed or renamed: milliseconds for 100,000 files, no file
# is stat'ed), and every FULL_CHECK_SECONDS every file is, in case an in-place edit went unseen.
SAFETY_NET_SECONDS = 30
FULL_CHECK_SECONDS = 600
# /healthz turns "degraded" when the watcher has not finished a look at the folder for this long
# (a reload stuck on a hung file system, a watcher that died)
WATCH_STALL_SECONDS = 60
DEFERRED_BATCH = 64  # deferred bodies a worker claims and renders at a time (~80 ms of Markdown)
DEFERRED_RETRY_SECONDS = 1  # when every deferred body left is claimed by another worker: look again after this
DEFERRED_FAILED_SECONDS = 10  # when rendering them failed (the store busy past its timeout): try again after this
HEALTH_PROBLEMS_SHOWN = 20  # /healthz lists this many problems (each of bounded length) and counts the rest
SNAPSHOT_STALE_FILES = 1000  # a start that parsed or read more files than this keeps its load for the next one
# What `serve` hands its workers in the environment (``handover_note``), each with when it was true: a
# worker started later than HANDOVER_SECONDS after that (granian respawning one that crashed, hours
# later) starts the ordinary way, looking at every file itself, since the folder may have changed since.
# CHECKED_SCAN_VARIABLE: the fingerprint of the check's look at every file (``Publisher``'s ``checked_scan``);
# WARM_START_VARIABLE: the ``hot_set_key`` under which the workers may answer from the kept hot set (warmstart.py).
CHECKED_SCAN_VARIABLE = "FEEDSVC_CHECKED_SCAN"
WARM_START_VARIABLE = "FEEDSVC_WARM_START"
HANDOVER_SECONDS = 60
# which folder, and the settings that change a document's bytes besides the content (configuration keys)
HOT_SET_SETTINGS = ("CONTENT_DIR", "BASE_URL", "MAX_AGE", "ITEM_LIMIT", "HUB_URL")
_STALE_RETRIES = 20  # a folder that keeps changing while we build: give up for now, the watcher calls again


def folder_identity(directory: Path) -> tuple:
    """Which folder ``directory`` names right now: a switched ``current -> releases/N`` link or a replaced folder differ."""
    try:
        info = os.stat(directory)
        return os.path.realpath(directory), info.st_dev, info.st_ino
    except OSError as error:
        return (str(directory), error.errno)


def folders_signature(directory: Path) -> tuple:
    """Return the modification times of the content folder and its subfolders (not of the files)."""
    signature = []
    pending = [os.fspath(directory)]
    while pending:
        folder = pending.pop()
        try:
            signature.append((folder, os.stat(folder).st_mtime_ns))
            with os.scandir(folder) as listing:
                pending.extend(item.path for item in listing if not item.name.startswith(".") and item.is_dir(follow_symlinks=False))
        except OSError as error:
            signature.append((folder, error.errno))
    return tuple(sorted(signature))


def fingerprint(directory: Path, scan: FolderScan | None = None) -> str:
    """Return a signature of the content folder that is the same in every process: which folder, its files' names, sizes and mtimes."""
    scan = scan or scan_folder(directory)
    signature = hashlib.sha256(repr((folder_identity(directory), scan.problems)).encode())
    signature.update("\0".join(f"{f.name}\0{f.size}\0{f.mtime_ns}" for f in scan.files).encode("utf-8", "surrogateescape"))
    return signature.hexdigest()


def _signature(directory: Path, scan: FolderScan | None = None) -> tuple[tuple, FolderScan]:
    """The same as ``fingerprint``, for comparisons within this process: which folder, and the scan itself.

    Compared, never hashed: a rescan after one edit shares every other file's record with the
    scan before, so equality is a pass of identity checks (100,000 files: ~2 ms; a hash: ~70 ms),
    and keeping it costs a tuple of references, not the records.
    """
    return folder_identity(directory), scan or scan_folder(directory)


def _settle_heap() -> None:
    """Collect the build's garbage, then exempt the long-lived publication from cyclic GC passes.

    A full collection would otherwise walk every pre-built document (tens of thousands of objects
    with large content) while requests wait; the old version is still freed by reference counting.
    """
    gc.collect()
    gc.freeze()
    _trim_heap()


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 (both or neither: not glibc, say musl or macOS)
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()
_MALLOC_TRIM = _LIBC.malloc_trim if _LIBC is not None else None
_MALLOPT = _LIBC.mallopt if _LIBC is not None else None
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt(3) parameters, from glibc's <malloc.h>
# Blocks from this size up get their own mapping, given back the moment they are freed: a build's
# big dicts and tuples (100,000 entries: several MB each) and documents rendered on request.
# glibc's default threshold starts here but grows to the largest block freed so far, after which
# such blocks land in the heap and leave holes beside the entries that stay.
HEAP_MMAP_THRESHOLD = 128 * 1024
# Allocation arenas of the C heap: glibc gives threads up to 8 per core, each a heap of its own
# that a build in the watcher thread or a render in a server thread grows and keeps.
HEAP_ARENAS = 2


def tune_heap() -> None:
    """Make glibc's heap give a long-lived process's freed memory back (mallopt(3); nothing elsewhere).

    Measured at 100,000 entries under `serve` (2 workers): each edit's reload left each worker
    17-40 MB larger (the first edit most); with these two settings, 1 MB. Either setting alone
    did most of it (PSS of the server 568 -> 518-524 MiB after edits and old pages).
    """
    if _MALLOPT is not None:
        _MALLOPT(_M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD)
        _MALLOPT(_M_ARENA_MAX, HEAP_ARENAS)


def _trim_heap() -> None:
    """Hand the C heap's free pages back to the system (malloc_trim(3)).

    glibc keeps memory a build freed for reuse: at 100,000 entries a worker holds ~16 MB more
    after its start and ~30 MB more after each reload than it uses, for milliseconds of trimming.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def health_report(problems: list[str], version: str, entries: int, last_load: datetime | None, bodies_to_render: int = 0) -> dict[str, Any]:
    """The /healthz document (bounded size): what is served, and every problem with publishing it.

    ``bodies_to_render``: bodies a start deferred and no worker rendered yet (an old page asked
    for meanwhile renders its own: slower, still served).
    """
    return {
        "status": "degraded" if problems else "ok",
        "content_version": version,
        "entries": entries,
        "last_successful_load": None if last_load is None else last_load.isoformat(),
        "problems": len(problems),
        "error": first_problems(problems) or None,
        "bodies_to_render": bodies_to_render,
    }


def first_problems(problems: list[str]) -> list[str]:
    """The first HEALTH_PROBLEMS_SHOWN problems, and how many more there are: a log line or /healthz of bounded size."""
    shown = problems[:HEALTH_PROBLEMS_SHOWN]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more (python -m feedsvc check lists them all)")
    return shown


def _unexpected(error: Exception) -> ContentError:
    """Describe a failure that is not a known content problem (a library choking on odd input)."""
    return ContentError([Problem("(build)", type(error).__name__, shorten(str(error) or "failed", 200))])


class FolderEvents:
    """The paths inotify named since a reload last looked, for the watcher's thread only.

    A reload rescans only these paths (``rescan_folder``) and, before it stamps its documents,
    asks ``quiet()``: any event since it looked means the folder changed while it built, like a
    full rescan that differs, at the cost of a poll instead of a stat of every file.
    """

    def __init__(self, notify: RustNotify, root: str):
        self._notify = notify
        self._root = root  # the folder watched (resolved), which event paths start with
        self._paths: set[str] | None = None  # None: unknown, rescan everything

    def _relevant(self, changes: set[tuple[int, str]]) -> set[str]:
        """The paths that can change what is published: not an editor's swap, lock or backup file (never content)."""
        found = set()
        for _, path in changes:
            relative = os.path.relpath(path, self._root)
            base = os.path.basename(path)
            if relative != "." and (
                any(part.startswith(".") for part in relative.split(os.sep)) or base.endswith("~") or base.startswith("#")
            ):
                continue
            found.add(path)
        return found

    def add(self, changes: set[tuple[int, str]]) -> bool:
        """Record what an event batch named; return whether any of it matters."""
        paths = self._relevant(changes)
        if self._paths is not None:
            self._paths.update(paths)
        return bool(paths)

    def everything(self) -> None:
        """Forget what was named: the next reload scans the whole folder (the safety net, a new watch)."""
        self._paths = None

    def take(self) -> set[str] | None:
        """Return the paths named since the last take (None: rescan everything), and start collecting anew."""
        paths, self._paths = self._paths, set()
        return paths

    def quiet(self) -> bool:
        """Tell whether no event arrived since the last take; events that did are kept for the next one."""
        try:
            result = self._notify.watch(1, 1, 1, None)  # what the kernel reported already: returns within milliseconds
        except Exception:  # an event watchfiles cannot decode (a non-UTF-8 name): something changed, look at everything
            self.everything()
            return False
        if isinstance(result, set):
            return not self.add(result)
        return result == "timeout"


def open_watch(directory: Path, strict: bool = False) -> tuple[RustNotify, FolderEvents, tuple] | None:
    """Watch the folder ``directory`` names now: (the watch, its events, which folder it is), or None when inotify cannot.

    ``strict``: raise instead (the watcher reports why it is not watching, and tries again).
    """
    identity = folder_identity(directory)
    try:
        root = os.path.realpath(directory)
        notify = RustNotify([root], False, False, 300, True, False)
    except Exception:  # no inotify instance left, a folder that vanished: the start checks by scanning instead
        if strict:
            raise
        return None
    return notify, FolderEvents(notify, root), identity


def handover_note(value: str) -> str:
    """What `serve` hands its workers in an environment variable: ``value`` and the time it was true."""
    return f"{value} {time.time()!r}"  # exactly: a time rounded up would be in the future


def recent_handover(note: str | None) -> str | None:
    """Return the value a ``handover_note`` holds if it is recent enough for a worker's start to rely on."""
    value, _, noted = (note or "").partition(" ")
    try:
        age = time.time() - float(noted)
    except ValueError:
        return None
    return value if value and 0 <= age <= HANDOVER_SECONDS else None


def hot_set_key(config: Mapping[str, Any]) -> str:
    """What a hot set depends on besides the content: the rendering code, the folder and the settings (HOT_SET_SETTINGS)."""
    settings = {key: config.get(key) for key in HOT_SET_SETTINGS}
    settings["CONTENT_DIR"] = os.path.abspath(str(settings["CONTENT_DIR"]))  # as `serve` hands it over
    return hashlib.sha256(repr((code_digest(), sorted(settings.items()))).encode()).hexdigest()


def keep_hot_set(store: Store, publication: Publication, key: str) -> None:
    """Keep the documents ``publication`` serves from memory under ``key`` for the next start, unless kept already (by another worker)."""
    note = store.hot_set_note() or {}
    if note.get("key") != key or note.get("version") != publication.version:
        store.save_hot_set(hot_set(publication, key), {"key": key, "version": publication.version})


def kept_load(store: Store | None, directory: str | Path) -> tuple[LoadMemo, bool]:
    """Return the last whole load of ``directory`` the store kept (or an empty memo) and whether there was one.

    The store reads back only a load written in its own layout (``Store.load_snapshot``).
    """
    snapshot = store.load_snapshot() if store is not None else None
    # none, or another folder's files by the same names: start without it
    if snapshot is None or os.path.abspath(snapshot.scan.root) != os.path.abspath(directory):
        return LoadMemo(), False
    # named as this process names it (serve checks ``content``, its workers get the absolute path)
    snapshot.scan = replace(snapshot.scan, root=os.fspath(Path(directory)))
    gc.freeze()  # long-lived like the publication (``_settle_heap``): the start's collection need not walk its million objects
    return snapshot, True


def keep_load(store: Store | None, memo: LoadMemo, kept: bool) -> None:
    """Keep ``memo`` for the next start unless the kept one is still close to it (100,000 entries: ~3 s to write)."""
    if store is not None and (not kept or memo.fresh > SNAPSHOT_STALE_FILES):
        store.save_snapshot(memo)


class Publisher:
    """Owns the current Publication; readers take ``publisher.current`` and never see a half-built one."""

    def __init__(
        self,
        directory: str | Path,
        overrides: Mapping[str, Any] | None = None,
        hub_url: str | None = None,
        store: Store | None = None,
        on_new_version: Callable[[Publication], None] | None = None,
        clock: Callable[[], float] = time.time,
        watch_every: float | None = None,
        checked_scan: str | None = None,
        hot_set_key: str | None = None,
    ):
        """Load and build the folder (raises ContentError); with ``watch_every`` s, follow it from then on (``watch``).

        ``checked_scan``: the ``fingerprint`` of a look at every file made just before this process
        started (``serve``'s check). When the kept load's scan has it, the start takes that scan
        instead of looking at every file again (100,000 files: ~1.5 s) and the watcher's first look,
        once serving, covers every file.

        ``hot_set_key``: keep the hot set of every version served under this key (``hot_set_key``)
        for the next start of `serve` (warmstart.py).
        """
        tune_heap()  # before the first load: a long-lived holder of a large heap
        self.directory = Path(directory)
        self.clock = clock  # when scheduled entries go live (tests inject one)
        self._loaded: Content | None = None  # the last load that built, scheduled entries included
        self.overrides = dict(overrides or {})
        self.hub_url = hub_url
        self.store = store
        self.on_new_version = on_new_version  # e.g. HubNotifier.on_new_version: must not block
        self.hot_set_key = hot_set_key
        # the last load, reused for unchanged files: at a start, the one the store kept (a restart reads no entry one by one)
        self._parsed, kept = kept_load(store, self.directory)
        self._scan: FolderScan | None = None  # the last look at the folder, which the watcher's events update
        self._checked_scan = checked_scan
        self._looked_at_everything = True  # False while the folder is known only from the check's look
        self._lock = threading.Lock()  # one reload at a time
        self._stop = threading.Event()
        self.error: ContentError | None = None
        self.current: Publication | None = None
        self.watch_error: str | None = None  # why the watcher is not watching, when it is not
        self._watcher: threading.Thread | None = None
        self._watch_beat = time.monotonic()  # the watcher's last finished look at the folder
        # inotify from the first look on: the start's build is checked against its events instead of a
        # second scan of every file, and the watcher (``watch_every``) carries on from them
        self._start_watch = open_watch(self.directory)
        try:
            self._fingerprint = self._first_build()
        except BaseException:
            self.stop()
            raise
        self.loaded_at = datetime.now(UTC)
        keep_load(store, self._parsed, kept)
        _settle_heap()
        if self.on_new_version is not None:
            self.on_new_version(self.current)
        self._keep_hot_set(self.current)
        self.bodies_to_render = 0  # deferred bodies left in the store, as the renderer last counted them
        if watch_every:
            self.watch(watch_every)
            self.render_deferred_bodies()
        else:  # an inotify instance per publisher nobody watches with would run out (128 per user by default)
            self._close_start_watch()

    def _first_build(self) -> tuple:
        """Load and build the folder for the start (raises ContentError: a service never starts on invalid content)."""
        events = self._start_watch[1] if self._start_watch is not None else None
        for _ in range(_STALE_RETRIES):
            scan = self._look(events)
            seen = _signature(self.directory, scan)
            try:
                loaded = self._load(scan)
                self.current = self._build(seen, loaded, events.quiet if events is not None else None)
                self._loaded = loaded
                return seen
            except StaleBuildError:
                continue
            except ContentError:
                raise
            except Exception as error:
                raise _unexpected(error) from error
        raise ContentError([Problem(".", "folder", "kept changing while it was read; start again once it is saved")])

    def _close_start_watch(self) -> None:
        started, self._start_watch = self._start_watch, None
        if started is not None:
            started[0].close()

    def _stamper(self, version: str, seen: tuple | None = None, quiet: Callable[[], bool] | None = None) -> Stamper | None:
        """Stamp documents through the store: a build checks the folder is still ``seen``; later renders check the version.

        ``quiet`` (no inotify event since the folder was looked at) answers "still seen" without a full rescan.
        """
        if self.store is None:
            return None
        store, directory = self.store, self.directory
        still_current = None if seen is None else quiet or (lambda: _signature(directory) == seen)

        def stamp(etags: Mapping[str, str]) -> Mapping[str, datetime]:
            return store.last_modified(etags, version, still_current)

        return stamp

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _load(self, scan: FolderScan) -> Content:
        """Load the folder (raises ContentError)."""
        return load_content(self.directory, self.overrides, self._parsed, cache=self.store, scan=scan)

    def release_due(self) -> bool:
        """Tell whether a scheduled entry's time has come and it is not served yet."""
        due = None if self.current is None else self.current.content.next_release
        return due is not None and self._now() >= due

    def _build(self, seen: tuple, loaded: Content, quiet: Callable[[], bool] | None = None) -> Publication | None:
        """Build the version the folder has now, or return None when it is the version already served (a touch)."""
        content = release(loaded, self._now())
        if self.current is not None and content.version == self.current.version:
            return None
        publication = build_publication(content, self.hub_url, self.current, self._stamper(content.version, seen, quiet))
        return replace(publication, stamp=self._stamper(content.version))

    def _look(self, events: FolderEvents | None) -> FolderScan:
        """Scan the folder: only the paths the watcher's events named, when it has them and a scan to update."""
        changed = events.take() if events is not None else None
        checked, self._checked_scan = self._checked_scan, None  # good for the start's first look only
        if self._scan is None and checked is not None and fingerprint(self.directory, self._parsed.scan) == checked:
            self._scan, self._looked_at_everything = self._parsed.scan, False  # the files as the check saw them
            log.info("starting from the look serve's check made at every file; the watcher looks again once serving")
        elif changed is None or self._scan is None:
            earlier, self._scan = self._scan, None  # a failed scan leaves nothing to update
            # unchanged files keep the records the last scan (at a start, the kept load) has: the loader finds changes by identity
            self._scan = scan_folder(self.directory, earlier.files if earlier is not None else self._parsed.scan.files)
            self._looked_at_everything = True
        else:
            self._scan = rescan_folder(self.directory, self._scan, changed)
        return self._scan

    def refresh(self, events: FolderEvents | None = None) -> bool:
        """Reload when the folder changed; return True when a new version is now served.

        With ``events`` (the watcher's), only the paths they named are looked at again. Never
        raises: whatever goes wrong becomes the recorded problem that /healthz reports.
        """
        with self._lock:
            for _ in range(_STALE_RETRIES):
                seen = None
                try:
                    scan = self._look(events)
                    seen = _signature(self.directory, scan)
                    releasing = seen == self._fingerprint
                    if releasing and not self.release_due():
                        return False
                    # a scheduled entry's time came: release the last good load, even while an edit is broken
                    loaded = self._loaded if releasing else self._load(scan)
                    publication = self._build(seen, loaded, events.quiet if events is not None else None)
                    self._loaded = loaded  # built: what scheduled entries are released from later
                except StaleBuildError:  # saved again while we built: build what is there now
                    continue
                except ContentError as error:
                    self._failed(seen, error)
                    return False
                except Exception as error:
                    log.exception("building the content failed")
                    self._failed(seen, _unexpected(error))
                    return False
                if publication is None:  # a touch: nothing to serve anew
                    if not releasing:
                        self._fixed(seen)
                    return False
                return self._swap(seen, publication, fixed=not releasing)
            return False

    def _failed(self, seen: tuple | None, error: ContentError) -> None:
        if self.error is None or error.problems != self.error.problems:
            log.error(
                "content in %s not reloaded, still serving version %s:\n%s",
                self.directory,
                self.current.version,
                "\n".join(first_problems([str(p) for p in error.problems])),
            )
        if seen is not None:
            self._fingerprint = seen  # retried on the next change, not in a busy loop
        self.error = error

    def _fixed(self, seen: tuple) -> None:
        if self.error is not None:
            log.info("content problems fixed")
        self._fingerprint = seen
        self.error = None
        self.loaded_at = datetime.now(UTC)

    def _swap(self, seen: tuple, publication: Publication, fixed: bool = True) -> bool:
        self.current = publication  # one reference swap: atomic for readers
        if fixed:
            self._fixed(seen)
        _settle_heap()
        log.info("serving content version %s (%d entries)", publication.version, len(publication.content.entries))
        if self.on_new_version is not None:
            self.on_new_version(publication)
        self._keep_hot_set(publication)
        return True

    def _keep_hot_set(self, publication: Publication) -> None:
        if self.store is not None and self.hot_set_key is not None:
            keep_hot_set(self.store, publication, self.hot_set_key)

    def status(self) -> dict[str, Any]:
        """Describe what is served and whether publishing follows the folder, for /healthz (bounded size)."""
        problems = [] if self.error is None else [str(p) for p in self.error.problems]
        if self._watcher is not None and not self._stop.is_set():
            stalled = time.monotonic() - self._watch_beat
            if not self._watcher.is_alive():
                problems.insert(0, "watcher: stopped; edits are not published until the service restarts")
            elif self.watch_error is not None:
                problems.insert(0, f"watcher: not watching the folder: {self.watch_error}")
            elif stalled > WATCH_STALL_SECONDS:
                problems.insert(0, f"watcher: has not finished a look at the folder for {stalled:.0f} s (a reload is stuck)")
        return health_report(problems, self.current.version, len(self.current.content.entries), self.loaded_at, self.bodies_to_render)

    def watch(self, delay: float) -> threading.Thread:
        """Reload on file-system events (inotify), batching the events of ``delay`` s of quiet into one reload.

        Events cost nothing while nobody edits. Every ``delay`` s (at least 50 ms) the watcher also
        asks which folder the content path names, one stat: when a ``current -> releases/N`` link
        is switched or the folder is replaced, it watches the new one and reloads at once. A safety
        net catches whatever events can miss at a cost of milliseconds (SAFETY_NET_SECONDS,
        FULL_CHECK_SECONDS). The folder is checked as soon as a watch is in place, so a save made
        while the service started is not missed.
        """
        poll_ms = max(50, int(delay * 1000))
        handed_over = [self._start_watch]  # the start's watch, taken over by the first watch_folder (in the watcher's thread)
        self._start_watch = None

        def watch_folder() -> None:
            started = handed_over.pop() if handed_over else None
            # the folder the path names now: inotify watches inodes, and a linked root's subfolders are not walked
            notify, events, identity = started or open_watch(self.directory, strict=True)
            if not self._looked_at_everything:
                events.everything()  # edits made between the check's look and the start's watch: look at every file
            with notify:
                self.watch_error = None
                self.refresh(events)  # what changed since the start's look (a new watch: everything)
                checked = fully_checked = self._watch_beat = time.monotonic()
                folders = folders_signature(self.directory)
                while not self._stop.is_set():
                    # debounce: wait for 50 ms of quiet (at most poll_ms) before reloading once
                    result = notify.watch(poll_ms, 50, poll_ms, self._stop)
                    if result in ("stop", "signal"):
                        return
                    if folder_identity(self.directory) != identity:
                        log.info("content folder %s now names %s: watching it", self.directory, os.path.realpath(self.directory))
                        return
                    now = time.monotonic()
                    if isinstance(result, set) and not events.add(result):
                        result = "timeout"  # only an editor's swap files changed: nothing to look at
                    if result != "timeout" or self.release_due():  # scheduled entries go live within a poll
                        self.refresh(events)
                    elif now - checked > SAFETY_NET_SECONDS:
                        _trim_heap()  # what documents rendered on request since have freed, too
                        checked, seen_folders = now, folders_signature(self.directory)
                        if seen_folders != folders or now - fully_checked > FULL_CHECK_SECONDS:
                            events.everything()  # what events may have missed: look at every file
                            self.refresh(events)
                            fully_checked = now
                        folders = seen_folders
                    self._watch_beat = time.monotonic()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    watch_folder()
                except Exception as error:  # the watcher must survive anything an editor or a deploy can do
                    self.watch_error = f"{type(error).__name__}: {shorten(str(error), 200)}"
                    log.warning("cannot watch %s (%s); retrying", self.directory, self.watch_error)
                    self.refresh()  # a missing or unreadable folder is reported as a content problem
                    self._stop.wait(1)

        self._watch_beat = time.monotonic()
        self._watcher = threading.Thread(target=loop, name="feedsvc-content-watcher", daemon=True)
        self._watcher.start()
        return self._watcher

    def render_deferred_bodies(self) -> threading.Thread | None:
        """Render the bodies a start deferred (``load_content``'s ``defer_bodies``), newest first, in a thread; None when none are left.

        Every worker takes part (the store hands each its own batches), so the first request for
        an old page or archive seldom finds its bodies unrendered; one that does renders them itself.
        """
        store = self.store
        if store is None:
            return None

        def render() -> None:
            while not self._stop.is_set():
                try:
                    done, self.bodies_to_render = store.render_deferred_bodies(DEFERRED_BATCH)
                except Exception as error:  # a store busy past its timeout, or damaged: the bodies still render when asked for
                    log.warning(
                        "cannot render deferred bodies (%s: %s); trying again in %g s", type(error).__name__, error, DEFERRED_FAILED_SECONDS
                    )
                    self._stop.wait(DEFERRED_FAILED_SECONDS)
                    continue
                if not self.bodies_to_render:
                    return
                if not done:  # the rest is claimed by another worker: look again once its claims could have lapsed
                    self._stop.wait(DEFERRED_RETRY_SECONDS)

        self.bodies_to_render = store.deferred_bodies()
        if not self.bodies_to_render:
            return None
        thread = threading.Thread(target=render, name="feedsvc-body-renderer", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        self._close_start_watch()
