"""feedsvc behind a real nginx caching reverse proxy, configured with deploy/nginx-feedsvc.conf."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, require
from tests.servers import free_port, running_service, wait_for

pytestmark = pytest.mark.integration
NGINX_SNIPPET = ROOT / "deploy" / "nginx-feedsvc.conf"


def nginx_config(work: Path, port: int, upstream: str) -> Path:
    config = work / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the cache under tmp_path
    temp = " ".join(f"{name}_temp_path {work}/tmp-{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config.write_text(
        f"""
{user}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    {temp}
    log_format cache '$request_uri|$http_accept_encoding|$upstream_cache_status|$upstream_status|$status';
    access_log {work}/access.log cache;
    upstream feedsvc {{ server {upstream}; keepalive 8; }}
    proxy_cache_path {work}/cache keys_zone=feedsvc:1m max_size=50m inactive=1h use_temp_path=off;
    map $http_accept_encoding $feedsvc_encoding {{ default ""; "~*gzip" "gzip"; }}
    server {{
        listen 127.0.0.1:{port};
        include {NGINX_SNIPPET};
    }}
}}
"""
    )
    return config


@pytest.fixture
def cached_service(content_dir, tmp_path):
    require(shutil.which("nginx") is not None, "nginx is not installed (apt-get install nginx)")
    # max-age 2 s so the test can watch a cached copy go stale and get revalidated
    with running_service(content_dir, tmp_path, env={"FEEDSVC_MAX_AGE": "2"}) as (service_url, _):
        port = free_port()
        config = nginx_config(tmp_path, port, service_url.removeprefix("http://"))
        nginx = subprocess.Popen(["nginx", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(f"http://127.0.0.1:{port}/healthz")
            yield f"http://127.0.0.1:{port}", tmp_path / "access.log"
        finally:
            nginx.terminate()
            nginx.wait(timeout=20)


def get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def log_lines(log: Path, count: int) -> list[list[str]]:
    """Return the /feed.xml lines of nginx's access log once it holds ``count`` (nginx logs after answering)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line.split("|") for line in log.read_text().splitlines() if line.startswith("/feed.xml")]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_repeated_polls_are_served_by_nginx_without_reaching_the_service(cached_service):
    proxy, log = cached_service
    statuses = [get(proxy + "/feed.xml")[1]["X-Cache-Status"] for _ in range(5)]
    assert statuses[0] == "MISS"
    assert statuses[1:] == ["HIT"] * 4
    # the access log's $upstream_status is "-" when nginx answered alone
    assert [line[3] for line in log_lines(log, 5)] == ["200", "-", "-", "-", "-"]


def test_after_expiry_nginx_revalidates_and_the_service_answers_304(cached_service):
    proxy, log = cached_service
    status, headers, first = get(proxy + "/feed.xml")
    assert status == 200 and headers["Cache-Control"] == "public, max-age=2"
    time.sleep(2)
    # nginx keeps time in whole seconds: the copy goes stale within a second of max-age
    deadline = time.monotonic() + 5
    requests = 2
    while (response := get(proxy + "/feed.xml"))[1]["X-Cache-Status"] == "HIT":
        assert time.monotonic() < deadline, log.read_text()
        requests += 1
        time.sleep(0.2)
    status, headers, again = response
    assert status == 200 and again == first
    assert headers["X-Cache-Status"] == "REVALIDATED", log.read_text()
    assert [line[2:] for line in log_lines(log, requests) if line[2] != "HIT"] == [["MISS", "200", "200"], ["REVALIDATED", "304", "200"]]


def test_gzip_and_identity_variants_are_never_mixed(cached_service):
    proxy, _ = cached_service
    for _ in range(2):  # MISS, then HIT for each variant
        _, plain_headers, plain = get(proxy + "/feed.xml")
        _, gzip_headers, zipped = get(proxy + "/feed.xml", {"Accept-Encoding": "gzip, deflate, br"})
        _, other_headers, other = get(proxy + "/feed.xml", {"Accept-Encoding": "identity"})
        assert plain_headers["Content-Encoding"] is None and other_headers["Content-Encoding"] is None
        assert gzip_headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(zipped) == plain == other
    assert gzip_headers["X-Cache-Status"] == plain_headers["X-Cache-Status"] == "HIT"


def test_client_revalidation_through_the_cache_gets_304(cached_service):
    proxy, _ = cached_service
    _, headers, _ = get(proxy + "/feed.xml", {"Accept-Encoding": "gzip"})
    status, again, body = get(proxy + "/feed.xml", {"Accept-Encoding": "gzip", "If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    assert again["ETag"] == headers["ETag"]
