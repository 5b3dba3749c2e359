"""The live publication: load, build, stamp, swap one reference; watch the content folder; keep the last good version.

A reload is a transaction: the new version is loaded, rendered and given its Last-Modified
times before anything a client or /healthz sees changes; any failure on the way is a content
problem (logged, reported by /healthz, retried on the next change) and the last good version
stays served. A start on a folder that is broken serves the namespace's last good version, which
the state folder kept (``state.kept``), as a reload would have kept serving it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..identity import build_identity
from ..markdown import shorten
from ..models import Content, release
from ..problems import BodyUnavailableError, ContentError, Problem, StaleBuildError
from ..publication import Publication, build_publication, hot_set, subscription_topics
from ..source.loader import KeptVersionError, LoadMemo, load_content, load_kept
from ..source.memo import dump_memo, load_memo
from ..source.scan import FolderScan, rescan_folder, scan_folder
from ..state import Store
from ..state.kept import KeptFile
from ..state.ledgers import HEARTBEAT_SECONDS
from ..state.parses import StoredBody
from ..state.snapshots import dump_pickle
from .health import first_problems, health_report, without_paths
from .memory import settle_heap, trim_heap, tune_heap
from .watcher import FolderWatch, WatchError, folder_identity, folders_signature

log = logging.getLogger("feedsvc.publisher")
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
DEFERRED_FAILED_SECONDS = 10  # when the state could not give any: try again after this
SNAPSHOT_STALE_FILES = 1000  # a start that parsed or read more files than this keeps its load for the next one
_STALE_RETRIES = 20  # a folder that keeps changing while we build: give up for now, the watcher calls again

Announce = Callable[[list[str]], None]  # queue WebSub pings for these topics (HubNotifier.queue_all); must not block


def _signature(directory: Path, scan: FolderScan | None = None) -> tuple[tuple, FolderScan]:
    """Which folder, and the scan itself: what a reload compares with the last one (equal: nothing changed).

    Compared, never hashed: a rescan after one edit shares every other file's record with the
    scan before, so equality is a pass of identity checks (100,000 files: ~2 ms; a hash: ~70 ms).
    """
    return folder_identity(directory), scan or scan_folder(directory)


def _unexpected(error: Exception) -> ContentError:
    """Describe a failure that is not a known content problem (a library choking on odd input)."""
    return ContentError([Problem("(build)", type(error).__name__, shorten(str(error) or "failed", 200))])


def _kept_file(name: str, loaded: tuple) -> KeptFile:
    record, key, entry = loaded
    return KeptFile(name, record.size, record.mtime_ns, record.change, key, entry.digest)


def _kept_changes(before: Mapping[str, tuple], after: Mapping[str, tuple]) -> dict[str, KeptFile | None]:
    """The entry files of ``after`` (a load's) that differ from ``before`` (the load kept last), and those gone (None).

    A load keeps the very tuple of every file it took from the one before: found by identity
    (100,000 files: ~10 ms).
    """
    changes: dict[str, KeptFile | None] = {name: _kept_file(name, value) for name, value in after.items() if before.get(name) is not value}
    changes.update(dict.fromkeys(before.keys() - after.keys()))
    return changes


def _load_note(directory: Path, identity: str) -> dict:
    return {"identity": identity, "folder": os.path.abspath(directory)}


def kept_load(store: Store | None, directory: str | Path, identity: str) -> tuple[LoadMemo, bool]:
    """Return the last whole load of ``directory`` the state kept (or an empty memo), and whether there was one.

    One file of 100,000 entries loads in about a second; the same entries one by one from the
    parse cache take five. Only a load this code made of this folder is taken.
    """
    if store is None:
        return LoadMemo(), False
    parses = store.parses
    memo = store.snapshots.read(
        store.side_file("load"),
        lambda source: load_memo(source, lambda key, digest, name: StoredBody(parses, key, digest, name)),
        _load_note(Path(directory), identity),
    )
    if memo is None:
        return LoadMemo(), False
    memo.scan = replace(memo.scan, root=os.fspath(directory))  # named as this process names it
    return memo, True


def keep_load(store: Store | None, memo: LoadMemo, directory: str | Path, identity: str) -> None:
    """Keep ``memo`` (a whole load) for the next start of ``directory`` (100,000 entries: ~3 s to write)."""
    if store is not None:
        store.snapshots.write(store.side_file("load"), dump_memo(memo), _load_note(Path(directory), identity))


class Publisher:
    """Owns the current Publication; readers take ``publisher.current`` and never see a half-built one."""

    def __init__(
        self,
        directory: str | Path,
        overrides: Mapping[str, Any] | None = None,
        hub_url: str | None = None,
        store: Store | None = None,
        announce: Announce | None = None,
        clock: Callable[[], float] = time.time,
        watch_every: float | None = None,
        identity: str | None = None,
        processes: int = 1,
        defer_bodies: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ):
        """Load and build the folder; with ``watch_every`` s, follow it from then on (``watch``).

        A folder that cannot be published (raises ContentError) is a start on the namespace's last
        good version, when ``store`` kept one for this code, with the problems reported; without
        one the ContentError is raised. ``announce`` queues WebSub pings once every worker serves a
        version. ``processes``, ``defer_bodies`` and ``progress`` are the loader's (``load_content``):
        `serve`'s check parses on every core and leaves the bodies without pictures to the workers.
        """
        tune_heap()  # before the first load: a long-lived holder of a large heap
        self.directory = Path(directory)
        self.clock = clock  # when scheduled entries go live (tests inject one)
        self.overrides = dict(overrides or {})
        self.hub_url = hub_url
        self.store = store
        self.announce = announce
        self.identity = identity or build_identity()
        self._load_options = {"processes": processes, "defer_bodies": defer_bodies and store is not None, "progress": progress}
        self._loaded: Content | None = None  # the last load that built, scheduled entries included
        self._loaded_files: Mapping[str, tuple] = {}  # that load's entry files (the memo's, as it was then)
        self._kept: tuple[str | None, Mapping[str, tuple]] = (None, {})  # the version kept last, and its files
        # the last load, reused for unchanged files: at a start, the one the state kept (a restart reads no entry one by one)
        self._parsed, kept = self._kept_load()
        self._scan: FolderScan | None = None  # the last look at the folder, which the watcher's events update
        self._lock = threading.Lock()  # one reload at a time
        self._stop = threading.Event()
        self.error: ContentError | None = None
        self._retry_at: datetime | None = None  # when the folder's problems are over by themselves (``ContentError.retry_at``)
        self.current: Publication | None = None
        self.watch_error: str | None = None  # why the watcher is not watching, when it is not
        self._watcher: threading.Thread | None = None
        self._watch_beat = time.monotonic()  # the watcher's last finished look at the folder
        self._unstamped = False  # the version served was built while the state could not give Last-Modified times
        self._generation = ""  # the state database's generation the version served was recorded in
        self.bodies_to_render = 0  # deferred bodies left in the state, as the renderer last counted them
        # inotify from the first look on: the start's build is checked against its events instead of a
        # second scan of every file, and the watcher (``watch_every``) carries on from them
        self._start_watch = self._open_watch()
        try:
            self._fingerprint: tuple | None = self._first_build()
        except ContentError as error:
            if not self._start_from_kept(error):
                self.stop()
                raise
        except BaseException:
            self.stop()
            raise
        self.loaded_at = datetime.now(UTC)
        if self._parsed.version is not None and (not kept or self._parsed.fresh > SNAPSHOT_STALE_FILES):
            self._keep_load()
        settle_heap()
        self._served(self.current)
        if watch_every:
            self.watch(watch_every)
            self.render_deferred_bodies()
        else:  # an inotify watch per publisher nobody watches with would run out (128 instances per user by default)
            self._close_start_watch()

    # --- the state's side files -------------------------------------------------------------------

    def _kept_load(self) -> tuple[LoadMemo, bool]:
        return kept_load(self.store, self.directory, self.identity)

    def _keep_load(self) -> None:
        keep_load(self.store, self._parsed, self.directory, self.identity)

    def _keep_hot_set(self, publication: Publication) -> None:
        """Keep the documents ``publication`` serves from memory for the next start (unless kept already, by another worker)."""
        store = self.store
        if store is None or self._loaded is None:
            return
        name = store.side_file("hot-set")
        note = {"identity": self.identity, "version": publication.version, "loaded": self._loaded.version}
        if store.snapshots.note(name) != note or not (store.directory / name).exists():
            store.snapshots.write(name, dump_pickle(hot_set(publication, self._loaded.version)), note)

    # --- building ---------------------------------------------------------------------------------

    def _open_watch(self) -> FolderWatch | None:
        try:
            return FolderWatch(self.directory)
        except WatchError:  # no inotify instance left, a folder that vanished: the start checks by scanning instead
            return None

    def _first_build(self) -> tuple:
        """Load and build the folder for the start (raises ContentError)."""
        events = self._start_watch
        for _ in range(_STALE_RETRIES):
            scan = self._look(events)
            seen = _signature(self.directory, scan)
            try:
                loaded = self._load(scan)
                self.current = self._build(seen, loaded, events.quiet if events is not None else None)
                self._loaded, self._loaded_files = loaded, self._parsed.files
                return seen
            except StaleBuildError:
                continue
            except ContentError:
                raise
            except Exception as error:
                raise _unexpected(error) from error
        raise ContentError([Problem(".", "folder", "kept changing while it was read; start again once it is saved")])

    def _start_from_kept(self, error: ContentError) -> bool:
        """Serve the namespace's last good version (the folder is broken); tell whether the state kept one for this code."""
        kept = self.store.kept.load(self.identity) if self.store is not None else None
        if kept is None:
            return False
        try:
            loaded = load_kept(self.directory, kept, self._parsed, self.store.parses)
            content = release(loaded, self._now())
            publication = build_publication(content, self.hub_url)
        except (KeptVersionError, ContentError, BodyUnavailableError) as failure:  # its parses or bodies are gone with a database
            log.warning("state: the last good version could not be built again (%s)", failure)
            return False
        # the version the other workers serve, current in the state already: its times (none, if the state moved on)
        self.current = self._restamped(replace(publication, stamp=self._stamper(content.version)))
        self._unstamped = self.store.problem is not None
        self._generation = self.store.db.generation
        self._loaded, self._loaded_files = loaded, self._parsed.files
        self._kept = (kept.version, self._parsed.files)
        self._fingerprint = None  # whatever the folder holds is looked at again on the next change
        self.error, self._retry_at = error, error.retry_at
        log.error(
            "content in %s cannot be published; serving the last good version %s:\n%s",
            self.directory,
            self.current.version,
            "\n".join(first_problems([str(p) for p in error.problems])),
        )
        return True

    def _restamped(self, publication: Publication) -> Publication:
        """Give a version's documents their Last-Modified times from the state, as far as it has them."""
        if publication.stamp is None:
            return publication
        try:
            stamps = publication.stamp({path: document.etag for path, document in publication.documents.items()})
        except StaleBuildError:
            return publication
        return replace(publication, documents={path: d.stamped(stamps.get(path)) for path, d in publication.documents.items()})

    def _close_start_watch(self) -> None:
        started, self._start_watch = self._start_watch, None
        if started is not None:
            started.close()

    def _recorder(self, loaded: Content) -> Callable | None:
        """The work that records ``loaded`` as the namespace's kept version, in the transaction that makes it current."""
        if self.store is None or loaded is self._loaded:
            return None  # a scheduled entry released from the version kept already
        based_on, before = self._kept
        files = self._parsed.files
        changes = _kept_changes(before, files) if based_on is not None else None
        return self.store.kept.recorder(
            loaded.version,
            self.identity,
            loaded.site,
            self._parsed.site_digest,
            lambda: (_kept_file(name, value) for name, value in files.items()),
            based_on,
            changes,
        )

    def _stamper(self, version: str, seen: tuple | None = None, quiet: Callable[[], bool] | None = None, also: Callable | None = None):
        """Stamp documents through the state: a build checks the folder is still ``seen``; later renders check the version.

        ``quiet`` (no inotify event since the folder was looked at) answers "still seen" without a full rescan.
        """
        if self.store is None:
            return None
        stamps, directory = self.store.stamps, self.directory
        still_current = None if seen is None else quiet or (lambda: _signature(directory) == seen)

        def stamp(etags: Mapping[str, str]) -> Mapping[str, datetime | None]:
            return stamps.last_modified(etags, version, still_current, also)

        return stamp

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _load(self, scan: FolderScan) -> Content:
        """Load the folder (raises ContentError)."""
        cache = self.store.parses if self.store is not None else None
        return load_content(
            self.directory, self.overrides, self._parsed, cache=cache, scan=scan, identity=self.identity, **self._load_options
        )

    def release_due(self) -> bool:
        """Tell whether a scheduled entry's time has come and it is not served yet."""
        due = None if self.current is None else self.current.content.next_release
        return due is not None and self._now() >= due

    def retry_due(self) -> bool:
        """Tell whether the folder's problems were to be over by now (an ``updated`` that was later than the clock)."""
        return self._retry_at is not None and self._now() >= self._retry_at

    def _build(self, seen: tuple, loaded: Content, quiet: Callable[[], bool] | None = None) -> Publication | None:
        """Build the version the folder has now, or return None when it is the version already served (a touch)."""
        content = release(loaded, self._now())
        if self.current is not None and content.version == self.current.version:
            return None
        also = self._recorder(loaded)
        publication = build_publication(content, self.hub_url, self.current, self._stamper(content.version, seen, quiet, also))
        self._unstamped = self.store is not None and self.store.problem is not None
        if self.store is not None and not self._unstamped:
            self._generation = self.store.db.generation
            if also is not None:
                self._kept = (loaded.version, self._parsed.files)
        return replace(publication, stamp=self._stamper(content.version))

    def _look(self, events: FolderWatch | None) -> FolderScan:
        """Scan the folder: only the paths the watcher's events named, when it has them and a scan to update."""
        changed = events.take() if events is not None else None
        if changed is None or self._scan is None:
            earlier, self._scan = self._scan, None  # a failed scan leaves nothing to update
            # unchanged files keep the records the last scan (at a start, the kept load) has: the loader finds changes by identity
            self._scan = scan_folder(self.directory, earlier.files if earlier is not None else self._parsed.scan.files)
        else:
            self._scan = rescan_folder(self.directory, self._scan, changed)
        return self._scan

    def refresh(self, events: FolderWatch | None = None) -> bool:
        """Reload when the folder changed; return True when a new version is now served.

        With ``events`` (the watcher's), only the paths they named are looked at again. Never
        raises: whatever goes wrong becomes the recorded problem that /healthz reports.
        """
        with self._lock:
            self._restamp()  # the state failed or was made anew since this version was recorded: record it again
            for _ in range(_STALE_RETRIES):
                seen = None
                try:
                    scan = self._look(events)
                    seen = _signature(self.directory, scan)
                    # racy files: their stat may not show an edit, so an unchanged look proves nothing
                    releasing = seen == self._fingerprint and not scan.racy and not self.retry_due()
                    if releasing and not self.release_due():
                        return False
                    if releasing:
                        loaded = self._loaded
                    else:
                        try:
                            loaded = self._load(scan)
                        except ContentError as error:
                            self._failed(seen, error)
                            if not self.release_due():
                                return False
                            loaded, releasing = self._loaded, True
                    # a scheduled entry's time came: the last good load is released, even while an edit is broken
                    publication = self._build(seen, loaded, events.quiet if events is not None else None)
                    if loaded is not self._loaded:
                        self._loaded, self._loaded_files = loaded, self._parsed.files  # what scheduled entries are released from later
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

    def restamp(self) -> bool:
        """Record the version served in the state again if the state could not take it (a full or read-only disk) or lost it
        (its database deleted, damaged, made anew): its Last-Modified times, its kept version, its hot set. Tell whether it did."""
        with self._lock:
            return self._restamp()

    def _state_lost(self) -> bool:
        """Tell whether the state's database is not the one this version was recorded in (made anew since)."""
        return self.store is not None and self.store.db.generation not in ("", self._generation)

    def _restamp(self) -> bool:
        current, loaded, store = self.current, self._loaded, self.store
        if current is None or loaded is None or store is None or not (self._unstamped or self._state_lost()):
            return False
        if self._state_lost() and not self._keep_parses_again(loaded):
            return False
        files = self._loaded_files
        also = store.kept.recorder(
            loaded.version, self.identity, loaded.site, self._parsed.site_digest, lambda: (_kept_file(n, v) for n, v in files.items())
        )

        seen, directory = self._fingerprint, self.directory

        def still_current() -> bool:  # the folder still holds this version (or, broken, what it held when it failed)
            return seen is not None and _signature(directory) == seen

        def stamp(etags: Mapping[str, str]) -> Mapping[str, datetime | None]:
            # current again when the folder is still what it was, or when no version is (a database made anew): a worker
            # that moved on to a newer version keeps its own
            return store.stamps.last_modified(etags, current.version, still_current, also=also, claim=True)

        try:
            stamps = stamp({path: document.etag for path, document in current.documents.items()})
        except StaleBuildError:
            return False  # another worker serves a newer version: the reload that follows stamps what it builds
        if store.problem is not None:
            return False
        documents = {path: document.stamped(stamps.get(path)) for path, document in current.documents.items()}
        self.current = replace(current, documents=documents, stamp=self._stamper(current.version))
        self._unstamped, self._generation, self._kept = False, store.db.generation, (loaded.version, files)
        self._keep_hot_set(self.current)
        log.info("state: version %s is recorded in the state again (Last-Modified times, kept version, hot set)", current.version)
        return True

    def _keep_parses_again(self, loaded: Content) -> bool:
        """The database the version served was kept in is gone: keep its parses and bodies again, so that a worker starting
        on a broken folder later still finds the last good version whole.

        While the folder holds that version, it is loaded again into the new database (bodies without pictures kept as
        their source, as a first start keeps them: 100,000 entries, ~30 s in this thread while serving goes on). While
        it is broken, the parses are kept as they are and the bodies are rendered again from their files when asked for
        (those of files edited since are lost with the database).
        """
        store = self.store
        if self.error is None:
            memo = LoadMemo()
            try:
                reloaded = load_content(self.directory, self.overrides, memo, cache=store.parses, identity=self.identity, defer_bodies=True)
            except ContentError:
                reloaded = None
            if reloaded is not None and reloaded.version == loaded.version:
                self._parsed, self._loaded_files = memo, memo.files
                self._keep_load()
                return store.problem is None
        return store.parses.remember_parses_only({key: entry for _, key, entry in self._loaded_files.values()})

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
        self._retry_at = error.retry_at  # or when the problem is over by itself (a date that was in the future)

    def _fixed(self, seen: tuple) -> None:
        if self.error is not None:
            log.info("content problems fixed")
        self._fingerprint = seen
        self.error = None
        self._retry_at = None
        self.loaded_at = datetime.now(UTC)

    def _swap(self, seen: tuple, publication: Publication, fixed: bool = True) -> bool:
        self.current = publication  # one reference swap: atomic for readers
        if fixed:
            self._fixed(seen)
        settle_heap()
        log.info("serving content version %s (%d entries)", publication.version, len(publication.content.entries))
        self._served(publication)
        return True

    def _served(self, publication: Publication) -> None:
        """Say in the state that this worker serves ``publication`` (and is alive); ping for it once every worker does."""
        store = self.store
        if store is None:
            return
        topics = subscription_topics(publication) if self.announce is not None else None
        due = store.workers.serving(store.token, publication.version, topics)
        if due and self.announce is not None:
            self.announce(due)
        if publication is self.current and not self._unstamped:
            self._keep_hot_set(publication)
            store.prune(len(self._loaded_files))

    def status(self) -> dict[str, Any]:
        """Describe what is served and whether publishing follows the folder, for /healthz (bounded size)."""
        problems = [] if self.error is None else [str(p) for p in self.error.problems]
        if self.store is not None and self.store.problem is not None:
            problems.insert(0, self.store.problem)
        if self._watcher is not None and not self._stop.is_set():
            stalled = time.monotonic() - self._watch_beat
            if not self._watcher.is_alive():
                problems.insert(0, "watcher: stopped; edits are not published until the service restarts")
            elif self.watch_error is not None:
                problems.insert(0, f"watcher: not watching the folder: {self.watch_error}")
            elif stalled > WATCH_STALL_SECONDS:
                problems.insert(0, f"watcher: has not finished a look at the folder for {stalled:.0f} s (a reload is stuck)")
        folders = [self.directory] if self.store is None else [self.directory, self.store.directory]
        problems = without_paths(problems, *folders)
        return health_report(problems, self.current.version, len(self.current.content.entries), self.loaded_at, self.bodies_to_render)

    # --- following the folder -----------------------------------------------------------------------

    def watch(self, delay: float) -> threading.Thread:
        """Reload on file-system events (inotify), batching the events of one save into one reload.

        Events cost nothing while nobody edits. Every ``delay`` s (at least 50 ms) the watcher also
        asks which folder the content path names, one stat: when a ``current -> releases/N`` link
        is switched or the folder is replaced, it watches the new one and reloads at once. A safety
        net catches whatever events can miss at a cost of milliseconds (SAFETY_NET_SECONDS,
        FULL_CHECK_SECONDS). The folder is checked as soon as a watch is in place, so a save made
        while the service started is not missed. Every HEARTBEAT_SECONDS the worker says in the
        state that it is alive, and a version built while the state could not be written gets
        its Last-Modified times once it can.
        """
        poll = max(0.05, delay)
        handed_over = [self._start_watch]  # the start's watch, taken over by the first look (in the watcher's thread)
        self._start_watch = None

        def watch_folder() -> None:
            started = handed_over.pop() if handed_over else None
            if started is not None and started.lost:
                started.close()
                started = None
            try:
                events = started or FolderWatch(self.directory)
            except WatchError as error:
                raise OSError(str(error)) from None
            if started is None:
                events.everything()  # a new watch: what changed before it was in place is looked for in every file
            with events:
                self.watch_error = None
                self.refresh(events)  # what changed since the start's look (a new watch: everything, its first take)
                checked = fully_checked = beat = self._watch_beat = time.monotonic()
                folders = folders_signature(self.directory)
                while not self._stop.is_set():
                    changed = events.wait(poll)
                    if self._stop.is_set():
                        return
                    if events.lost or folder_identity(self.directory) != events.identity:
                        log.info("content folder %s now names %s: watching it", self.directory, os.path.realpath(self.directory))
                        return
                    now = time.monotonic()
                    if changed or self.release_due() or self.retry_due():  # scheduled entries go live within a poll
                        self.refresh(events)
                    elif now - checked > SAFETY_NET_SECONDS:
                        trim_heap()  # what documents rendered on request since have freed, too
                        checked, seen_folders = now, folders_signature(self.directory)
                        if seen_folders != folders or now - fully_checked > FULL_CHECK_SECONDS:
                            events.everything()  # what events may have missed: look at every file
                            self.refresh(events)
                            fully_checked = now
                        folders = seen_folders
                    if now - beat > HEARTBEAT_SECONDS:
                        beat = now
                        self.restamp()
                        self._served(self.current)
                    self._watch_beat = time.monotonic()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    watch_folder()
                except Exception as error:  # the watcher must survive anything an editor or a deploy can do
                    self.watch_error = f"{type(error).__name__}: {shorten(str(error).replace(os.fspath(self.directory), '.'), 200)}"
                    log.warning("cannot watch %s (%s); retrying", self.directory, self.watch_error)
                    self.refresh()  # a missing or unreadable folder is reported as a content problem
                    self._stop.wait(1)

        self._watch_beat = time.monotonic()
        self._watcher = threading.Thread(target=loop, name="feedsvc-content-watcher", daemon=True)
        self._watcher.start()
        return self._watcher

    def render_deferred_bodies(self) -> threading.Thread | None:
        """Render the bodies a start deferred (``load_content``'s ``defer_bodies``), newest first, in a thread; None when none are left.

        Every worker takes part (the state hands each its own batches), so the first request for
        an old page or archive seldom finds its bodies unrendered; one that does renders them itself.
        """
        if self.store is None:
            return None
        parses = self.store.parses

        def render() -> None:
            while not self._stop.is_set():
                try:
                    done, self.bodies_to_render = parses.render_deferred_bodies(DEFERRED_BATCH)
                except Exception as error:  # a body the renderer fails on is its own problem; this thread carries on
                    log.warning("cannot render deferred bodies (%s: %s)", type(error).__name__, error)
                    done = 0
                if not self.bodies_to_render:
                    return
                if not done:  # the rest is claimed by another worker, or the state failed: look again later
                    self._stop.wait(DEFERRED_RETRY_SECONDS if self.store.problem is None else DEFERRED_FAILED_SECONDS)

        self.bodies_to_render = parses.deferred_bodies()
        if not self.bodies_to_render:
            return None
        thread = threading.Thread(target=render, name="feedsvc-body-renderer", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the watcher thread and leave the workers serving (pings under way are sent by the next to look)."""
        self._stop.set()
        self._close_start_watch()
        if self.store is not None:
            self.store.workers.retire(self.store.token)
