"""The service's one durable store: SQLite (WAL) in FEEDSVC_STATE_DIR, shared by every worker process.

It remembers what must survive a restart and be the same in every process:
- ``documents``: each document's current entity tag and when its bytes last changed, the
  source of Last-Modified (a validator describes bytes, not editorial dates);
- ``workers``: which content version each live worker serves, so WebSub pings wait for all;
- ``announced``: the entity tag of each subscription feed the hub was last told about;
- ``exported``: each file of the two static export folders: what it was made from (its input
  key), its ETag and mtime, so the next export keeps the files whose inputs did not change
  instead of rendering them, and removes those of documents that are gone;
- ``file_digests``, ``parsed_entries`` and ``entry_texts``: a cache of the loader's work (a file's
  digest by its name, size and mtime; a parsed entry by its file's digest and the site file's,
  its rendered body, headings and summary apart), so a restart or a second worker reads, parses and renders only files
  it has not seen, and no worker holds every body in memory.
Every decision that several workers race for is one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import sqlite3
import sys
import threading
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .content import ContentFile, FolderScan, LoadMemo, collector_paused
from .markdown import DeferredBody
from .models import ENTRY_FIELDS, ENTRY_SLOT_SETTERS, Entry, Heading

DATABASE_FILE = "feedsvc.sqlite3"
SNAPSHOT_FILE = "last-load.pickle"  # the loader's memo of the last whole load (Store.save_snapshot)
HOT_SET_FILE = "hot-set.pickle"  # the documents the last version was served with from memory (Store.save_hot_set)
HOT_SET_SETTING = "hot set"  # what HOT_SET_FILE holds, readable without loading it
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (path TEXT PRIMARY KEY, etag TEXT NOT NULL, changed INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workers (token TEXT PRIMARY KEY, pid INTEGER NOT NULL, started TEXT NOT NULL, version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS announced (topic TEXT PRIMARY KEY, etag TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS file_digests (name TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parsed_entries (key TEXT PRIMARY KEY, entry BLOB NOT NULL);
DROP TABLE IF EXISTS bodies;
DROP TABLE IF EXISTS entry_bodies;
CREATE TABLE IF NOT EXISTS entry_texts (key TEXT PRIMARY KEY, html TEXT NOT NULL, headings TEXT NOT NULL, summary TEXT NOT NULL);
-- bodies without pictures a start checked but did not render (markdown.DeferredBody): rendered when first asked
-- for, and by the workers meanwhile, newest first; ``claimed``: when a worker took it (time.time())
CREATE TABLE IF NOT EXISTS deferred_bodies (key TEXT PRIMARY KEY, packed_source BLOB NOT NULL, page_url TEXT NOT NULL, summary TEXT,
                                            published REAL NOT NULL, claimed REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS deferred_bodies_newest ON deferred_bodies (published);
CREATE TABLE IF NOT EXISTS exported (folder TEXT NOT NULL, path TEXT NOT NULL, key TEXT NOT NULL, etag TEXT NOT NULL,
                                     stamp INTEGER, PRIMARY KEY (folder, path));
"""
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of write-ahead log kept after a checkpoint
RECENT_BODIES = 512  # bodies each process keeps in memory: a few documents' worth (a day's archive shows ~55)
_FEW = 500  # stamping fewer documents than this looks them up one by one, more reads the whole table


class StateError(Exception):
    """The state folder cannot be used (not writable, not a database)."""


class StaleBuildError(Exception):
    """The content folder changed while a version was being built: a newer build will follow."""


def default_state_dir(content_dir: str | Path) -> Path:
    """Return the state folder used when FEEDSVC_STATE_DIR is not set: one per content folder, under XDG_STATE_HOME.

    The content folder's absolute path (not its resolved one, so a ``current -> releases/N``
    symlink keeps one state across releases) names the subfolder.
    """
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "feedsvc"
    absolute = Path(content_dir).absolute()
    return base / f"{absolute.name}-{hashlib.sha256(str(absolute).encode()).hexdigest()[:12]}"


def process_start(pid: int) -> str | None:
    """Return an identifier of when process ``pid`` started (Linux /proc), or None when it is not running.

    A pid alone can be reused by an unrelated process after a worker dies.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: fall back to "is some process with this pid alive"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime, counted after the command name


def _seconds(moment: int) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _body_key(parse_key: str, entry: Any) -> str:
    """Where a parse's rendered body is kept: the parse's key and the entry's digest.

    The digest covers the pictures the body shows, which the parse key (the file and the site
    file) does not: a replaced picture re-renders the body under a new key, so no process's cache
    of bodies can hand out the old one.
    """
    return f"{parse_key}:{entry.digest}"


def _mark_announced(db: sqlite3.Connection, topics: Mapping[str, str]) -> list[str]:
    """Return the topics whose entity tag differs from what the hub was last told, recording them as told."""
    told = dict(db.execute("SELECT topic, etag FROM announced"))
    due = [topic for topic, etag in topics.items() if told.get(topic) != etag]
    db.executemany(
        "INSERT INTO announced (topic, etag) VALUES (?, ?) ON CONFLICT (topic) DO UPDATE SET etag = excluded.etag",
        [(topic, topics[topic]) for topic in due],
    )
    return due


class Store:
    """Durable, multi-process state in one SQLite file; one connection per thread."""

    def __init__(self, directory: str | Path, clock: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.clock = clock
        self._local = threading.local()
        # the bodies of the documents being rendered now and then: the newest feeds' entries, recent pages
        self._recent_bodies: OrderedDict[str, tuple[str, tuple[Heading, ...], str]] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._parses_added = 1001  # parses this process stored since it last counted them all (first: count)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._connection().executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise StateError(
                f"state folder {self.directory} cannot be used ({error}); set FEEDSVC_STATE_DIR to a writable folder"
            ) from None

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid != os.getpid():
            db = None  # a forked process (parallel export) never uses its parent's connection
        if db is None:
            db = sqlite3.connect(self.directory / DATABASE_FILE, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            db.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent; a power cut may lose the last commit
            # a cold parse of 100,000 entries grew the WAL to 2.1 GB, and SQLite keeps a WAL's size for reuse:
            # after each checkpoint it is cut back to this
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            self._local.db = db
            self._local.pid = os.getpid()
        return db

    @contextmanager
    def _transaction(self):
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")  # take the write lock now: the read-decide-write below is one step
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- Last-Modified -------------------------------------------------------------------------

    def last_modified(self, etags: Mapping[str, str], version: str, still_current: Callable[[], bool] | None = None) -> dict[str, datetime]:
        """Return when each document's bytes last changed, recording documents with new bytes as changed now.

        A time only moves forward: a document that changes twice within a second gets the next
        second, and this call returns only once the clock has reached it, so a Last-Modified is
        never later than the Date of a response that carries it (RFC 9110 §8.8.2.1).

        Stamps must follow the order in which the folder changed, or a worker still building an
        older version could record old bytes as newer than what another worker serves. So a
        version's build passes ``still_current`` (is the folder still what was read?), checked
        inside the transaction, and becomes the current version; documents rendered later
        (archive pages) are stamped only while their version is still the current one. Either
        failing raises StaleBuildError.
        """
        with self._transaction() as db:
            if still_current is not None:
                if not still_current():
                    raise StaleBuildError
                db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES ('version', ?)", (version,))
            elif db.execute("SELECT value FROM settings WHERE key = 'version'").fetchone() != (version,):
                raise StaleBuildError
            if len(etags) < _FEW:
                query = "SELECT path, etag, changed FROM documents WHERE path = ?"
                rows = [row for path in etags for row in db.execute(query, (path,))]
            else:
                rows = db.execute("SELECT path, etag, changed FROM documents")
            known = {path: (etag, changed) for path, etag, changed in rows}
            now = int(self.clock())
            stamps: dict[str, int] = {}
            updates = []
            for path, etag in etags.items():
                previous = known.get(path)
                if previous is not None and previous[0] == etag:
                    stamps[path] = previous[1]
                    continue
                stamps[path] = now if previous is None or now > previous[1] else previous[1] + 1
                updates.append((path, etag, stamps[path]))
            db.executemany(
                "INSERT INTO documents (path, etag, changed) VALUES (?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET etag = excluded.etag, changed = excluded.changed",
                updates,
            )
        ahead = max(stamps.values(), default=0) - self.clock()
        if ahead > 0:
            time.sleep(min(ahead, 1.0))
        return {path: _seconds(moment) for path, moment in stamps.items()}

    # --- WebSub ---------------------------------------------------------------------------------

    def serving(self, token: str, version: str, topics: Mapping[str, str]) -> list[str]:
        """Record that worker ``token`` serves ``version``; return the topics to announce now.

        Only the last live worker to switch gets a non-empty answer: the hub's fetch may land on
        any worker, so a ping before every worker serves the new bytes could deliver old ones.
        The answer is every topic whose entity tag differs from what the hub was last told, which
        also announces changes made while the service was down. They are marked as announced
        here; ``unannounce`` undoes that for a ping that never got through.
        """
        pid = os.getpid()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO workers (token, pid, started, version) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (token) DO UPDATE SET version = excluded.version",
                (token, pid, process_start(pid) or "?", version),
            )
            others = list(db.execute("SELECT token, pid, started, version FROM workers WHERE token != ?", (token,)))
            # a pid alone can be reused after a worker dies: a live worker is that pid started at that time
            live = {other: served for other, other_pid, started, served in others if process_start(other_pid) == started}
            db.executemany("DELETE FROM workers WHERE token = ?", [(other,) for other, *_ in others if other not in live])
            if any(served != version for served in live.values()):
                return []
            return _mark_announced(db, topics)

    def announce(self, topics: Mapping[str, str]) -> list[str]:
        """Return the topics whose entity tag differs from what the hub was last told, marking them told (for ``build``)."""
        with self._transaction() as db:
            return _mark_announced(db, topics)

    def unannounce(self, topics: Iterable[str]) -> None:
        """Forget that these topics were announced (their ping failed): the next start or change retries them."""
        with self._transaction() as db:
            db.executemany("DELETE FROM announced WHERE topic = ?", [(topic,) for topic in topics])

    def retire(self, token: str) -> None:
        """Remove a worker that stops serving."""
        with self._transaction() as db:
            db.execute("DELETE FROM workers WHERE token = ?", (token,))

    def setting(self, key: str) -> str | None:
        """Return a remembered value (None when there is none)."""
        row = self._connection().execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def remember(self, key: str, value: str) -> None:
        """Remember a value under ``key``."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    # --- the loader's last load, for the next start ------------------------------------------------

    def save_snapshot(self, memo: LoadMemo) -> None:
        """Keep ``memo`` (the loader's memo of a whole load) for the next start: one file, written aside and renamed in.

        One pickle of 100,000 entries loads in about a second; the same entries one by one from
        ``parsed_entries`` take five (a row, a pickle and a body reference each). It is written as
        columns (``_memo_columns``), not as the objects themselves: see there.
        """
        columns = _memo_columns(memo)
        self._write_aside(SNAPSHOT_FILE, lambda out: _SnapshotPickler(out, pickle.HIGHEST_PROTOCOL).dump(columns))

    def _write_aside(self, name: str, write: Callable[[Any], None]) -> bool:
        """Write the file ``name`` in the state folder aside and rename it in (readers see the old or the new one)."""
        path = self.directory / name
        temporary = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}")
        try:
            with open(temporary, "wb") as out:
                write(out)
            os.replace(temporary, path)
            return True
        except OSError:  # a full disk costs the next start some seconds, never this one
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return False

    @collector_paused()  # a million new objects would trigger passes over all of them: half the time of the load
    def load_snapshot(self) -> LoadMemo | None:
        """Return what ``save_snapshot`` kept, or None (none yet, or written by other code: the loader then uses the parses)."""
        try:
            with open(self.directory / SNAPSHOT_FILE, "rb") as source:
                columns = _SnapshotUnpickler(source, self).load()
            return _memo_from_columns(columns, self) if isinstance(columns, dict) and columns.get("format") == _SNAPSHOT_FORMAT else None
        except Exception:  # missing, truncated, or classes that changed since: start without it
            return None

    # --- the hot set of the version served last, for the next start ------------------------------

    def save_hot_set(self, hot_set: Any, note: Mapping[str, Any]) -> None:
        """Keep ``hot_set`` (publication.HotSet) for the next start, and ``note`` (which one it is) where ``hot_set_note`` reads it."""
        if self._write_aside(HOT_SET_FILE, lambda out: pickle.dump(hot_set, out, pickle.HIGHEST_PROTOCOL)):
            self.remember(HOT_SET_SETTING, json.dumps(note))

    def hot_set_note(self) -> dict | None:
        """Return the note ``save_hot_set`` kept with the last hot set (None: none kept)."""
        remembered = self.setting(HOT_SET_SETTING)
        return None if remembered is None else json.loads(remembered)

    def load_hot_set(self) -> Any | None:
        """Return what ``save_hot_set`` kept, or None (none yet, or unreadable: the start then loads everything first)."""
        try:
            with open(self.directory / HOT_SET_FILE, "rb") as source:
                return pickle.load(source)
        except Exception:  # missing, truncated, or classes that changed since
            return None

    # --- the static export ---------------------------------------------------------------------

    def exported(self, folder: str) -> dict[str, tuple[str, str, int | None]]:
        """Return path -> (input key or "", ETag, mtime) of every document the export in ``folder`` holds."""
        rows = self._connection().execute("SELECT path, key, etag, stamp FROM exported WHERE folder = ?", (folder,))
        return {path: (key, etag, stamp) for path, key, etag, stamp in rows}

    def remember_export(self, folder: str, documents: Mapping[str, tuple[str, str, int | None]]) -> None:
        """Record the documents of the export in ``folder`` (none: while it is being changed)."""
        with self._transaction() as db:
            db.execute("DELETE FROM exported WHERE folder = ?", (folder,))
            db.executemany("INSERT INTO exported VALUES (?, ?, ?, ?, ?)", [(folder, path, *value) for path, value in documents.items()])

    def update_export(self, folder: str, documents: Mapping[str, tuple[str, str, int | None]], gone: Iterable[str] = ()) -> None:
        """Record changes to the export in ``folder``: ``documents`` written (or re-timed), ``gone`` forgotten."""
        with self._transaction() as db:
            db.executemany("DELETE FROM exported WHERE folder = ? AND path = ?", [(folder, path) for path in gone])
            db.executemany(
                "INSERT OR REPLACE INTO exported VALUES (?, ?, ?, ?, ?)", [(folder, path, *value) for path, value in documents.items()]
            )

    # --- the loader's cache (content.ParseCache) -------------------------------------------------

    def file_digests(self, names: list[str]) -> dict[str, tuple[int, int, str]]:
        """Return name -> (size, mtime_ns, digest) of each of ``names`` seen before (a reload asks for few, a start for all)."""
        db = self._connection()
        if len(names) > _FEW:
            rows = db.execute("SELECT * FROM file_digests")
        else:
            rows = db.execute(f"SELECT * FROM file_digests WHERE name IN ({','.join('?' * len(names))})", names)
        return {name: (size, mtime, digest) for name, size, mtime, digest in rows}

    def parsed_entries(self, keys: Iterable[str]) -> dict[str, Any]:
        """Return the cached parse of each key that has one (bodies as references into the store)."""
        found = {}
        for key, blob in _rows_with_keys(self._connection(), "SELECT key, entry FROM parsed_entries", list(keys)):
            key = sys.intern(key)  # the loader's own key object: its memo and the body reference share one string
            entry = pickle.loads(blob)  # a new object, referenced by nothing else yet:
            # its body is set in place (dataclasses.replace would run __init__ again: 1 s per 100,000)
            object.__setattr__(entry, "body", StoredBody(self, key, entry.digest))
            found[key] = entry
        return found

    def remember_parsed(self, entries: Mapping[str, Any]) -> dict[str, Any]:
        """Keep new parses (parse key -> entry) and their bodies; return the entries with their bodies as references into the store.

        A large load calls this for each part parsed, while other processes parse the next.
        """
        with self._transaction() as db:
            return self._keep_parses(db, entries)

    def remember_parse(self, files: Mapping[str, tuple[int, int, str]], keep: Collection[str]) -> None:
        """Record files' digests after a load; forget parses not in ``keep`` once they outnumber it (counted every 1,000 new ones)."""
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?)", [(n, *v) for n, v in files.items()])
            if self._parses_added > 1000:  # counting 100,000 rows after every edit would cost more than the edit
                self._parses_added = 0
                (count,) = db.execute("SELECT count(*) FROM parsed_entries").fetchone()
            else:
                count = 0
            if count > 3 * len(keep) + 1000:  # other versions' parses: a few are worth keeping, not all
                stale = [(key,) for (key,) in db.execute("SELECT key FROM parsed_entries") if key not in keep]
                db.executemany("DELETE FROM parsed_entries WHERE key = ?", stale)
                _forget_bodies(db, [key for (key,) in stale])

    def _keep_parses(self, db: sqlite3.Connection, entries: Mapping[str, Any]) -> dict[str, Any]:
        stored = {key: entry.with_body(StoredBody(self, key, entry.digest)) for key, entry in entries.items()}
        # a file parsed again (its pictures changed) leaves no body of its earlier parse behind
        _forget_bodies(db, _stored_keys(db, list(entries)))
        db.executemany(
            "INSERT OR REPLACE INTO entry_texts VALUES (?, ?, ?, ?)",
            [
                (_body_key(key, entry), entry.body_html, _headings_json(entry.headings), entry.summary)
                for key, entry in entries.items()
                if not isinstance(entry.body, DeferredBody)
            ],
        )
        db.executemany(
            "INSERT OR REPLACE INTO deferred_bodies (key, packed_source, page_url, summary, published) VALUES (?, ?, ?, ?, ?)",
            [
                (_body_key(key, entry), body.packed_source, body.page_url, body.written_summary, entry.published.timestamp())
                for key, entry in entries.items()
                if isinstance(body := entry.body, DeferredBody)
            ],
        )
        db.executemany(
            "INSERT OR REPLACE INTO parsed_entries VALUES (?, ?)", [(key, _without_body(entry)) for key, entry in stored.items()]
        )
        self._parses_added += len(entries)
        return stored

    def body(self, key: str) -> tuple[str, tuple[Heading, ...], str]:
        """Return a stored body's HTML, headings and summary (the most recently used ones are kept in memory)."""
        with self._recent_lock:
            texts = self._recent_bodies.get(key)
            if texts is not None:
                self._recent_bodies.move_to_end(key)
                return texts
        texts = self._load_body(key)
        self._remember_bodies({key: texts})
        return texts

    def load_bodies(self, keys: Iterable[str]) -> None:
        """Bring the bodies of a document's entries into memory with one query, not one per entry (``body`` then finds them).

        A day's archive feed shows ~55 entries: loaded one by one they were a fifth of its rendering.
        """
        with self._recent_lock:
            missing = [key for key in keys if key not in self._recent_bodies][:RECENT_BODIES]  # as many as it keeps
        query = "SELECT key, html, headings, summary FROM entry_texts"
        found = {
            key: (html, _headings(headings), summary)
            for key, html, headings, summary in _rows_with_keys(self._connection(), query, missing)
        }
        self._remember_bodies(found)  # a body not found (deferred, not yet rendered) is loaded by ``body``

    def _remember_bodies(self, bodies: Mapping[str, tuple[str, tuple[Heading, ...], str]]) -> None:
        with self._recent_lock:
            self._recent_bodies.update(bodies)
            for _ in range(len(self._recent_bodies) - RECENT_BODIES):
                self._recent_bodies.popitem(last=False)

    def _load_body(self, key: str) -> tuple[str, tuple[Heading, ...], str]:
        db = self._connection()
        row = db.execute("SELECT html, headings, summary FROM entry_texts WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return row[0], _headings(row[1]), row[2]
        row = db.execute("SELECT packed_source, page_url, summary FROM deferred_bodies WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise LookupError(f"body {key} is no longer in the store")
        texts = DeferredBody(*row).texts()  # asked for before a worker rendered it: rendered here, kept for every process
        self._keep_rendered([(key, texts)])
        return texts

    def deferred_bodies(self) -> int:
        """Return how many bodies wait to be rendered (``render_deferred_bodies``)."""
        (count,) = self._connection().execute("SELECT count(*) FROM deferred_bodies").fetchone()
        return count

    def render_deferred_bodies(self, limit: int = 64, lease: float = 60) -> tuple[int, int]:
        """Render up to ``limit`` deferred bodies, newest first; return how many this rendered and how many are left.

        Each batch is claimed first (one transaction), so that workers rendering at the same time
        take different ones; a claim older than ``lease`` s (a worker that stopped) is taken again.
        """
        now = time.time()
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE deferred_bodies SET claimed = ? WHERE key IN "
                "(SELECT key FROM deferred_bodies WHERE claimed < ? ORDER BY published DESC LIMIT ?) "
                "RETURNING key, packed_source, page_url, summary",
                (now, now - lease, limit),
            ).fetchall()
        self._keep_rendered([(key, DeferredBody(packed, page_url, summary).texts()) for key, packed, page_url, summary in rows])
        return len(rows), self.deferred_bodies()

    def _keep_rendered(self, rendered: list[tuple[str, tuple[str, tuple[Heading, ...], str]]]) -> None:
        """Keep rendered deferred bodies with the others, for every process; a store too busy to take them now renders them again later."""
        with contextlib.suppress(sqlite3.OperationalError), self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO entry_texts VALUES (?, ?, ?, ?)",
                [(key, html, _headings_json(headings), summary) for key, (html, headings, summary) in rendered],
            )
            db.executemany("DELETE FROM deferred_bodies WHERE key = ?", [(key,) for key, _ in rendered])


def _without_body(entry: Entry) -> bytes:
    """Pickle a stored entry without its body's reference (``parsed_entries`` sets it again); the summary went with the body.

    ``entry`` is a new object nobody else holds yet: its body is set aside in place, not copied
    (a copy of each of 100,000 entries took 1.7 s of a start).
    """
    body = entry.body
    object.__setattr__(entry, "body", "")
    try:
        return pickle.dumps(entry, pickle.HIGHEST_PROTOCOL)
    finally:
        object.__setattr__(entry, "body", body)


def _headings_json(headings: tuple[Heading, ...]) -> str:
    return json.dumps([(h.level, h.anchor, h.text) for h in headings])


def _headings(stored: str) -> tuple[Heading, ...]:
    return tuple(Heading(*heading) for heading in json.loads(stored))


def _rows_with_keys(db: sqlite3.Connection, query: str, keys: list[str]) -> Iterator[tuple]:
    """Run ``query`` (a SELECT of one table) for the rows whose ``key`` is one of ``keys``, _FEW keys a statement."""
    for start in range(0, len(keys), _FEW):
        chunk = keys[start : start + _FEW]
        yield from db.execute(f"{query} WHERE key IN ({','.join('?' * len(chunk))})", chunk)


def _stored_keys(db: sqlite3.Connection, keys: list[str]) -> list[str]:
    """Return the ``keys`` the store has a parse of (a start's 100,000 new parses have none: nothing to forget)."""
    return [key for (key,) in _rows_with_keys(db, "SELECT key FROM parsed_entries", keys)]


def _forget_bodies(db: sqlite3.Connection, parse_keys: Iterable[str]) -> None:
    """Delete the bodies of ``parse_keys`` (each under ``parse key:entry digest``), rendered or deferred."""
    ranges = [(f"{key}:", f"{key};") for key in parse_keys]
    db.executemany("DELETE FROM entry_texts WHERE key > ? AND key < ?", ranges)
    db.executemany("DELETE FROM deferred_bodies WHERE key > ? AND key < ?", ranges)


class _SnapshotPickler(pickle.Pickler):
    """Pickles a stored body as its key: the store it refers to is the one that loads it back."""

    def persistent_id(self, obj: Any) -> tuple | None:
        return ("body", obj.parse_key, obj.digest) if type(obj) is StoredBody else None


class _SnapshotUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, store: Store):
        super().__init__(file)
        self.store = store

    def persistent_load(self, pid: tuple) -> StoredBody:
        _, parse_key, digest = pid
        return StoredBody(self.store, parse_key, digest)  # the memo's key object, when it was one when pickled


class StoredBody:
    """An entry's rendered body, kept in the store and loaded when a document is rendered.

    It holds the strings its key is made of (the loader's and the entry's own), not the key:
    100,000 keys of 150 characters would cost every worker 20 MB.
    """

    __slots__ = ("digest", "parse_key", "store")

    def __init__(self, store: Store, parse_key: str, digest: str):
        self.store = store
        self.parse_key = parse_key
        self.digest = digest

    @property
    def key(self) -> str:
        return f"{self.parse_key}:{self.digest}"

    def html(self) -> str:
        return self.store.body(self.key)[0]

    def headings(self) -> tuple[Heading, ...]:
        return self.store.body(self.key)[1]

    def summary(self) -> str:
        return self.store.body(self.key)[2]

    def texts(self) -> tuple[str, tuple[Heading, ...], str]:
        return self.store.body(self.key)


# --- the kept load as columns ---------------------------------------------------------------------
#
# Pickled as objects, 100,000 entries left ~44 MB of holes in every worker's heap: the unpickler
# keeps every temporary it makes (each entry's state tuple, each datetime's and each record's
# arguments, each body's reference) until the end, between the entries that stay, and freed then
# they leave most memory pages partly used. As columns, a value is either what the memo keeps (a
# title, a name) or part of one large object (an array of sizes), and the few objects made while
# decoding are freed before the next is made: the same memory slot, again and again.
_SNAPSHOT_FORMAT = "feedsvc kept load, columns 3"
_EPOCH = datetime(1970, 1, 1)  # moments are kept as microseconds of their wall time since then, and their zone
_MICROSECOND = timedelta(microseconds=1)
_PLAIN_FIELDS = tuple(name for name in ENTRY_FIELDS if name not in ("body", "published", "updated"))


def _moments(values: list[datetime]) -> dict[str, Any]:
    return {
        "wall": array("q", ((value.replace(tzinfo=None) - _EPOCH) // _MICROSECOND for value in values)),
        "zone": [value.tzinfo for value in values],  # a few objects, pickled once each
        "fold": bytes(value.fold for value in values),
    }


def _from_moments(column: dict[str, Any]) -> list[datetime]:
    return [
        (_EPOCH + timedelta(microseconds=wall)).replace(tzinfo=zone, fold=fold)
        for wall, zone, fold in zip(column["wall"], column["zone"], column["fold"], strict=True)
    ]


def _memo_columns(memo: LoadMemo) -> dict[str, Any]:
    """Write the loader's memo as columns: every entry file's record, parse key and entry field by field."""
    names = list(memo.files)
    records, keys, entries = (list(column) for column in zip(*memo.files.values(), strict=True)) if names else ([], [], [])
    place = {id(entry): at for at, entry in enumerate(entries)}
    where = {id(record): at for at, record in enumerate(records)}
    columns: dict[str, Any] = {
        "format": _SNAPSHOT_FORMAT,
        "site_digest": memo.site_digest,
        "names": names,
        "sizes": array("q", (record.size for record in records)),
        "mtimes": array("q", (record.mtime_ns for record in records)),
        "keys": keys,
        # a body in the store is known by the entry's parse key and digest: None says so
        "body": [
            None if type(entry.body) is StoredBody and (entry.body.parse_key, entry.body.digest) == (key, entry.digest) else entry.body
            for key, entry in zip(keys, entries, strict=True)
        ],
        "published": _moments([entry.published for entry in entries]),
        # most entries were never updated: their ``updated`` is their ``published``, one object
        "updated_is_published": bytes(entry.updated is entry.published for entry in entries),
        "updated": _moments([entry.updated for entry in entries if entry.updated is not entry.published]),
        "newest_first": None if memo.newest_first is None else array("i", (place[id(entry)] for entry in memo.newest_first)),
        "drafts": array("i", (place[id(entry)] for entry in memo.drafts)),
        # the scan's records: those of entry files are the memo's (their place), the others (images, the site file) as they are
        "scan": [where.get(id(record), record) for record in memo.scan.files],
        "scan_problems": memo.scan.problems,
        "scan_links": memo.scan.links,
        "scan_root": memo.scan.root,
        "fresh": memo.fresh,
        "with_media": memo.with_media,
        "images": memo.images,
    }
    for name in _PLAIN_FIELDS:
        columns[name] = [getattr(entry, name) for entry in entries]
    return columns


def _memo_from_columns(columns: dict[str, Any], store: Store) -> LoadMemo:
    """Make the loader's memo again from ``_memo_columns``: the same values, the same objects shared as before."""
    names, keys = columns["names"], columns["keys"]
    records = list(map(ContentFile, names, columns["sizes"], columns["mtimes"]))
    entries = [object.__new__(Entry) for _ in names]
    for name in _PLAIN_FIELDS:
        deque(map(ENTRY_SLOT_SETTERS[name], entries, columns[name]), maxlen=0)
    published = _from_moments(columns["published"])
    others = iter(_from_moments(columns["updated"]))
    updated = [moment if same else next(others) for moment, same in zip(published, columns["updated_is_published"], strict=True)]
    deque(map(ENTRY_SLOT_SETTERS["published"], entries, published), maxlen=0)
    deque(map(ENTRY_SLOT_SETTERS["updated"], entries, updated), maxlen=0)
    bodies = [
        StoredBody(store, key, entry.digest) if body is None else body
        for key, entry, body in zip(keys, entries, columns["body"], strict=True)
    ]
    deque(map(ENTRY_SLOT_SETTERS["body"], entries, bodies), maxlen=0)
    order = columns["newest_first"]
    return LoadMemo(
        site_digest=columns["site_digest"],
        files=dict(zip(names, zip(records, keys, entries, strict=True), strict=True)),
        newest_first=None if order is None else tuple(entries[at] for at in order),
        drafts=tuple(entries[at] for at in columns["drafts"]),
        fresh=columns["fresh"],
        with_media=columns["with_media"],
        scan=FolderScan(
            tuple(records[item] if isinstance(item, int) else item for item in columns["scan"]),
            columns["scan_problems"],
            columns["scan_links"],
            columns["scan_root"],
        ),
        images=columns["images"],
    )
