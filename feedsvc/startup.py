"""A worker's start: answer at once with what the state kept, while the publisher loads the folder.

A worker of `serve` can start at any moment: with the service (the check just rendered the hot
documents), on a restart, or hours later when granian replaces one that crashed. Whatever the
moment, it decides alone, from the state folder and its own settings (no hand-over from `serve`):
if the state holds the hot set of the namespace's kept version, made by this code (the landing
page, the subscription feeds, the newest entry pages: what nearly every request asks for), it
answers those at once while the publisher loads the archive in the background; every other request
waits for the publisher (at most START_WAIT_SECONDS, then 503 with Retry-After). The publisher
serves the folder as it is, or its last good version when the folder is broken (``Publisher``).
Only when there is neither does a worker answer 503 and try again on the folder's next change.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .live.health import first_problems, health_report, without_paths
from .live.watcher import FolderWatch, WatchError
from .problems import ContentError, Problem
from .publication import HotSet
from .state import Store
from .state.snapshots import load_pickle
from .web.fastpath import answer

log = logging.getLogger("feedsvc.startup")
START_WAIT_SECONDS = 30  # a request for a document outside the hot set waits this long for the start
RETRY_SECONDS = 600  # a start that failed is tried again on the folder's next change, or after this long


def usable_hot_set(store: Store, identity: str, clock: Callable[[], float]) -> HotSet | None:
    """Return the hot set of the namespace's kept version if this code made it and no scheduled entry in it is due since."""
    name = store.side_file("hot-set")
    note, kept = store.snapshots.note(name), store.kept.version()
    if note is None or kept is None or note.get("identity") != identity or tuple(kept) != (note.get("loaded"), identity):
        return None
    hot = store.snapshots.read(name, load_pickle, note)
    if not isinstance(hot, HotSet) or hot.version != note.get("version"):
        return None
    if hot.next_release is not None and datetime.fromtimestamp(clock(), UTC) >= hot.next_release:
        return None  # the publisher's start releases it: nothing would serve the version without it meanwhile
    return hot


class Starting:
    """WSGI app for a worker whose publisher is starting: the hot set's documents at once, the rest once it started."""

    def __init__(self, hot: HotSet | None, start: Callable[[], Callable], directory: Path, store: Store):
        """``start``: build the publisher and return the service's WSGI app (raises ContentError)."""
        self.folders = (directory, store.directory)  # named in no problem /healthz shows
        self.hot = hot  # dropped once started: the publication has its own copies
        self.app: Callable | None = None  # the service, once started: every request goes straight to it
        self.error: ContentError | None = None  # why the last start failed
        self._settled = threading.Event()  # set while no start is under way
        if hot is not None:  # pings of a newer version wait until this worker serves it too
            store.workers.serving(store.token, hot.version)
        self._thread = threading.Thread(target=self._start, args=(start, directory), name="feedsvc-start", daemon=True)
        self._thread.start()

    def __call__(self, environ: dict, start_response: Callable):
        hot, app = self.hot, self.app  # in this order: ``hot`` is dropped only after ``app`` is set
        if app is not None:
            return app(environ, start_response)
        if hot is not None and environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            representation = hot.documents.get(environ.get("PATH_INFO", ""))
            if representation is not None:
                return answer(representation, environ, start_response)
        self._settled.wait(START_WAIT_SECONDS)
        app = self.app
        if app is not None:
            return app(environ, start_response)
        return self._unavailable(environ, start_response)

    def wait(self, timeout: float) -> bool:
        """Block until the publisher started, at most ``timeout`` s; tell whether it did."""
        deadline = time.monotonic() + timeout
        while self.app is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.app is not None

    def _start(self, start: Callable[[], Callable], directory: Path) -> None:
        if self.hot is not None:
            log.info("serving the kept hot set of version %s (%d entries) while the archive loads", self.hot.version, self.hot.entries)
        while True:
            try:
                watch = FolderWatch(directory)  # before the attempt: a fix saved while it runs is not missed
            except WatchError:
                watch = None
            try:
                self.app = start()
                self.hot = None
                self._settled.set()
                if watch is not None:
                    watch.close()
                return
            except Exception as error:  # a content problem with nothing kept, or the unexpected: named, retried
                self.error = (
                    error if isinstance(error, ContentError) else ContentError([Problem("starting", type(error).__name__, str(error))])
                )
                log.error(
                    "cannot start on the content folder as it is now%s:\n%s",
                    f"; serving the hot set of version {self.hot.version} until it is fixed" if self.hot is not None else "",
                    "\n".join(f"  {problem}" for problem in first_problems([str(p) for p in self.error.problems])),
                )
            self._settled.set()
            if watch is None:
                time.sleep(RETRY_SECONDS)
            else:
                with watch:
                    watch.wait(RETRY_SECONDS)  # until a change
                    time.sleep(0.05)  # the rest of one save's events
            self._settled.clear()

    def _unavailable(self, environ: dict, start_response: Callable):
        hot = self.hot
        if environ.get("PATH_INFO") == "/healthz":
            problems = [str(p) for p in self.error.problems] if self.error is not None else ["starting: the archive is loading"]
            problems = without_paths(problems, *self.folders)
            report = health_report(problems, hot.version if hot else "", hot.entries if hot else 0, None)
            body = json.dumps(report).encode()
            headers = [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store")]
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]
        why = "content problems keep this document from being served" if self.error is not None else "the service is starting"
        body = f"Service unavailable: {why}; try again shortly (see /healthz).\n".encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store"), ("Retry-After", "10")]
        start_response("503 Service Unavailable", [*headers, ("Content-Length", str(len(body)))])
        return [body]


def stop_at_exit(publisher_of: Callable[[], object | None]) -> None:
    """Leave the workers serving when this process exits (``Publisher.stop``), so that no ping waits for it."""

    def stop() -> None:
        publisher = publisher_of()
        if publisher is not None:
            publisher.stop()

    atexit.register(stop)
