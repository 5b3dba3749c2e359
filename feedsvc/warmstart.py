"""A worker of ``serve`` restarted on a kept hot set answers with it at once and starts its publisher meanwhile.

Loading a large archive takes seconds (100,000 entries: the kept load, a look at every file and
the first build, ~3 s a worker); the landing page and the subscription feeds, which nearly every
request asks for, are the documents the last run served, kept in the store (``HotSet``). Until
the publisher is ready, those are answered from the hot set and every other request waits for
it (at most START_WAIT_SECONDS, then 503 with Retry-After). If the folder changed while the
service was down, the publisher's start publishes the change like any edit; if it broke, the
hot set stays served, /healthz names the problems, and the start is tried again on the next change.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from .content import ContentError, Problem
from .fastpath import answer
from .publication import HotSet
from .publisher import first_problems, health_report, open_watch
from .store import Store

log = logging.getLogger(__name__)
START_WAIT_SECONDS = 30  # a request for a document outside the hot set waits this long for the start
RETRY_SECONDS = 600  # a start that failed is tried again on the folder's next change, or after this long


def usable_hot_set(store: Store, key: str, clock: Callable[[], float]) -> HotSet | None:
    """Return the hot set the store kept if it was rendered under ``key`` and no scheduled entry in it is due since."""
    hot = store.load_hot_set()
    if not isinstance(hot, HotSet) or hot.key != key:
        return None
    if hot.next_release is not None and datetime.fromtimestamp(clock(), UTC) >= hot.next_release:
        return None  # the publisher's start releases it: nothing would serve the version without it meanwhile
    return hot


class WarmStart:
    """WSGI app for a worker whose publisher is starting: the hot set's documents at once, the rest once it started."""

    def __init__(self, hot: HotSet, start: Callable[[], Callable], directory: Path):
        """``start``: build the publisher and return the service's WSGI app (raises ContentError)."""
        self.hot: HotSet | None = hot  # dropped once started: the publication has its own copies
        self.version = hot.version
        self.app: Callable | None = None  # the service, once started: every request goes straight to it
        self.error: ContentError | None = None  # why the last start failed
        self._settled = threading.Event()  # set while no start is under way
        self._thread = threading.Thread(target=self._start, args=(start, directory), name="feedsvc-start", daemon=True)
        self._thread.start()

    def __call__(self, environ: dict, start_response: Callable):
        hot, app = self.hot, self.app  # in this order: ``hot`` is dropped only after ``app`` is set
        if app is not None:
            return app(environ, start_response)
        if environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            representation = hot.documents.get(environ.get("PATH_INFO", ""))
            if representation is not None:
                return answer(representation, environ, start_response)
        self._settled.wait(START_WAIT_SECONDS)
        app = self.app
        if app is not None:
            return app(environ, start_response)
        return self._unavailable(environ, start_response)

    def wait(self, timeout: float) -> bool:
        """Block until the publisher started, at most ``timeout`` s; tell whether it did (tests)."""
        deadline = time.monotonic() + timeout
        while self.app is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.app is not None

    def _start(self, start: Callable[[], Callable], directory: Path) -> None:
        log.info("serving the kept hot set of version %s (%d entries) while the archive loads", self.version, self.hot.entries)
        while True:
            watch = open_watch(directory)  # before the attempt: a fix saved while it runs is not missed
            try:
                self.app = start()
                self.hot = None
                self._settled.set()
                if watch is not None:
                    watch[0].close()
                return
            except Exception as error:  # a content problem, or the unexpected (a state folder gone read-only): named, retried
                self.error = (
                    error if isinstance(error, ContentError) else ContentError([Problem("(start)", type(error).__name__, str(error))])
                )
                log.error(
                    "cannot start on the content folder as it is now; serving the hot set of version %s until it is fixed:\n%s",
                    self.version,
                    "\n".join(f"  {problem}" for problem in first_problems([str(p) for p in self.error.problems])),
                )
            self._settled.set()
            if watch is None:
                time.sleep(RETRY_SECONDS)
            else:
                with watch[0] as notify:
                    notify.watch(50, 50, RETRY_SECONDS * 1000, None)  # until a change (grouping the events of one save)
            self._settled.clear()

    def _unavailable(self, environ: dict, start_response: Callable):
        if environ.get("PATH_INFO") == "/healthz":
            problems = [str(p) for p in self.error.problems] if self.error is not None else ["starting: the archive is loading"]
            body = json.dumps(health_report(problems, self.version, self.hot.entries, None)).encode()
            headers = [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store")]
            start_response("200 OK", [*headers, ("Content-Length", str(len(body)))])
            return [body]
        why = "content problems keep this document from being served" if self.error is not None else "the service is starting"
        body = f"Service unavailable: {why}; try again shortly (see /healthz).\n".encode()
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store"), ("Retry-After", "10")]
        start_response("503 Service Unavailable", [*headers, ("Content-Length", str(len(body)))])
        return [body]
