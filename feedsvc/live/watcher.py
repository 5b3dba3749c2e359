"""Watch the content folder: inotify events (through watchfiles' public ``watch``), collected by a thread of their own.

A reload looks again only at the paths the events named (``FolderWatch.take``) and, before it
stamps what it built, asks ``quiet()``: any event since it looked means the folder changed while
it built, as a full rescan that differs would, for a lock instead of a stat of every file.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from watchfiles import watch

log = logging.getLogger(__name__)
_DEBOUNCE_MS = 50  # the events of one save arrive within this of each other: grouped into one batch


def folder_identity(directory: Path) -> tuple:
    """Which folder ``directory`` names right now: a switched ``current -> releases/N`` link or a replaced folder differ."""
    try:
        info = os.stat(directory)
        return os.path.realpath(directory), info.st_dev, info.st_ino
    except OSError as error:
        return (str(directory), error.errno)


def folders_signature(directory: Path) -> tuple:
    """Return the modification times of the content folder and its subfolders (not of the files)."""
    signature = []
    pending = [os.fspath(directory)]
    while pending:
        folder = pending.pop()
        try:
            signature.append((folder, os.stat(folder).st_mtime_ns))
            with os.scandir(folder) as listing:
                pending.extend(item.path for item in listing if not item.name.startswith(".") and item.is_dir(follow_symlinks=False))
        except OSError as error:
            signature.append((folder, error.errno))
    return tuple(sorted(signature))


def _never_content(root: str, path: str) -> bool:
    """An editor's swap, lock or backup file, or anything under a dot-folder: never content, never a reason to reload."""
    relative = os.path.relpath(path, root)
    if relative == ".":
        return False
    base = os.path.basename(path)
    return any(part.startswith(".") for part in relative.split(os.sep)) or base.endswith("~") or base.startswith("#")


class WatchError(Exception):
    """The folder cannot be watched (gone, unreadable, no inotify watches left): the watcher reports it and tries again."""


class FolderWatch:
    """The events of the folder ``directory`` names now, collected until taken."""

    def __init__(self, directory: Path, timeout: float = 5.0):
        """Start watching; return once the watch is in place (raises WatchError when it cannot be)."""
        self.directory = directory
        self.identity = folder_identity(directory)
        self._root = os.path.realpath(directory)
        self._changed = threading.Condition()
        self._paths: set[str] | None = set()  # None: unknown, rescan everything
        self._fresh = False  # an event arrived since the last take
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self.lost = False  # the watch ended on its own (the folder went away): a new one is needed
        self._thread = threading.Thread(target=self._collect, name="feedsvc-folder-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._failure is not None:
            self.close()
            raise WatchError(str(self._failure or "the watch did not start in time"))

    def _collect(self) -> None:
        try:
            # rust_timeout: how long the Rust side waits before it yields an empty set (the first one says the watch is in place)
            for changes in watch(
                self._root,
                watch_filter=None,
                debounce=_DEBOUNCE_MS,
                step=_DEBOUNCE_MS,
                stop_event=self._stop,
                rust_timeout=_DEBOUNCE_MS,
                yield_on_timeout=True,
                raise_interrupt=False,
            ):
                self._ready.set()
                if changes:
                    self._add({path for _, path in changes})
        except Exception as error:  # a name watchfiles cannot decode (not UTF-8), a folder that cannot be watched
            if not self._ready.is_set():
                self._failure = error
                self._ready.set()
                return
            log.info("events of %s could not be read (%s); looking at every file", self.directory, type(error).__name__)
        if not self._stop.is_set():  # ended without being told to: the folder is gone or the events failed
            self.lost = True
            with self._changed:
                self._paths, self._fresh = None, True
                self._changed.notify_all()

    def _add(self, paths: set[str]) -> None:
        relevant = {path for path in paths if not _never_content(self._root, path)}
        if not relevant:
            return
        with self._changed:
            if self._paths is not None:
                self._paths.update(relevant)
            self._fresh = True
            self._changed.notify_all()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for an event that can change what is published; tell whether one came (since the last take)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._fresh, timeout)

    def take(self) -> set[str] | None:
        """Return the paths named since the last take (None: look at everything), and start collecting anew."""
        with self._changed:
            paths, self._paths, self._fresh = self._paths, set(), False
            return paths

    def everything(self) -> None:
        """Forget what was named: the next take says to look at every file (the safety net, a new watch)."""
        with self._changed:
            self._paths = None

    def quiet(self) -> bool:
        """Tell whether no event arrived since the last take (events that did are kept for the next one)."""
        with self._changed:
            return not self._fresh

    def close(self) -> None:
        """Stop watching: the inotify instance is closed when this returns (within a poll of the Rust side, ~50 ms)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2)

    def __enter__(self) -> FolderWatch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
