"""The state folder's database: one SQLite file (WAL) shared by every process, that may fail in any way and never takes serving down.

Every use goes through ``Database.read`` or ``Database.write`` with a default: when the file is
locked past its timeout, read-only, on a full disk, deleted or damaged, the caller gets the
default (a cache miss, no Last-Modified) and ``problem`` says what is wrong, as ``state: ...``
in the log and /healthz. A database that is unusable is tried again with backoff (1 s doubling to
ten seconds), so a freed disk is used again within seconds; a damaged one is moved aside and a new
one made; a deleted one is made again. Nothing the database holds decides what is served: it
only makes serving faster and gives Last-Modified times.

The database has a generation, a random id made with it: the side files (``snapshots.py``) are
trusted only while the database that recorded them is the one they were written beside.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger("feedsvc.state")
DATABASE_FILE = "state.sqlite3"
LOCK_FILE = "state.lock"  # held while the database is made or set aside
SCHEMA_VERSION = "1"  # another value (a database of another feedsvc) is moved aside, as a damaged one is
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of write-ahead log kept after a checkpoint
BUSY_TIMEOUT = 30  # seconds a transaction waits for another process's
FIRST_BACKOFF, LAST_BACKOFF = 1.0, 10.0  # seconds between attempts on a database that cannot be used (a try costs little)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Last-Modified: when each document's bytes (its ETag) last changed, per namespace (stamps.py)
CREATE TABLE IF NOT EXISTS documents (namespace TEXT NOT NULL, path TEXT NOT NULL, etag TEXT NOT NULL, changed INTEGER NOT NULL,
                                      PRIMARY KEY (namespace, path)) WITHOUT ROWID;
-- the version each role of a namespace last built from the folder as it was: stamps follow the folder's order
CREATE TABLE IF NOT EXISTS current_versions (namespace TEXT NOT NULL, role TEXT NOT NULL, version TEXT NOT NULL,
                                             PRIMARY KEY (namespace, role)) WITHOUT ROWID;
-- the loader's cache (parses.py): a file's digest by its stat, a parse by its inputs, bodies by parse and entry digest
CREATE TABLE IF NOT EXISTS file_digests (folder TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                                         change INTEGER NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (folder, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parsed_entries (key TEXT PRIMARY KEY, entry BLOB NOT NULL, checksum TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entry_texts (key TEXT PRIMARY KEY, html TEXT NOT NULL, headings TEXT NOT NULL, summary TEXT NOT NULL,
                                        checksum TEXT NOT NULL);
-- bodies without pictures a start checked but did not render (markdown.DeferredBody): rendered when first asked
-- for, and by the workers meanwhile, newest first; ``claimed``: when a worker took it (time.time())
CREATE TABLE IF NOT EXISTS deferred_bodies (key TEXT PRIMARY KEY, packed_source BLOB NOT NULL, page_url TEXT NOT NULL, summary TEXT,
                                            published REAL NOT NULL, claimed REAL NOT NULL DEFAULT 0, checksum TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deferred_bodies_newest ON deferred_bodies (published);
-- the last good version of each namespace (kept.py): what a worker serves when it starts on a broken folder
CREATE TABLE IF NOT EXISTS kept_versions (namespace TEXT PRIMARY KEY, version TEXT NOT NULL, identity TEXT NOT NULL,
                                          site BLOB NOT NULL, files INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kept_files (namespace TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                                       change INTEGER NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL,
                                       PRIMARY KEY (namespace, name)) WITHOUT ROWID;
-- side files beside the database (snapshots.py): a file is trusted only with this row's digest and note
CREATE TABLE IF NOT EXISTS snapshots (name TEXT PRIMARY KEY, digest TEXT NOT NULL, size INTEGER NOT NULL, note TEXT NOT NULL);
-- live workers (ledgers.py): which version each serves, and when it last said it was alive
CREATE TABLE IF NOT EXISTS workers (token TEXT PRIMARY KEY, namespace TEXT NOT NULL, pid INTEGER NOT NULL, started TEXT NOT NULL,
                                    version TEXT NOT NULL, beat REAL NOT NULL);
-- WebSub (ledgers.py): the entity tag the hub was last told of each topic, and a ping under way
CREATE TABLE IF NOT EXISTS announced (namespace TEXT NOT NULL, topic TEXT NOT NULL, told TEXT NOT NULL DEFAULT '',
                                      pending TEXT NOT NULL DEFAULT '', pinger TEXT NOT NULL DEFAULT '',
                                      PRIMARY KEY (namespace, topic)) WITHOUT ROWID;
-- the static export (ledgers.py): what each file of an export folder was made from
CREATE TABLE IF NOT EXISTS exported (folder TEXT NOT NULL, path TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL,
                                     stamp INTEGER, PRIMARY KEY (folder, path)) WITHOUT ROWID;
"""
# SQLite result codes (https://www.sqlite.org/rescode.html) by what they mean for feedsvc
_DAMAGED = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")
_DAMAGE_WORDS = ("malformed", "Could not decode")

T = TypeVar("T")


def _statements(script: str) -> list[str]:
    """The statements of a schema script, without its comments (run one by one inside a transaction)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]


class _Foreign(Exception):
    """The file is a database of another schema (another feedsvc): moved aside like a damaged one."""


def _kind(error: BaseException) -> str:
    """What a failure means: "damaged" (moved aside), "busy" (another process holds it) or "unavailable" (retried with backoff)."""
    if isinstance(error, _Foreign):
        return "damaged"
    name = getattr(error, "sqlite_errorname", "") or ""
    # a row whose text is not UTF-8 any more was damaged on disk too (sqlite3 reports it as an OperationalError)
    if name in _DAMAGED or (isinstance(error, sqlite3.DatabaseError) and any(word in str(error) for word in _DAMAGE_WORDS)):
        return "damaged"
    if name.startswith(_BUSY):
        return "busy"
    return "unavailable"


def describe(error: BaseException) -> str:
    """A failure in a short line, without the state folder's path (it may tell the machine's layout) or what a row held."""
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    text = (str(error) or type(error).__name__).split(" with text ")[0]
    return text if len(text) <= 120 else text[:119] + "\u2026"


class Database:
    """The state database: one connection per thread and process, opened (and made again) when needed."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.path = self.directory / DATABASE_FILE
        self._local = threading.local()
        self._lock = threading.Lock()
        self._problems: dict[str, str | None] = {"read": None, "write": None}
        self._retry_at = {"read": 0.0, "write": 0.0}  # monotonic time before which that use is not tried again
        self._backoff = {"read": 0.0, "write": 0.0}

    @property
    def problem(self) -> str | None:
        """What is wrong with the state now (None: nothing), for /healthz and the log."""
        return self._problems["write"] or self._problems["read"]

    @property
    def generation(self) -> str:
        """The random id of the database in use ("" when there is none to use)."""
        return self.read(lambda db: self._local.generation, "")

    # --- connections ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        db = getattr(local, "db", None)
        if db is not None and (local.pid != os.getpid() or self._file_identity() != local.identity):
            # a forked process never uses its parent's connection; a file deleted, replaced or moved aside is
            # left (a connection to an unlinked file would go on writing to it, apart from every other process)
            self.close()
            db = None
        if db is None:
            db = self._open()
            try:
                identity = self._file_identity()
                db.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
                db.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a power cut may lose the last commit
                # a cold parse of 100,000 entries grew the WAL to 2.1 GB, and SQLite keeps a WAL's size for reuse:
                # after each checkpoint it is cut back to this
                db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
                local.generation = self._prepare(db)
            except BaseException:
                db.close()
                raise
            local.db, local.pid, local.identity = db, os.getpid(), identity
        return db

    def _open(self) -> sqlite3.Connection:
        """Connect to the database file, making a new one if there is none.

        Made under a lock shared by every process: a write-ahead log left beside a deleted
        database would be read into the new one as if it were its own, so it goes first.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._file_identity() is not None:
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        with self._folder_lock():
            if self._file_identity() is None:
                for suffix in ("-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path.with_name(DATABASE_FILE + suffix))
            return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)

    @contextlib.contextmanager
    def _folder_lock(self):
        """Hold the state folder's lock (a file beside the database) against every other process and thread."""
        with self._lock, open(self.directory / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_dev, info.st_ino

    @staticmethod
    def _prepare(db: sqlite3.Connection) -> str:
        """Return the database's generation, making the tables and the generation of a new one; refuse one of another schema."""
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is not None:
            meta = dict(db.execute("SELECT key, value FROM meta"))
            if meta.get("schema") == SCHEMA_VERSION and meta.get("generation"):
                return meta["generation"]
        db.execute("BEGIN IMMEDIATE")  # two processes making the same new database: one makes it, the other finds it
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            meta = dict(db.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
            if tables and meta.get("schema") != SCHEMA_VERSION:
                raise _Foreign(f"{DATABASE_FILE} was written by another version of feedsvc")
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            if not meta.get("generation"):
                meta = {"schema": SCHEMA_VERSION, "generation": uuid.uuid4().hex}
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return meta["generation"]

    def close(self) -> None:
        """Close this thread's connection (the next use opens one again)."""
        db = getattr(self._local, "db", None)
        self._local.db = None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    # --- use -------------------------------------------------------------------------------------

    def read(self, work: Callable[[sqlite3.Connection], T], default: T) -> T:
        """Return ``work(connection)``, or ``default`` when the database cannot be read (``problem`` says why)."""
        return self._use("read", work, default)

    def write(self, work: Callable[[sqlite3.Connection], T], default: T) -> T:
        """Run ``work(connection)`` as one transaction and return its result, or ``default`` when the database cannot
        be written. ``BEGIN IMMEDIATE``: a read-decide-write is one step among processes. Exceptions of ``work``'s own
        (not the database's) roll it back and propagate."""

        def transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            return result

        return self._use("write", transaction, default)

    def _use(self, use: str, work: Callable[[sqlite3.Connection], T], default: T) -> T:
        if time.monotonic() < self._retry_at[use]:
            return default  # it failed a moment ago: tried again once the backoff has passed
        for attempt in range(2):
            try:
                result = work(self._connection())
            except (sqlite3.Error, OSError, _Foreign) as error:
                kind = _kind(error)
                if kind == "damaged" and attempt == 0:
                    self._set_aside(error)
                    continue  # a new database, at once
                self._failed(use, kind, error)
                return default
            self._succeeded(use)
            return result
        return default  # not reached

    def _set_aside(self, error: BaseException) -> None:
        """Move a damaged (or foreign) database aside, so that the next connection makes a new one."""
        identity = getattr(self._local, "identity", None)
        self.close()
        with self._folder_lock():
            if identity is None or self._file_identity() != identity:
                return  # another thread or process set it aside already: the next connection uses the new one
            aside = f"{DATABASE_FILE}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self.path.with_name(DATABASE_FILE + suffix), self.path.with_name(aside + suffix))
        log.error("state: %s could not be used (%s); moved aside as %s, a new one is made", DATABASE_FILE, describe(error), aside)

    def _failed(self, use: str, kind: str, error: BaseException) -> None:
        delay = 0.0 if kind == "busy" else min(LAST_BACKOFF, max(FIRST_BACKOFF, 2 * self._backoff[use]))
        self._backoff[use] = delay
        self._retry_at[use] = time.monotonic() + delay
        what = "read" if use == "read" else "written"
        problem = f"state: {DATABASE_FILE} cannot be {what} ({describe(error)}); serving goes on without it, retrying"
        if problem != self._problems[use]:
            log.warning("%s", problem)
        self._problems[use] = problem

    def _succeeded(self, use: str) -> None:
        self._backoff[use] = 0.0
        if self._problems[use] is not None:
            self._problems[use] = None
            log.info("state: %s can be %s again", DATABASE_FILE, "read" if use == "read" else "written")
