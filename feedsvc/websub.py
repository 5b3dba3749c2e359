"""WebSub publisher side (W3C Recommendation, §7): tell the hub which feeds changed, without blocking requests."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import queue
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .publication import Publication

log = logging.getLogger(__name__)


def changed_feeds(old: Publication, new: Publication) -> list[str]:
    """Return the absolute URLs of subscription feeds whose bytes differ between two versions."""
    site = new.content.site
    changed = []
    for path in new.subscription_feeds:
        before = old.documents.get(path)
        if before is None or before.identity.etag != new.documents[path].identity.etag:
            changed.append(site.url(path))
    return changed


class HubNotifier:
    """Queue publish pings and send them from one daemon thread, retrying with exponential backoff."""

    def __init__(self, hub_url: str, *, attempts: int = 5, first_delay: float = 1.0, timeout: float = 10.0, claim_key: str = ""):
        self.hub_url = hub_url
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
        # several worker processes reload the same edit: only the first to claim a version pings
        digest = hashlib.sha256(f"{hub_url}\0{claim_key}".encode()).hexdigest()[:16]
        self._claim_file = Path(tempfile.gettempdir()) / f"feedsvc-websub-{digest}"
        self._queue: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="feedsvc-websub", daemon=True)
        self._thread.start()

    def on_new_version(self, old: Publication, new: Publication) -> None:
        """Queue a ping for every subscription feed the new version changed (called by the Publisher)."""
        if not self._claim(new.version):
            return
        for url in changed_feeds(old, new):
            self._queue.put(url)

    def _claim(self, version: str) -> bool:
        with self._claim_file.open("a+") as claim:
            fcntl.flock(claim, fcntl.LOCK_EX)
            claim.seek(0)
            if claim.read() == version:
                return False
            claim.seek(0)
            claim.truncate()
            claim.write(version)
            return True

    def _run(self) -> None:
        while True:
            url = self._queue.get()
            delay = self.first_delay
            for attempt in range(1, self.attempts + 1):
                if self._ping(url):
                    break
                if attempt < self.attempts:
                    threading.Event().wait(delay)
                    delay *= 2
            else:
                log.error("WebSub hub %s did not accept the publish ping for %s after %d attempts", self.hub_url, url, self.attempts)
            self._queue.task_done()

    def _ping(self, url: str) -> bool:
        """POST hub.mode=publish&hub.url=URL (the form hubs commonly accept); True on a 2xx answer."""
        body = urllib.parse.urlencode({"hub.mode": "publish", "hub.url": url}).encode()
        request = urllib.request.Request(self.hub_url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return 200 <= response.status < 300
        except (urllib.error.URLError, OSError) as error:
            log.warning("WebSub ping for %s to %s failed: %s", url, self.hub_url, error)
            return False

    def wait(self) -> None:
        """Block until every queued ping was sent or given up (for tests and orderly shutdown)."""
        self._queue.join()
