"""The loader's memo of a whole load as a file: what a restart starts from instead of reading every entry again.

Written beside the state database (``state.snapshots``) by the process that made the load, read
back by the next start of the same folder: one file of 100,000 entries loads in about a second;
the same entries one by one from the parse cache take five (a row, a pickle and a body reference
each).
"""

from __future__ import annotations

import pickle
from array import array
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..models import ENTRY_FIELDS, ENTRY_SLOT_SETTERS, Entry
from .loader import LoadMemo, collector_paused
from .scan import ContentFile, FolderScan

StoredBodyOf = Callable[[str, str, str], Any]  # (parse key, entry digest, source file) -> the entry's body in the cache


# --- the kept load as columns ---------------------------------------------------------------------
#
# Pickled as objects, 100,000 entries left ~44 MB of holes in every worker's heap: the unpickler
# keeps every temporary it makes (each entry's state tuple, each datetime's and each record's
# arguments, each body's reference) until the end, between the entries that stay, and freed then
# they leave most memory pages partly used. As columns, a value is either what the memo keeps (a
# title, a name) or part of one large object (an array of sizes), and the few objects made while
# decoding are freed before the next is made: the same memory slot, again and again.
_SNAPSHOT_FORMAT = "feedsvc kept load, columns 4"
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
        "changes": array("q", (record.change for record in records)),
        "keys": keys,
        # a body in the cache is known by the entry's parse key, digest and file: None says so
        "body": [None if _in_cache(entry, key) else entry.body for key, entry in zip(keys, entries, strict=True)],
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
        "scan_racy": memo.scan.racy,
        "version": memo.version,
        "fresh": memo.fresh,
        "with_media": memo.with_media,
        "images": memo.images,
    }
    for name in _PLAIN_FIELDS:
        columns[name] = [getattr(entry, name) for entry in entries]
    return columns


def _in_cache(entry: Entry, key: str) -> bool:
    body = entry.body
    return getattr(body, "parse_key", None) == key and body.digest == entry.digest and body.source == entry.source


def _memo_from_columns(columns: dict[str, Any], stored_body: StoredBodyOf) -> LoadMemo:
    """Make the loader's memo again from ``_memo_columns``: the same values, the same objects shared as before."""
    names, keys = columns["names"], columns["keys"]
    records = list(map(ContentFile, names, columns["sizes"], columns["mtimes"], columns["changes"]))
    entries = [object.__new__(Entry) for _ in names]
    for name in _PLAIN_FIELDS:
        deque(map(ENTRY_SLOT_SETTERS[name], entries, columns[name]), maxlen=0)
    published = _from_moments(columns["published"])
    others = iter(_from_moments(columns["updated"]))
    updated = [moment if same else next(others) for moment, same in zip(published, columns["updated_is_published"], strict=True)]
    deque(map(ENTRY_SLOT_SETTERS["published"], entries, published), maxlen=0)
    deque(map(ENTRY_SLOT_SETTERS["updated"], entries, updated), maxlen=0)
    bodies = [
        stored_body(key, entry.digest, entry.source) if body is None else body
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
            columns["scan_racy"],
        ),
        version=columns["version"],
        images=columns["images"],
    )


class _MemoPickler(pickle.Pickler):
    """Pickles a body in the cache as its key: the cache that loads it back is the one it refers to."""

    def persistent_id(self, obj: Any) -> tuple | None:
        return ("body", obj.parse_key, obj.digest, obj.source) if hasattr(obj, "parse_key") and hasattr(obj, "store") else None


class _MemoUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, stored_body: StoredBodyOf):
        super().__init__(file)
        self.stored_body = stored_body

    def persistent_load(self, pid: tuple) -> Any:
        _, parse_key, digest, source = pid
        return self.stored_body(parse_key, digest, source)


def dump_memo(memo: LoadMemo) -> Callable[[Any], None]:
    """Return what writes ``memo`` to a file (for ``state.snapshots.Snapshots.write``)."""
    columns = _memo_columns(memo)
    return lambda out: _MemoPickler(out, pickle.HIGHEST_PROTOCOL).dump(columns)


@collector_paused()  # a million new objects would trigger passes over all of them: half the time of the load
def load_memo(source: Any, stored_body: StoredBodyOf) -> LoadMemo | None:
    """Read a memo ``dump_memo`` wrote (None: another format); ``stored_body`` makes the references into the cache."""
    columns = _MemoUnpickler(source, stored_body).load()
    return _memo_from_columns(columns, stored_body) if isinstance(columns, dict) and columns.get("format") == _SNAPSHOT_FORMAT else None
