"""The loader's cache: a file's digest by its stat, a parsed entry by its inputs, its rendered body apart.

Keys are digests of everything that made the value: a parse is keyed by the file's bytes, the
site file, the settings and the build identity (``source.loader``), a body by its parse and the
entry's digest (which covers the pictures it shows). So a hit is always right, whatever wrote
it, and a miss only costs time: a value whose checksum fails is a miss, and a body missing from
the database (deleted, damaged, pruned) is rendered again from its file by the recoverer the
loader registered (``register_site``). Nothing is deleted here while a version may still need it:
``prune`` runs only once every live worker serves its namespace's kept version (``Store.prune``).
A database that cannot be written leaves bodies in memory, where the loader made them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping

from ..markdown import DeferredBody
from ..models import Entry, Heading
from ..problems import BodyUnavailableError
from .db import Database

log = logging.getLogger("feedsvc.state")
RECENT_BODIES = 512  # bodies each process keeps in memory: a few documents' worth (a day's archive shows ~55)
_FEW = 500  # keys one statement asks for
Texts = tuple[str, tuple[Heading, ...], str]  # a body's HTML, headings and summary
# (source file name, parse key, entry digest) -> the body rendered again from the file, or None when the file changed
Recoverer = Callable[[str, str, str], Texts | None]


def _checksum(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _body_key(parse_key: str, digest: str) -> str:
    """Where a parse's rendered body is kept: the parse's key and the entry's digest.

    The digest covers the pictures the body shows, which the parse key (the file and the site
    file) does not: a replaced picture re-renders the body under a new key, so no process's cache
    of bodies can hand out the old one.
    """
    return f"{parse_key}:{digest}"


def _headings_json(headings: tuple[Heading, ...]) -> str:
    return json.dumps([(h.level, h.anchor, h.text) for h in headings])


def _headings(stored: str) -> tuple[Heading, ...]:
    return tuple(Heading(*heading) for heading in json.loads(stored))


def _rows_with_keys(db: sqlite3.Connection, query: str, keys: list[str]) -> Iterator[tuple]:
    """Run ``query`` (a SELECT of one table) for the rows whose ``key`` is one of ``keys``, _FEW keys a statement."""
    for start in range(0, len(keys), _FEW):
        chunk = keys[start : start + _FEW]
        yield from db.execute(f"{query} WHERE key IN ({','.join('?' * len(chunk))})", chunk)


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


class StoredBody:
    """An entry's rendered body, kept in the state and loaded when a document is rendered (``models.StoredText``).

    It holds the strings its key is made of (the loader's and the entry's own) and the entry's
    file name (the entry's own string), not the key: 100,000 keys of 150 characters would cost
    every worker 20 MB.
    """

    __slots__ = ("digest", "parse_key", "source", "store")

    def __init__(self, store: ParseStore, parse_key: str, digest: str, source: str):
        self.store = store
        self.parse_key = parse_key
        self.digest = digest
        self.source = source

    @property
    def key(self) -> str:
        return _body_key(self.parse_key, self.digest)

    def html(self) -> str:
        return self.store.body(self)[0]

    def headings(self) -> tuple[Heading, ...]:
        return self.store.body(self)[1]

    def summary(self) -> str:
        return self.store.body(self)[2]

    def texts(self) -> Texts:
        return self.store.body(self)


class ParseStore:
    """The loader's cache in the state database (``source.loader.ParseCache``), and the bodies it keeps."""

    def __init__(self, db: Database):
        self.db = db
        # the bodies of the documents being rendered now and then: the newest feeds' entries, recent pages
        self._recent_bodies: OrderedDict[str, Texts] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._recoverers: dict[str, Recoverer] = {}  # site key (a parse key's second half) -> how to render a body again
        self.parses_added = 1001  # parses this process stored since it last counted them all (first: count)

    # --- files and parses ----------------------------------------------------------------------

    def file_digests(self, folder: str, names: list[str]) -> dict[str, tuple[int, int, int, str]]:
        """Return name -> (size, mtime_ns, change, digest) of each of ``names`` in ``folder`` recorded before."""

        def read(db: sqlite3.Connection) -> dict[str, tuple[int, int, int, str]]:
            query = "SELECT name, size, mtime_ns, change, digest FROM file_digests WHERE folder = ?"
            if len(names) > _FEW:
                rows = db.execute(query, (folder,))
            else:
                rows = db.execute(f"{query} AND name IN ({','.join('?' * len(names))})", (folder, *names))
            return {name: (size, mtime, change, digest) for name, size, mtime, change, digest in rows}

        return self.db.read(read, {})

    def remember_files(self, folder: str, files: Mapping[str, tuple[int, int, int, str]]) -> None:
        """Record files' digests by their stat (the loader leaves out files changed too recently to trust their stat)."""
        rows = [(folder, name, *value) for name, value in files.items()]
        self.db.write(lambda db: db.executemany("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?, ?, ?)", rows), None)

    def parsed_entries(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Return the cached parse of each key that has one (bodies as references into the state); a damaged one is a miss."""

        def read(db: sqlite3.Connection) -> dict[str, Entry]:
            found = {}
            for key, blob, checksum in _rows_with_keys(db, "SELECT key, entry, checksum FROM parsed_entries", list(keys)):
                if _checksum(blob) != checksum:
                    continue
                key = sys.intern(key)  # the loader's own key object: its memo and the body reference share one string
                entry = pickle.loads(blob)  # a new object, referenced by nothing else yet:
                # its body is set in place (dataclasses.replace would run __init__ again: 1 s per 100,000)
                object.__setattr__(entry, "body", StoredBody(self, key, entry.digest, entry.source))
                found[key] = entry
            return found

        try:
            return self.db.read(read, {})
        except (pickle.UnpicklingError, AttributeError, TypeError, ValueError, EOFError):  # checksummed, yet other classes
            return {}

    def remember_parsed(self, entries: Mapping[str, Entry]) -> dict[str, Entry]:
        """Keep new parses (parse key -> entry) and their bodies; return the entries with their bodies as references into the state.

        A large load calls this for each part parsed, while other processes parse the next. When
        the database cannot take them, the entries are returned as they are: their bodies stay in
        memory (or render there, when deferred).
        """
        stored = {key: entry.with_body(StoredBody(self, key, entry.digest, entry.source)) for key, entry in entries.items()}
        texts, deferred, parses = [], [], []
        for key, entry in entries.items():
            body_key = _body_key(key, entry.digest)
            body = entry.body
            if isinstance(body, DeferredBody):
                summary = body.written_summary
                checksum = _checksum(body.packed_source, body.page_url, summary or "")
                deferred.append((body_key, body.packed_source, body.page_url, summary, entry.published.timestamp(), checksum))
            else:
                html, headings = entry.body_html, _headings_json(entry.headings)
                texts.append((body_key, html, headings, entry.summary, _checksum(html, headings, entry.summary)))
            blob = _without_body(stored[key])
            parses.append((key, blob, _checksum(blob)))

        def write(db: sqlite3.Connection) -> bool:
            db.executemany("INSERT OR REPLACE INTO entry_texts VALUES (?, ?, ?, ?, ?)", texts)
            db.executemany(
                "INSERT OR REPLACE INTO deferred_bodies (key, packed_source, page_url, summary, published, checksum) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                deferred,
            )
            db.executemany("INSERT OR REPLACE INTO parsed_entries VALUES (?, ?, ?)", parses)
            return True

        if not self.db.write(write, False):
            return dict(entries)
        self.parses_added += len(entries)
        return stored

    def remember_parses_only(self, entries: Mapping[str, Entry]) -> bool:
        """Keep parses whose bodies are elsewhere (a version served from a database made anew since): rows for the kept
        version to be built from; their bodies are rendered again from the files when asked for. Tell whether they were kept."""
        rows = []
        for key, entry in entries.items():
            blob = _without_body(entry)
            rows.append((key, blob, _checksum(blob)))
        return self.db.write(lambda db: db.executemany("INSERT OR IGNORE INTO parsed_entries VALUES (?, ?, ?)", rows) and True, False)

    # --- bodies --------------------------------------------------------------------------------

    def register_site(self, site_key: str, recover: Recoverer) -> None:
        """Tell how to render again, from their files, the bodies of parses made with the site ``site_key``."""
        self._recoverers[site_key] = recover
        while len(self._recoverers) > 8:  # a few versions' sites: those of every version a worker may still serve
            del self._recoverers[next(iter(self._recoverers))]

    def body(self, stored: StoredBody) -> Texts:
        """Return a stored body's HTML, headings and summary (the most recently used ones are kept in memory)."""
        key = stored.key
        with self._recent_lock:
            texts = self._recent_bodies.get(key)
            if texts is not None:
                self._recent_bodies.move_to_end(key)
                return texts
        texts = self.db.read(lambda db: self._stored_texts(db, key), None)
        if texts is None:
            texts = self._recovered(stored)
        self._remember_bodies({key: texts})
        return texts

    def load_bodies(self, bodies: Iterable[StoredBody]) -> None:
        """Bring the bodies of a document's entries into memory with one query, not one per entry (``body`` then finds them).

        A day's archive feed shows ~55 entries: loaded one by one they were a fifth of its rendering.
        """
        with self._recent_lock:
            missing = [key for key in dict.fromkeys(body.key for body in bodies) if key not in self._recent_bodies][:RECENT_BODIES]

        def read(db: sqlite3.Connection) -> dict[str, Texts]:
            query = "SELECT key, html, headings, summary, checksum FROM entry_texts"
            return {
                key: (html, _headings(headings), summary)
                for key, html, headings, summary, checksum in _rows_with_keys(db, query, missing)
                if _checksum(html, headings, summary) == checksum
            }

        self._remember_bodies(self.db.read(read, {}))  # a body not found (deferred, damaged, gone) is loaded by ``body``

    def _remember_bodies(self, bodies: Mapping[str, Texts]) -> None:
        with self._recent_lock:
            self._recent_bodies.update(bodies)
            for _ in range(len(self._recent_bodies) - RECENT_BODIES):
                self._recent_bodies.popitem(last=False)

    def _stored_texts(self, db: sqlite3.Connection, key: str) -> Texts | None:
        row = db.execute("SELECT html, headings, summary, checksum FROM entry_texts WHERE key = ?", (key,)).fetchone()
        if row is not None and _checksum(*row[:3]) == row[3]:
            return row[0], _headings(row[1]), row[2]
        row = db.execute("SELECT packed_source, page_url, summary, checksum FROM deferred_bodies WHERE key = ?", (key,)).fetchone()
        if row is None or _checksum(row[0], row[1], row[2] or "") != row[3]:
            return None
        texts = DeferredBody(*row[:3]).texts()  # asked for before a worker rendered it: rendered here, kept for every process
        self._keep_rendered([(key, texts)])
        return texts

    def _recovered(self, stored: StoredBody) -> Texts:
        """Render a body missing from the state again from its file, through the loader (raises BodyUnavailableError)."""
        recover = self._recoverers.get(stored.parse_key.rpartition(":")[2])
        texts = None if recover is None else recover(stored.source, stored.parse_key, stored.digest)
        if texts is None:
            raise BodyUnavailableError(f"{stored.source}: the body of the version served is no longer in the state nor in the file")
        log.info("state: the body of %s was not in the state; rendered again from the file", stored.source)
        self._keep_rendered([(stored.key, texts)])  # for every process, from now on
        return texts

    # --- deferred bodies -----------------------------------------------------------------------

    def deferred_bodies(self) -> int:
        """Return how many bodies wait to be rendered (``render_deferred_bodies``; 0 when the database cannot tell)."""
        return self.db.read(lambda db: db.execute("SELECT count(*) FROM deferred_bodies").fetchone()[0], 0)

    def render_deferred_bodies(self, limit: int = 64, lease: float = 60) -> tuple[int, int]:
        """Render up to ``limit`` deferred bodies, newest first; return how many this rendered and how many are left.

        Each batch is claimed first (one transaction), so that workers rendering at the same time
        take different ones; a claim older than ``lease`` s (a worker that stopped) is taken again.
        """
        now = time.time()
        rows = self.db.write(
            lambda db: db.execute(
                "UPDATE deferred_bodies SET claimed = ? WHERE key IN "
                "(SELECT key FROM deferred_bodies WHERE claimed < ? ORDER BY published DESC LIMIT ?) "
                "RETURNING key, packed_source, page_url, summary, checksum",
                (now, now - lease, limit),
            ).fetchall(),
            [],
        )
        rendered = [
            (key, DeferredBody(packed, page_url, summary).texts())
            for key, packed, page_url, summary, checksum in rows
            if _checksum(packed, page_url, summary or "") == checksum
        ]
        self._keep_rendered(rendered)
        return len(rows), self.deferred_bodies()

    def _keep_rendered(self, rendered: list[tuple[str, Texts]]) -> None:
        """Keep rendered deferred bodies with the others, for every process; a database too busy to take them renders them again later."""
        rows = []
        for key, (html, headings, summary) in rendered:
            stored_headings = _headings_json(headings)
            rows.append((key, html, stored_headings, summary, _checksum(html, stored_headings, summary)))

        def write(db: sqlite3.Connection) -> None:
            db.executemany("INSERT OR IGNORE INTO entry_texts VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany("DELETE FROM deferred_bodies WHERE key = ?", [(key,) for key, _ in rendered])

        self.db.write(write, None)


def prune(db: sqlite3.Connection) -> int:
    """Delete, inside the caller's transaction, every parse and body no kept version refers to; return how many parses went."""
    kept = "SELECT key FROM kept_files"
    gone = db.execute(f"DELETE FROM parsed_entries WHERE key NOT IN ({kept})").rowcount
    bodies = "SELECT key || ':' || digest FROM kept_files"
    db.execute(f"DELETE FROM entry_texts WHERE key NOT IN ({bodies})")
    db.execute(f"DELETE FROM deferred_bodies WHERE key NOT IN ({bodies})")
    return gone
