"""Start real servers on loopback for integration tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
def running_service(content_dir: Path, log_dir: Path, *, workers: int = 1, env: dict | None = None, extra: tuple = ()):
    """Run ``python -m feedsvc serve`` on a free port; yield its base URL and process."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    log_path = log_dir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "feedsvc",
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
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
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
