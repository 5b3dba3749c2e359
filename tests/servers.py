"""Start real servers on loopback for integration tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 30) -> None:
    """Poll ``url`` until it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def running_service(
    content_dir: Path,
    log_dir: Path,
    *,
    workers: int = 1,
    env: dict | None = None,
    extra: tuple = (),
    wrapper: tuple = (),
    program: tuple = (sys.executable, "-m", "feedsvc"),
    output=None,
    preexec_fn=None,
    port: int | None = None,
):
    """Run ``python -m feedsvc serve`` on ``port`` (default: a free one); yield its base URL and process.

    ``program`` is how feedsvc is run (e.g. an installed console script); ``wrapper`` prefixes the
    command (e.g. setpriv); ``output`` replaces the log file as stdout and
    stderr; ``preexec_fn`` runs in the child before the command (e.g. to close its stdout).
    """
    port = port or free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    log_path = log_dir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *wrapper,
                *program,
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--content",
                str(content_dir),
                *extra,
            ],
            cwd=ROOT,
            env={**clean, **(env or {})},
            stdout=log if output is None else output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec_fn,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/healthz")
        yield base, process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def server_processes(pid: int) -> list[int]:
    """A server process and its children (granian's workers)."""
    return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]


def server_rss_kib(pid: int) -> int:
    """Resident memory of a server process and its workers, in KiB."""
    total = 0
    for each in server_processes(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def fetch(url: str, headers: dict | None = None):
    """GET ``url``; return status, headers and body, for error statuses too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@contextlib.contextmanager
def running_nginx(work: Path, http_directives: str, server_directives: str, ready_path: str = "/"):
    """Run a real nginx on a free loopback port, configured inside ``work``; yield its base URL."""
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach files under pytest's private tmp dirs
    temp = " ".join(f"{name}_temp_path {work}/tmp-{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config = work / "nginx.conf"
    config.write_text(
        f"{user}\nworker_processes 1;\ndaemon off;\npid {work}/nginx.pid;\nerror_log {work}/error.log warn;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n{temp}\n{http_directives}\nserver {{\nlisten 127.0.0.1:{port};\n{server_directives}\n}}\n}}\n"
    )
    nginx = subprocess.Popen(["nginx", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + ready_path)
        yield base
    finally:
        nginx.terminate()
        nginx.wait(timeout=20)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log every request to stderr."""

    def log_message(self, *args):
        pass


def serve_in_thread(handler: type[BaseHTTPRequestHandler], path: str) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``handler`` on a free loopback port from a daemon thread; return the server and the URL of ``path``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}{path}"


class RecordingHub:
    """A local HTTP server playing a WebSub hub: records each publish POST; can fail, refuse or hold on purpose.

    ``failures``: answer the next N pings with 503; ``refuse``: topic -> status answered every time.
    """

    def __init__(self, failures: int = 0, refuse: dict[str, int] | None = None):
        self.received: list[dict] = []
        self.on_ping = lambda form: None  # called as each ping arrives, before it is answered
        self.attempts: list[str] = []
        self.failures = failures
        self.refuse = refuse or {}
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        hub = self

        class Handler(QuietHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                form = dict(urllib.parse.parse_qsl(body.decode()))
                hub.on_ping(form)
                hub.arrived.set()
                hub.release.wait(30)
                with hub.lock:
                    hub.attempts.append(form.get("hub.topic", ""))
                    status = hub.refuse.get(form.get("hub.topic", ""))
                    if status is None and hub.failures > 0:
                        hub.failures -= 1
                        status = 503
                    if status is None:
                        hub.received.append({"content_type": self.headers["Content-Type"], **form})
                self.send_response(status or 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server, self.url = serve_in_thread(Handler, "/hub")

    def topics(self) -> list[str]:
        """Return the topics of the accepted pings, sorted."""
        with self.lock:
            return sorted(ping["hub.topic"] for ping in self.received)

    def clear(self) -> None:
        with self.lock:
            self.received.clear()
            self.attempts.clear()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
