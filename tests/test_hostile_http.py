"""Hostile HTTP input: random paths, methods and header values never give a 5xx or a Host-built URL."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app

from feedsvc import create_app

PATHS = ["/", "/feed.xml", "/atom.xml", "/feed.json", "/posts/new-faces-proteas-announce-test-debutants/", "/healthz"]
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)
path_part = st.one_of(
    st.sampled_from(["..", "%2e%2e", "%2F", "%00", "//", "posts", "feed.xml", "%ff", "~", ";", "?x=1", "#f", "\u00e9", "%C0%AF"]),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
)
paths = st.one_of(st.sampled_from(PATHS), st.lists(path_part, max_size=8).map(lambda parts: "/" + "/".join(parts)))
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "PROPFIND", "BREW"])
headers = st.fixed_dictionaries(
    {},
    optional={
        "If-None-Match": st.one_of(
            header_text, st.lists(st.text(alphabet="0123456789abcdef", max_size=32).map(lambda t: f'"{t}"'), max_size=300).map(", ".join)
        ),
        "If-Modified-Since": st.one_of(
            header_text, st.sampled_from(["Tue, 01 Jan 2999 00:00:00 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "0", "-1"])
        ),
        "Accept-Encoding": st.one_of(header_text, st.sampled_from(["gzip;q=abc", "*;q=0", "gzip;q=1.5", "br, gzip;q=0.5"])),
        "Range": header_text,
        "If-Range": header_text,
        "If-Match": header_text,
        "A-IM": header_text,
        "Host": st.one_of(header_text, st.just("evil.example")),
    },
)


@pytest.fixture(scope="module", params=[True, False], ids=["fast-path", "flask-views"])
def hostile_client(request, tmp_path_factory):
    import shutil

    from tests.conftest import BUNDLED_CONTENT

    content = tmp_path_factory.mktemp("hostile") / "content"
    shutil.copytree(BUNDLED_CONTENT, content)
    return create_app({"CONTENT_DIR": str(content), "RELOAD_INTERVAL": 0, "FAST_PATH": request.param}).test_client()


def call(app, method: str, path: str, request_headers: dict) -> tuple[int, dict, bytes]:
    """Call the WSGI app with a raw path, as a server would pass it (the test client would parse it as a URL)."""
    raw_path, _, query = path.partition("?")
    environ = EnvironBuilder(path="/", method=method, headers=request_headers).get_environ()
    environ["PATH_INFO"] = unquote_to_bytes(raw_path).decode("latin-1")  # PEP 3333: bytes as latin-1
    environ["QUERY_STRING"] = query
    body, status, headers = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), headers, b"".join(body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=paths, method=methods, request_headers=headers)
def test_random_requests_never_fail_on_the_server_side(hostile_client, path, method, request_headers):
    status, response_headers, body = call(hostile_client.application, method, path, request_headers)
    assert status < 500, (path, method, request_headers, status)
    assert status in (200, 204, 304, 308, 400, 404, 405, 412, 416)
    assert b"Traceback" not in body
    if "evil.example" in request_headers.get("Host", ""):
        assert b"evil.example" not in body
        assert "evil.example" not in response_headers.get("Location", "")


def test_a_very_long_path_is_a_404(hostile_client):
    assert hostile_client.get("/" + "a" * 20_000).status_code == 404


def test_hundreds_of_etags_still_match(hostile_client):
    etag = hostile_client.get("/feed.xml").headers["ETag"]
    tags = ", ".join(f'"{i:032x}"' for i in range(500))
    assert hostile_client.get("/feed.xml", headers={"If-None-Match": f"{tags}, {etag}"}).status_code == 304
    assert hostile_client.get("/feed.xml", headers={"If-None-Match": tags}).status_code == 200
