"""feedsvc behind a real nginx caching reverse proxy, configured with deploy/nginx-feedsvc.conf."""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, require
from tests.servers import fetch as get
from tests.servers import running_nginx, running_service

pytestmark = pytest.mark.integration
NGINX_SNIPPET = ROOT / "deploy" / "nginx-feedsvc.conf"


@pytest.fixture
def cached_service(content_dir, tmp_path):
    require(shutil.which("nginx") is not None, "nginx is not installed (apt-get install nginx)")
    # max-age 2 s so the test can watch a cached copy go stale and get revalidated
    with running_service(content_dir, tmp_path, env={"FEEDSVC_MAX_AGE": "2"}) as (service_url, _):
        http = f"""
            log_format cache '$request_uri|$http_accept_encoding|$upstream_cache_status|$upstream_status|$status';
            access_log {tmp_path}/access.log cache;
            upstream feedsvc {{ server {service_url.removeprefix("http://")}; keepalive 8; }}
            proxy_cache_path {tmp_path}/cache keys_zone=feedsvc:1m max_size=50m inactive=1h use_temp_path=off;
            include {ROOT}/deploy/nginx-feedsvc-http.conf;
        """
        with running_nginx(tmp_path, http, f"include {NGINX_SNIPPET};", "/healthz") as proxy:
            yield proxy, tmp_path / "access.log"


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


def test_a_query_string_does_not_bypass_the_cache(cached_service):
    proxy, _ = cached_service
    _status, headers, body = get(proxy + "/feed.xml")
    assert headers["X-Cache-Status"] == "MISS"
    for query in ("?x=1", "?utm_source=reader&x=2"):
        again = get(proxy + "/feed.xml" + query)
        assert again[0] == 200 and again[2] == body and again[1]["X-Cache-Status"] == "HIT"


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("GZIP;Q=0.5", True),
        ("x-gzip", True),
        ("gzip;q=0", False),
        ("gzip;q=0, *", False),  # what feedsvc answers too: a coding named with q=0 is refused
        ("deflate, gzip; q=0.000", False),
        ("x-gzip;q=0", False),
        ("identity", False),
        ("*", False),  # feedsvc itself may send gzip; identity is acceptable to every client
    ],
)
def test_the_proxy_honours_q_zero_like_the_service(cached_service, accept_encoding, gzipped):
    proxy, _ = cached_service
    _, headers, _body = get(proxy + "/feed.xml", {"Accept-Encoding": accept_encoding})
    assert (headers["Content-Encoding"] == "gzip") is gzipped


def test_a_made_up_host_header_gets_the_cached_copy_not_a_copy_of_its_own(cached_service):
    """feedsvc never uses the Host header: keyed on it, every made-up Host would make (and cache) one more copy."""
    proxy, log = cached_service
    assert get(proxy + "/feed.xml")[1]["X-Cache-Status"] == "MISS"
    for host in ("example.org", "attacker.test", "a" * 60 + ".invalid"):
        assert get(proxy + "/feed.xml", {"Host": host})[1]["X-Cache-Status"] == "HIT", host
    assert [line[3] for line in log_lines(log, 4)] == ["200", "-", "-", "-"]
