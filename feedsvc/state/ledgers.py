"""Ledgers of the state folder: the live workers, what a WebSub hub was told, and what each export folder holds.

Workers say which version they serve and that they are alive (a heartbeat while they watch the
folder, and on Linux the process itself, by pid and start time, read from /proc). A ping goes
out only once every live worker of the namespace serves the version it announces, is recorded as
told only once the hub accepted it, and a ping under way when its worker stopped is sent again.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .db import Database

HEARTBEAT_SECONDS = 10  # how often a watching worker says it is alive
LIVENESS_SECONDS = 35  # a worker that has not said so for this long is taken for dead (where /proc cannot tell)
PROC = Path("/proc")  # Linux: a process's start time tells a live worker from one whose pid was reused


def process_start(pid: int) -> str | None:
    """Return when process ``pid`` started (from /proc), "" when this system cannot tell, None when it is not running.

    A pid alone can be reused by an unrelated process after a worker dies.
    """
    if not PROC.is_dir():
        return ""  # macOS, the BSDs: liveness by heartbeat alone
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime, counted after the command name


class Workers:
    """The workers of one namespace: which version each serves; who is alive."""

    def __init__(self, db: Database, namespace: str, clock: Callable[[], float] = time.time):
        self.db = db
        self.namespace = namespace
        self.clock = clock

    def _live(self, db: sqlite3.Connection, namespace: str | None) -> dict[str, tuple[str, str]]:
        """Return token -> (namespace, version) of the live workers (of ``namespace``, or all), forgetting the dead."""
        query = "SELECT token, namespace, pid, started, version, beat FROM workers"
        rows = db.execute(query + (" WHERE namespace = ?" if namespace is not None else ""), (namespace,) if namespace is not None else ())
        now, live, dead = time.time(), {}, []
        for token, space, pid, started, version, beat in rows:
            running = process_start(pid)
            alive = running == started if running and started else now - beat <= LIVENESS_SECONDS
            if alive and running is not None:
                live[token] = (space, version)
            else:
                dead.append((token,))
        db.executemany("DELETE FROM workers WHERE token = ?", dead)
        return live

    def serving(self, token: str, version: str, topics: Mapping[str, str] | None = None) -> list[str] | None:
        """Record that worker ``token`` serves ``version`` and is alive; return the WebSub topics to announce now.

        Topics are due only once every live worker of the namespace serves ``version`` (the hub's
        fetch may land on any of them) and only those whose entity tag differs from what the hub was
        last told and that no live worker is pinging already; they are marked as being pinged by
        ``token`` (``Announcements.told`` once the hub accepted). None when the state cannot tell.
        """
        pid = os.getpid()

        def record(db: sqlite3.Connection) -> list[str]:
            db.execute(
                "INSERT INTO workers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (token) DO UPDATE SET version = excluded.version, beat = excluded.beat",
                (token, self.namespace, pid, process_start(pid) or "", version, time.time()),
            )
            live = self._live(db, self.namespace)
            if not topics or any(served != version for _, served in live.values()):
                return []
            return _due(db, self.namespace, topics, token, live)

        return self.db.write(record, None)

    def all_serve_kept(self, db: sqlite3.Connection) -> bool:
        """Tell, inside a transaction, whether every live worker of every namespace serves its namespace's kept version."""
        kept = dict(db.execute("SELECT namespace, version FROM kept_versions"))
        served = {(space, version) for space, version in self._live(db, None).values()}
        return all(kept.get(space) == version for space, version in served)

    def retire(self, token: str) -> None:
        """Remove a worker that stops serving (its pings, if any are under way, are sent by the next to look)."""
        self.db.write(lambda db: db.execute("DELETE FROM workers WHERE token = ?", (token,)), None)


def _due(db: sqlite3.Connection, namespace: str, topics: Mapping[str, str], pinger: str, live: Mapping[str, object]) -> list[str]:
    rows = db.execute("SELECT topic, told, pending, pinger FROM announced WHERE namespace = ?", (namespace,))
    known = {topic: (told, pending, by) for topic, told, pending, by in rows}
    due = []
    for topic, etag in topics.items():
        told, pending, by = known.get(topic, ("", "", ""))
        if told == etag or (pending == etag and by in live):
            continue  # told already, or being told by a live worker
        due.append(topic)
    db.executemany(
        "INSERT INTO announced (namespace, topic, pending, pinger) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (namespace, topic) DO UPDATE SET pending = excluded.pending, pinger = excluded.pinger",
        [(namespace, topic, topics[topic], pinger) for topic in due],
    )
    return due


class Announcements:
    """What the WebSub hub was told of each subscription feed of one namespace."""

    def __init__(self, db: Database, namespace: str):
        self.db = db
        self.namespace = namespace

    def due(self, topics: Mapping[str, str], pinger: str) -> list[str]:
        """Return the topics whose entity tag differs from what the hub was told, marked as being pinged (``build``: one process)."""
        return self.db.write(lambda db: _due(db, self.namespace, topics, pinger, {pinger: None}), list(topics))

    def told(self, topic: str, pinger: str) -> None:
        """Record that the hub accepted the ping ``pinger`` sent for ``topic`` (for the entity tag it was sent for)."""
        query = "UPDATE announced SET told = pending, pending = '', pinger = '' WHERE namespace = ? AND topic = ? AND pinger = ?"
        self.db.write(lambda db: db.execute(query, (self.namespace, topic, pinger)), None)

    def gave_up(self, topic: str, pinger: str) -> None:
        """Record that the ping for ``topic`` failed for good: the next change or start announces it again."""
        query = "UPDATE announced SET pending = '', pinger = '' WHERE namespace = ? AND topic = ? AND pinger = ?"
        self.db.write(lambda db: db.execute(query, (self.namespace, topic, pinger)), None)


Record = Mapping[str, tuple[str, str, int | None]]  # path -> (input key or "", ETag, mtime)


class ExportLedger:
    """What each export folder holds: a file's input key, ETag and mtime (``export.py``)."""

    def __init__(self, db: Database):
        self.db = db

    def exported(self, folder: str) -> dict[str, tuple[str, str, int | None]]:
        """Return path -> (input key or "", ETag, mtime) of every document the export in ``folder`` holds ({}: unknown)."""
        query = "SELECT path, key, etag, stamp FROM exported WHERE folder = ?"
        return self.db.read(lambda db: {path: (key, etag, stamp) for path, key, etag, stamp in db.execute(query, (folder,))}, {})

    def remember(self, folder: str, documents: Record) -> None:
        """Record the documents of the export in ``folder`` (none: while it is being changed)."""

        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM exported WHERE folder = ?", (folder,))
            db.executemany("INSERT INTO exported VALUES (?, ?, ?, ?, ?)", [(folder, path, *value) for path, value in documents.items()])

        self.db.write(write, None)

    def update(self, folder: str, documents: Record, gone: Iterable[str] = ()) -> None:
        """Record changes to the export in ``folder``: ``documents`` written (or re-timed), ``gone`` forgotten."""

        def write(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM exported WHERE folder = ? AND path = ?", [(folder, path) for path in gone])
            db.executemany(
                "INSERT OR REPLACE INTO exported VALUES (?, ?, ?, ?, ?)", [(folder, path, *value) for path, value in documents.items()]
            )

        self.db.write(write, None)
