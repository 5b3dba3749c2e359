"""Side files beside the database: large values written whole (the kept load, the hot set), trusted only as recorded.

A side file is written aside and renamed in, then its SHA-256 and a note (what it holds: its
namespace, build identity, version) are recorded in the database. It is read back only when the
database in use recorded it with that note and its bytes still have that digest: a file left by
another database (one deleted, moved aside or made again), by other code, cut short or altered on
disk is a miss, never served. The digest is taken while the file streams through the pickler,
and the value is used only once the whole file matched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import threading
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from .db import Database


class _Hashing:
    """A binary file that digests what passes through it, for pickle's Pickler and Unpickler."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0

    def _seen(self, data) -> None:
        self.digest.update(data)
        self.size += len(data)

    def write(self, data) -> int:
        self._seen(data)
        return self.file.write(data)

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self._seen(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self.file.readline(size)
        self._seen(data)
        return data

    def readinto(self, buffer) -> int:
        count = self.file.readinto(buffer)
        self._seen(memoryview(buffer)[:count])
        return count


class Snapshots:
    """Side files of the state folder, each recorded in the database with its digest and note."""

    def __init__(self, db: Database):
        self.db = db

    def write(self, name: str, dump: Callable[[Any], None], note: Mapping[str, Any]) -> bool:
        """Write the side file ``name`` through ``dump(file)`` aside, rename it in and record it; tell whether it was kept.

        A full or read-only disk costs the next start some seconds, never this one.
        """
        path = self.db.directory / name
        temporary = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as out:
                hashing = _Hashing(out)
                dump(hashing)
            os.replace(temporary, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return False
        row = (name, hashing.digest.hexdigest(), hashing.size, json.dumps(dict(note), sort_keys=True))
        return self.db.write(lambda db: db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?)", row) and True, False)

    def note(self, name: str) -> dict | None:
        """Return the note recorded with the side file ``name`` (None: none recorded by this database)."""
        row = self.db.read(lambda db: db.execute("SELECT note FROM snapshots WHERE name = ?", (name,)).fetchone(), None)
        return None if row is None else json.loads(row[0])

    def read(self, name: str, load: Callable[[Any], Any], note: Mapping[str, Any]) -> Any | None:
        """Return ``load(file)`` of the side file ``name`` if it was recorded with ``note`` and its bytes are as recorded; else None."""
        row = self.db.read(lambda db: db.execute("SELECT digest, size, note FROM snapshots WHERE name = ?", (name,)).fetchone(), None)
        if row is None or json.loads(row[2]) != json.loads(json.dumps(dict(note), sort_keys=True)):
            return None
        digest, size, _ = row
        try:
            with open(self.db.directory / name, "rb") as source:
                if os.fstat(source.fileno()).st_size != size:
                    return None
                hashing = _Hashing(source)
                value = load(hashing)
                hashing.read()  # whatever the loader left unread counts too
        except Exception:  # missing, cut short, not a pickle, classes changed: a miss
            return None
        return value if hashing.digest.hexdigest() == digest else None


def dump_pickle(value: Any) -> Callable[[Any], None]:
    """A ``dump`` for ``Snapshots.write`` that pickles ``value``."""
    return lambda out: pickle.dump(value, out, pickle.HIGHEST_PROTOCOL)


def load_pickle(source: Any) -> Any:
    """A ``load`` for ``Snapshots.read`` that unpickles the file."""
    return pickle.load(source)
