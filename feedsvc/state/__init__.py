"""The state folder (FEEDSVC_STATE_DIR): a disposable accelerator shared by every worker, never a source of truth.

What a node serves is a function of the content bytes, the settings and the code (the build
identity), never of this folder's history: everything here is keyed by what made it, checked
when read back, and a miss when anything is wrong. Deleting any of it is always safe; it only
makes the next start slower and gives documents new Last-Modified times.

- ``db.py``: the SQLite database and how its failures are survived (``state:`` problems);
- ``stamps.py``: Last-Modified, per namespace;
- ``parses.py``: the loader's cache (file digests, parses, bodies);
- ``kept.py``: each namespace's last good version (a worker starting on a broken folder serves it);
- ``snapshots.py``: side files (the kept load, the hot set), trusted only as the database recorded them;
- ``ledgers.py``: live workers, WebSub announcements, export folders.

A namespace is a content folder with the settings that change its bytes: a preview of the same
folder under another base URL, or a `build` with other settings, keeps its own stamps, workers,
announcements and kept version, and never disturbs the live service. Parses are shared: their
keys say everything they depend on.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .db import Database
from .kept import KeptVersions
from .ledgers import Announcements, ExportLedger, Workers
from .parses import ParseStore, prune
from .snapshots import Snapshots
from .stamps import Stamps

PRUNE_COUNT_EVERY = 1000  # parses stored between counts of the parse table (counting 100,000 rows costs more than an edit)


def default_state_dir(content_dir: str | Path) -> Path:
    """Return the state folder used when FEEDSVC_STATE_DIR is not set: one per content folder, under XDG_STATE_HOME.

    The content folder's absolute path (not its resolved one, so a ``current -> releases/N``
    symlink keeps one state across releases) names the subfolder.
    """
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "feedsvc"
    absolute = Path(content_dir).absolute()
    return base / f"{absolute.name}-{hashlib.sha256(str(absolute).encode()).hexdigest()[:12]}"


def namespace_of(content_dir: str | Path, settings: Mapping[str, Any]) -> str:
    """Name the namespace of a content folder (its absolute path) served with ``settings`` (those that change bytes)."""
    material = repr((str(Path(content_dir).absolute()), sorted((key, repr(value)) for key, value in settings.items())))
    return hashlib.sha256(material.encode()).hexdigest()[:24]


class Store:
    """The state folder as one namespace sees it: its database's parts, and a token for this worker.

    Never raises for what the folder holds: a database that cannot be used gives misses and no
    Last-Modified, and ``problem`` says why (``state: ...``).
    """

    def __init__(self, directory: str | Path, namespace: str = "", role: str = "serve", clock: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.namespace = namespace
        self.db = Database(directory)
        self.stamps = Stamps(self.db, namespace, role, clock)
        self.parses = ParseStore(self.db)
        self.kept = KeptVersions(self.db, namespace)
        self.snapshots = Snapshots(self.db)
        self.workers = Workers(self.db, namespace, clock)
        self.announced = Announcements(self.db, namespace)
        self.exports = ExportLedger(self.db)
        self.token = uuid.uuid4().hex  # this process's worker (or build) among those sharing the folder

    @property
    def problem(self) -> str | None:
        """What is wrong with the state folder now (None: nothing)."""
        return self.db.problem

    def side_file(self, kind: str) -> str:
        """The name of this namespace's side file of ``kind`` (``load``, ``hot-set``)."""
        return f"{kind}-{self.namespace or 'default'}.pickle"

    def prune(self, kept_count: int) -> int:
        """Delete parses and bodies no kept version names, when they outnumber those kept and every live worker serves
        its kept version (none may need another's); return how many parses went. Counted every PRUNE_COUNT_EVERY new parses."""
        if self.parses.parses_added <= PRUNE_COUNT_EVERY:
            return 0
        self.parses.parses_added = 0

        def work(db: sqlite3.Connection) -> int:
            (count,) = db.execute("SELECT count(*) FROM parsed_entries").fetchone()
            if count <= 3 * kept_count + 1000 or not self.workers.all_serve_kept(db):
                return 0
            return prune(db)

        return self.db.write(work, 0)
