"""The last good version of each namespace: enough to serve it again without the content folder.

Recorded in the transaction that makes a version current (``Stamps.last_modified``'s ``also``),
before any worker serves it: its site, and each entry file's stat, parse key and digest (the
parses and bodies are in ``parses.py``, and are not pruned while a kept version names them). A
worker that starts while the folder is broken (granian replacing one that crashed, a restart
after a bad edit) builds this version again from the parse cache and serves it, so a typo never
takes the site down and every worker serves the same bytes (``source.loader.load_kept``).

A new version is written as the difference from the one kept before, when that is the version
the recording worker loaded last; otherwise (another worker's, a first start) whole.
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .db import Database


class KeptFile(NamedTuple):
    """An entry file of a kept version: its stat as the loader saw it, its parse key and its entry's digest."""

    name: str
    size: int
    mtime_ns: int
    change: int
    key: str
    digest: str


@dataclass(frozen=True)
class KeptVersion:
    """A namespace's last good version: the load's version (before scheduled entries are released), its site and files."""

    version: str
    identity: str  # the build identity that made its parses
    site: Any  # models.Site
    site_digest: str
    files: tuple[KeptFile, ...]  # sorted by name


class KeptVersions:
    """The kept versions of one namespace."""

    def __init__(self, db: Database, namespace: str):
        self.db = db
        self.namespace = namespace

    def version(self) -> tuple[str, str] | None:
        """Return (version, build identity) of the version kept, or None."""
        query = "SELECT version, identity FROM kept_versions WHERE namespace = ?"
        return self.db.read(lambda db: db.execute(query, (self.namespace,)).fetchone(), None)

    def recorder(
        self,
        version: str,
        identity: str,
        site: Any,
        site_digest: str,
        files: Callable[[], Iterable[KeptFile]],
        based_on: str | None = None,
        changes: Mapping[str, KeptFile | None] | None = None,
    ) -> Callable[[sqlite3.Connection], None]:
        """Return the work that records ``version`` inside a transaction: ``changes`` (name -> file, None: gone) when the
        version kept is ``based_on``, else every file ``files()`` gives."""
        blob = pickle.dumps((site, site_digest), pickle.HIGHEST_PROTOCOL)

        def record(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT version, identity, files FROM kept_versions WHERE namespace = ?", (self.namespace,)).fetchone()
            if row is not None and row[:2] == (version, identity):
                return  # another worker recorded it already
            count = None
            if row is not None and changes is not None and row[:2] == (based_on, identity):
                gone = [(self.namespace, name) for name, file in changes.items() if file is None]
                db.executemany("DELETE FROM kept_files WHERE namespace = ? AND name = ?", gone)
                db.executemany(
                    "INSERT OR REPLACE INTO kept_files VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(self.namespace, *file) for file in changes.values() if file is not None],
                )
                count = db.execute("SELECT count(*) FROM kept_files WHERE namespace = ?", (self.namespace,)).fetchone()[0]
            if count is None or count != sum(1 for _ in files()):
                db.execute("DELETE FROM kept_files WHERE namespace = ?", (self.namespace,))
                db.executemany("INSERT INTO kept_files VALUES (?, ?, ?, ?, ?, ?, ?)", [(self.namespace, *file) for file in files()])
                count = db.execute("SELECT count(*) FROM kept_files WHERE namespace = ?", (self.namespace,)).fetchone()[0]
            db.execute("INSERT OR REPLACE INTO kept_versions VALUES (?, ?, ?, ?, ?)", (self.namespace, version, identity, blob, count))

        return record

    def load(self, identity: str) -> KeptVersion | None:
        """Return the version kept for this namespace if the build ``identity`` made it (None: none, or other code's)."""

        def read(db: sqlite3.Connection) -> KeptVersion | None:
            row = db.execute("SELECT version, identity, site, files FROM kept_versions WHERE namespace = ?", (self.namespace,)).fetchone()
            if row is None or row[1] != identity:
                return None
            rows = db.execute(
                "SELECT name, size, mtime_ns, change, key, digest FROM kept_files WHERE namespace = ? ORDER BY name", (self.namespace,)
            )
            files = tuple(KeptFile(*file) for file in rows)
            if len(files) != row[3]:
                return None
            site, site_digest = pickle.loads(row[2])
            return KeptVersion(row[0], row[1], site, site_digest, files)

        try:
            return self.db.read(read, None)
        except (pickle.UnpicklingError, AttributeError, TypeError, ValueError, EOFError):
            return None
