"""WebSub publisher side (W3C Recommendation, §7): tell the hub which feeds changed, without blocking requests.

Pings go out only once every live worker serves the new version (the hub's fetch can land on
any of them: ``state.ledgers``), and only for subscription feeds whose bytes differ from what
the hub last accepted, which the state remembers across restarts. A topic counts as told only
once the hub answered 2xx; one left pending by a worker that stopped is sent by the next to look.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable

from .publication import Publication, subscription_topics
from .state import Store

log = logging.getLogger(__name__)


class HubNotifier:
    """Send publish pings from one daemon thread; each topic is retried on its own schedule with exponential backoff."""

    def __init__(self, hub_url: str, store: Store, *, attempts: int = 5, first_delay: float = 1.0, timeout: float = 10.0):
        self.hub_url = hub_url
        self.store = store
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
        self._due: list[tuple[float, int, str, int]] = []  # (when, tiebreak, topic, attempt)
        self._order = itertools.count()
        self._busy = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="feedsvc-websub", daemon=True)
        self._thread.start()

    def queue_all(self, topics: Iterable[str]) -> None:
        """Queue a ping for each topic (the publisher's, once every worker serves the version they announce)."""
        for topic in topics:
            self.queue(topic)

    def announce(self, publication: Publication) -> None:
        """Queue pings for the feeds that differ from what the hub was last told (``build``: one process, no workers)."""
        self.queue_all(self.store.announced.due(subscription_topics(publication), self.store.token))

    def queue(self, topic: str, attempt: int = 1, delay: float = 0.0) -> None:
        """Schedule a publish ping for ``topic``."""
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), topic, attempt))
            self._changed.notify_all()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(None if not self._due else self._due[0][0] - time.monotonic())
                _, _, topic, attempt = heapq.heappop(self._due)
                self._busy += 1
            try:
                self._attempt(topic, attempt)
            finally:
                with self._changed:
                    self._busy -= 1
                    self._changed.notify_all()

    def _attempt(self, topic: str, attempt: int) -> None:
        status = self._ping(topic)
        if status is not None and 200 <= status < 300:
            log.info("WebSub hub %s accepted the publish ping for %s", self.hub_url, topic)
            self.store.announced.told(topic, self.store.token)
            return
        refused = status is not None and 400 <= status < 500 and status not in (408, 429)
        if refused or attempt >= self.attempts:
            why = f"refused it with HTTP {status}" if refused else f"did not accept it after {attempt} attempts"
            log.error("WebSub hub %s %s for %s; it will be announced again on the next change or start", self.hub_url, why, topic)
            self.store.announced.gave_up(topic, self.store.token)
            return
        self.queue(topic, attempt + 1, self.first_delay * 2 ** (attempt - 1))

    def _ping(self, topic: str) -> int | None:
        """POST hub.mode=publish with hub.topic and hub.url (hubs differ in which they read); return the status."""
        body = urllib.parse.urlencode({"hub.mode": "publish", "hub.topic": topic, "hub.url": topic}).encode()
        request = urllib.request.Request(self.hub_url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            log.warning("WebSub ping for %s to %s: HTTP %s", topic, self.hub_url, error.code)
            return error.code
        except (urllib.error.URLError, OSError) as error:
            log.warning("WebSub ping for %s to %s failed: %s", topic, self.hub_url, error)
            return None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued ping was sent or given up; False on timeout (tests, ``build``, shutdown)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._due and not self._busy, timeout)
