"""Last-Modified: when each document's bytes last changed, the same in every process of one namespace.

A validator describes bytes, not editorial dates (RFC 9110 §8.8.2). A document keeps its time
while its entity tag stays; new bytes get the time they were first stamped, which is never
before the last one (a change within the same second waits for the next second) and never
after the clock (§8.8.2.1: an origin must not send a Last-Modified later than its Date).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from ..problems import StaleBuildError
from .db import Database

_FEW = 500  # stamping fewer documents than this looks them up one by one, more reads the namespace's rows
# A document that changed within this many seconds of its last stamp waits for the clock to pass it (a
# change within the same second); one stamped further ahead (the clock was set back) gets no
# Last-Modified until it changes again after the clock caught up, rather than a time in the future.
_WAIT_LIMIT = 1.5

Also = Callable[[sqlite3.Connection], None]  # more work for the same transaction (kept.py records the version)


class _TooSoon(Exception):
    """A document's bytes changed within the second of its last stamp: try again in ``seconds``."""

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds


def _moment(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Stamps:
    """Last-Modified times of one namespace's documents; ``role`` keeps a `build`'s version guard apart from `serve`'s."""

    def __init__(self, db: Database, namespace: str, role: str = "serve", clock: Callable[[], float] = time.time):
        self.db = db
        self.namespace = namespace
        self.role = role
        self.clock = clock
        # a clock of the tests' that they move by hand is waited on by moving it
        self.sleep: Callable[[float], None] = getattr(clock, "sleep", time.sleep)

    def last_modified(
        self,
        etags: Mapping[str, str],
        version: str,
        still_current: Callable[[], bool] | None = None,
        also: Also | None = None,
        claim: bool = False,
    ) -> dict[str, datetime | None]:
        """Return when each document's bytes last changed (None: no Last-Modified), recording new bytes as changed now.

        Stamps must follow the order in which the folder changed, or a worker still building an
        older version could record old bytes as newer than what another worker serves. So a
        version's build passes ``still_current`` (is the folder still what was read?), checked
        inside the transaction, and becomes the current version; documents rendered later (old
        pages, archives) are stamped only while their version is still the current one. Either
        failing raises StaleBuildError. ``claim``: the version becomes current also if no version is (the
        database was made anew while it was served). ``also`` runs in the same transaction once the
        version is current. A database that cannot be written gives no times (an empty dict), never
        an error.
        """
        for _ in range(3):
            try:
                result = self.db.write(lambda db: self._stamp(db, etags, version, still_current, also, claim), {})
            except _TooSoon as wait:  # a document changed again within its second: stamped once the clock is past it
                self.sleep(wait.seconds)
                continue
            return {path: None if moment is None else _moment(moment) for path, moment in result.items()}
        return {}

    def _stamp(self, db, etags, version, still_current, also, claim) -> dict[str, int | None]:
        key = (self.namespace, self.role)
        current = db.execute("SELECT version FROM current_versions WHERE namespace = ? AND role = ?", key).fetchone()
        if still_current is not None or claim:
            if not ((claim and current is None) or (still_current is not None and still_current())):
                raise StaleBuildError
            db.execute("INSERT OR REPLACE INTO current_versions VALUES (?, ?, ?)", (*key, version))
            if also is not None:
                also(db)
        elif current != (version,):
            raise StaleBuildError
        if len(etags) < _FEW:
            query = "SELECT path, etag, changed FROM documents WHERE namespace = ? AND path = ?"
            rows = [row for path in etags for row in db.execute(query, (self.namespace, path))]
        else:
            rows = db.execute("SELECT path, etag, changed FROM documents WHERE namespace = ?", (self.namespace,))
        known = {path: (etag, changed) for path, etag, changed in rows}
        now = self.clock()
        second = int(now)
        stamps: dict[str, int | None] = {}
        updates = []
        for path, etag in etags.items():
            previous = known.get(path)
            if previous is not None and previous[0] == etag:
                stamps[path] = previous[1] if previous[1] <= second else None  # ahead of a clock set back
                continue
            if previous is not None and previous[1] >= second:
                ahead = previous[1] + 1 - now
                if ahead <= _WAIT_LIMIT:
                    raise _TooSoon(ahead)  # nothing written: the whole transaction is made again then
                updates.append((self.namespace, path, etag, previous[1] + 1))  # still after the last: times never go back
                stamps[path] = None
                continue
            updates.append((self.namespace, path, etag, second))
            stamps[path] = second
        db.executemany(
            "INSERT INTO documents VALUES (?, ?, ?, ?) "
            "ON CONFLICT (namespace, path) DO UPDATE SET etag = excluded.etag, changed = excluded.changed",
            updates,
        )
        return stamps
