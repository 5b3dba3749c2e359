"""The live publication: load, build, stamp, swap one reference; watch the content folder; keep the last good version.

A reload is a transaction: the new version is loaded, rendered and given its Last-Modified
times before anything a client or /healthz sees changes; any failure on the way is a content
problem (logged, reported by /healthz, retried on the next change) and the last good version
stays served.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watchfiles._rust_notify import RustNotify  # watchfiles.watch() offers no hook once the watch is in place

from .content import ContentError, Problem, content_files, load_content, shorten
from .publication import Publication, Stamper, build_publication
from .store import StaleBuildError, Store

log = logging.getLogger(__name__)
SAFETY_NET_SECONDS = 30
_STALE_RETRIES = 20  # a folder that keeps changing while we build: give up for now, the watcher calls again


def fingerprint(directory: Path) -> tuple:
    """Return a cheap signature of the content files: names, sizes and modification times."""
    signature = []
    for path in content_files(directory):
        try:
            stat = path.stat()
        except OSError:
            continue
        signature.append((path.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


def _settle_heap() -> None:
    """Collect the build's garbage, then exempt the long-lived publication from cyclic GC passes.

    A full collection would otherwise walk every pre-built document (tens of thousands of objects
    with large content) while requests wait; the old version is still freed by reference counting.
    """
    gc.collect()
    gc.freeze()


def _unexpected(error: Exception) -> ContentError:
    """Describe a failure that is not a known content problem (a library choking on odd input)."""
    return ContentError([Problem("(build)", type(error).__name__, shorten(str(error) or "failed", 200))])


class Publisher:
    """Owns the current Publication; readers take ``publisher.current`` and never see a half-built one."""

    def __init__(
        self,
        directory: str | Path,
        overrides: Mapping[str, Any] | None = None,
        hub_url: str | None = None,
        store: Store | None = None,
        on_new_version: Callable[[Publication], None] | None = None,
    ):
        self.directory = Path(directory)
        self.overrides = dict(overrides or {})
        self.hub_url = hub_url
        self.store = store
        self.on_new_version = on_new_version  # e.g. HubNotifier.on_new_version: must not block
        self._parsed: dict = {}  # entries of the last load, reused for unchanged files
        self._lock = threading.Lock()  # one reload at a time
        self._stop = threading.Event()
        self.error: ContentError | None = None
        self.current: Publication | None = None
        for _ in range(_STALE_RETRIES):
            seen = fingerprint(self.directory)
            try:
                # raises ContentError: a service never starts on invalid content
                self.current = self._build(seen)
                break
            except StaleBuildError:
                continue
            except ContentError:
                raise
            except Exception as error:
                raise _unexpected(error) from error
        else:
            raise ContentError([Problem(".", "folder", "kept changing while it was read; start again once it is saved")])
        self._fingerprint = seen
        self.loaded_at = datetime.now(UTC)
        _settle_heap()
        if self.on_new_version is not None:
            self.on_new_version(self.current)

    def _stamper(self, version: str, seen: tuple | None = None) -> Stamper | None:
        """Stamp documents through the store: a build checks the folder is still ``seen``; later renders check the version."""
        if self.store is None:
            return None
        store, directory = self.store, self.directory
        still_current = None if seen is None else (lambda: fingerprint(directory) == seen)

        def stamp(etags: Mapping[str, str]) -> Mapping[str, datetime]:
            return store.last_modified(etags, version, still_current)

        return stamp

    def _build(self, seen: tuple) -> Publication | None:
        """Build the folder's version, or return None when it is the version already served (a touch)."""
        content = load_content(self.directory, self.overrides, self._parsed)
        if self.current is not None and content.version == self.current.version:
            return None
        publication = build_publication(content, self.hub_url, self.current, self._stamper(content.version, seen))
        return replace(publication, stamp=self._stamper(content.version))

    def refresh(self) -> bool:
        """Reload when the folder changed; return True when a new version is now served."""
        with self._lock:
            for _ in range(_STALE_RETRIES):
                seen = fingerprint(self.directory)
                if seen == self._fingerprint:
                    return False
                try:
                    publication = self._build(seen)
                except StaleBuildError:  # saved again while we built: build what is there now
                    continue
                except ContentError as error:
                    self._failed(seen, error)
                    return False
                except Exception as error:
                    log.exception("building the content failed")
                    self._failed(seen, _unexpected(error))
                    return False
                if publication is None:
                    self._fixed(seen)
                    return False
                return self._swap(seen, publication)
            return False

    def _failed(self, seen: tuple, error: ContentError) -> None:
        if self.error is None or error.problems != self.error.problems:
            log.error("content in %s not reloaded, still serving version %s:\n%s", self.directory, self.current.version, error)
        self._fingerprint = seen  # retried on the next change, not in a busy loop
        self.error = error

    def _fixed(self, seen: tuple) -> None:
        if self.error is not None:
            log.info("content problems fixed")
        self._fingerprint = seen
        self.error = None
        self.loaded_at = datetime.now(UTC)

    def _swap(self, seen: tuple, publication: Publication) -> bool:
        self.current = publication  # one reference swap: atomic for readers
        self._fixed(seen)
        _settle_heap()
        log.info("serving content version %s (%d entries)", publication.version, len(publication.content.entries))
        if self.on_new_version is not None:
            self.on_new_version(publication)
        return True

    def status(self) -> dict[str, Any]:
        """Describe what is served, for /healthz."""
        return {
            "status": "ok" if self.error is None else "degraded",
            "content_version": self.current.version,
            "entries": len(self.current.content.entries),
            "last_successful_load": self.loaded_at.isoformat(),
            "error": None if self.error is None else [str(p) for p in self.error.problems],
        }

    def watch(self, delay: float) -> threading.Thread:
        """Reload on file-system events (inotify), batching the events of ``delay`` s of quiet into one reload.

        Events cost nothing while nobody edits; a slow periodic check (SAFETY_NET_SECONDS) still
        catches what events can miss, such as a replaced folder. The folder is checked once as soon
        as the watch is in place, so a save made while the service started is not missed.
        """

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    with RustNotify([str(self.directory)], False, False, 300, True, False) as notify:
                        self.refresh()
                        while not self._stop.is_set():
                            # debounce: wait for delay of quiet (at most 10x delay) before reloading once
                            result = notify.watch(max(1, int(delay * 1000)), 50, SAFETY_NET_SECONDS * 1000, self._stop)
                            if result in ("stop", "signal"):
                                return
                            self.refresh()
                except Exception:  # the watcher must survive anything an editor can do
                    log.exception("unexpected error while watching content; retrying")
                    self._stop.wait(SAFETY_NET_SECONDS)

        thread = threading.Thread(target=loop, name="feedsvc-content-watcher", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
