"""HTTP behaviour, run against both the WSGI fast path and the Flask views (the `client` fixture)."""

from __future__ import annotations

import gzip

import pytest
from werkzeug.http import http_date, parse_date

FEEDS = {
    "/feed.xml": "application/rss+xml; charset=utf-8",
    "/atom.xml": "application/atom+xml; charset=utf-8",
    "/feed.json": "application/feed+json; charset=utf-8",
}
ARTICLE = "/posts/ketamine-therapy-high-risk-high-reward-for-severe-depression/"


@pytest.mark.parametrize(("path", "media_type"), [*FEEDS.items(), ("/", "text/html; charset=utf-8"), (ARTICLE, "text/html; charset=utf-8")])
def test_documents_have_media_type_with_charset_and_validators(client, path, media_type):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == media_type
    assert response.headers["ETag"].startswith('"') and not response.headers["ETag"].startswith('W/"')
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert parse_date(response.headers["Last-Modified"]) is not None
    assert int(response.headers["Content-Length"]) == len(response.data)


def _conditional_cases():
    # (request headers built from the 200's ETag/Last-Modified, expected status)
    return [
        (lambda etag, lm: {"If-None-Match": etag}, 304),
        (lambda etag, lm: {"If-None-Match": "W/" + etag}, 304),  # weak comparison (RFC 9110 §13.1.2)
        (lambda etag, lm: {"If-None-Match": f'"nope", {etag}'}, 304),  # a list
        (lambda etag, lm: {"If-None-Match": "*"}, 304),
        (lambda etag, lm: {"If-None-Match": '"other"'}, 200),
        (lambda etag, lm: {"If-Modified-Since": lm}, 304),
        (lambda etag, lm: {"If-Modified-Since": "Sun, 06 Jul 2025 00:00:00 GMT"}, 200),
        (lambda etag, lm: {"If-Modified-Since": "yesterday-ish"}, 200),  # garbage is ignored
        (lambda etag, lm: {"If-None-Match": '"other"', "If-Modified-Since": lm}, 200),  # INM wins over IMS
        (lambda etag, lm: {"If-None-Match": etag, "If-Modified-Since": "Sun, 06 Jul 2025 00:00:00 GMT"}, 304),
        (lambda etag, lm: {"If-None-Match": "garbage without quotes"}, 200),
        # RFC 9110 §13.2.2: If-Match, then If-Unmodified-Since, then If-None-Match, then If-Modified-Since
        (lambda etag, lm: {"If-Match": '"other"', "If-None-Match": etag}, 412),
        (lambda etag, lm: {"If-Match": etag, "If-None-Match": etag}, 304),
        (lambda etag, lm: {"If-Match": "*", "If-Modified-Since": lm}, 304),
        (lambda etag, lm: {"If-Unmodified-Since": lm}, 200),
        (lambda etag, lm: {"If-Unmodified-Since": "Sun, 06 Jul 2025 00:00:00 GMT"}, 412),
        (lambda etag, lm: {"If-Unmodified-Since": "Sun, 06 Jul 2025 00:00:00 GMT", "If-None-Match": etag}, 412),
        (lambda etag, lm: {"If-Unmodified-Since": "not a date"}, 200),  # ignored (§13.1.4)
        (lambda etag, lm: {"If-Match": etag, "If-Unmodified-Since": "Sun, 06 Jul 2025 00:00:00 GMT"}, 200),  # If-Match decides
    ]


@pytest.mark.parametrize(("make_headers", "status"), _conditional_cases())
@pytest.mark.parametrize("path", [*FEEDS, "/", ARTICLE])
def test_conditional_get(client, path, make_headers, status):
    first = client.get(path)
    response = client.get(path, headers=make_headers(first.headers["ETag"], first.headers["Last-Modified"]))
    assert response.status_code == status
    if status == 304:
        assert response.data == b""
        assert response.headers["ETag"] == first.headers["ETag"]
        assert response.headers["Last-Modified"] == first.headers["Last-Modified"]
        assert response.headers["Cache-Control"] == first.headers["Cache-Control"]
    elif status == 412:
        assert response.data == b"" and response.headers["Cache-Control"] == "no-store"
    else:
        assert response.data == first.data


@pytest.mark.parametrize(
    ("accept_encoding", "gzipped"),
    [
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("deflate", False),
        (None, False),
        ("g\u00fczip;;;q=abc, ,", False),
        ("gzip;q=0, *", False),  # a coding named explicitly wins over "*" (RFC 9110 §12.5.3)
        ("*;q=0", False),
        ("identity, *;q=0", False),
        ("x-gzip", True),
        ("GZIP;Q=0.5", True),
        ("br, *;q=0.5", True),
    ],
)
def test_gzip_follows_accept_encoding(client, accept_encoding, gzipped):
    headers = {"Accept-Encoding": accept_encoding} if accept_encoding else {}
    plain = client.get("/feed.xml")
    response = client.get("/feed.xml", headers=headers)
    assert response.headers["Vary"] == "Accept-Encoding"
    assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
    body = gzip.decompress(response.data) if gzipped else response.data
    assert body == plain.data


def test_an_entity_tag_matches_only_the_representation_it_names(client):
    plain = client.get("/feed.xml")
    zipped = client.get("/feed.xml", headers={"Accept-Encoding": "gzip"})
    assert plain.headers["ETag"] != zipped.headers["ETag"]
    for etag, encoding in ((plain.headers["ETag"], "identity"), (zipped.headers["ETag"], "gzip")):
        for accept in ("gzip", "identity"):
            response = client.get("/feed.xml", headers={"If-None-Match": etag, "Accept-Encoding": accept})
            if accept == encoding:
                assert response.status_code == 304 and response.headers["ETag"] == etag
            else:  # the client holds the other encoding: it gets the one it asked for
                assert response.status_code == 200 and response.headers["ETag"] != etag
            strong = client.get("/feed.xml", headers={"If-Match": etag, "Accept-Encoding": accept})
            assert strong.status_code == (200 if accept == encoding else 412)


@pytest.mark.parametrize("path", [*FEEDS, "/", ARTICLE])
def test_head_has_the_headers_of_get_and_no_body(client, path):
    get = client.get(path, headers={"Accept-Encoding": "gzip"})
    head = client.head(path, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200
    assert head.data == b""
    assert dict(head.headers) == dict(get.headers)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_with_allow(client, method):
    response = client.open("/feed.xml", method=method)
    assert response.status_code == 405
    assert {"GET", "HEAD"} <= {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize("path", ["/feed.xml", "/", "/posts/new-faces-proteas-announce-test-debutants/"])
def test_options_on_a_document_answers_204_with_allow(client, path):
    response = client.open(path, method="OPTIONS")
    assert response.status_code == 204
    assert response.data == b""
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}


def test_options_on_an_unknown_path_is_a_404(client):
    assert client.open("/nope", method="OPTIONS").status_code == 404


@pytest.mark.parametrize("path", ["/nope", "/posts/nope/", "/feed.xml/extra", "/static/style.css"])
def test_unknown_paths_get_the_404_page(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"Page not found" in response.data


def test_entry_path_without_slash_redirects_to_the_configured_base_url(client):
    response = client.get("/posts/new-faces-proteas-announce-test-debutants", headers={"Host": "evil.example"})
    assert response.status_code == 308
    assert response.headers["Location"] == "http://127.0.0.1:8000/posts/new-faces-proteas-announce-test-debutants/"


def test_spoofed_host_never_reaches_a_url(client):
    response = client.get("/feed.xml", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    assert b"evil.example" not in response.data


def test_a_im_feed_gets_an_ordinary_response(client):
    # RFC 3229 delta encoding is not implemented: a 200 (or 304) is the correct answer, never 226
    first = client.get("/feed.xml", headers={"A-IM": "feed"})
    assert first.status_code == 200
    again = client.get("/feed.xml", headers={"A-IM": "feed", "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_etag_is_the_same_in_every_app_instance(content_dir, tmp_path):
    from feedsvc import create_app

    etags = {
        create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(tmp_path / f"state-{n}"), "RELOAD_INTERVAL": 0})
        .test_client()
        .get("/feed.xml")
        .headers["ETag"]
        for n in range(2)
    }
    assert len(etags) == 1


def test_if_modified_since_in_the_future_is_a_304(client):
    response = client.get("/feed.xml", headers={"If-Modified-Since": http_date(4102444800)})
    assert response.status_code == 304


def test_healthz_reports_the_served_version(client):
    status = client.get("/healthz").get_json()
    assert status["status"] == "ok" and status["entries"] == 11 and status["error"] is None
    assert len(status["content_version"]) == 16


def test_if_match_uses_strong_comparison_and_fails_with_412(client):
    etag = client.get("/feed.xml").headers["ETag"]
    assert client.get("/feed.xml", headers={"If-Match": etag}).status_code == 200
    assert client.get("/feed.xml", headers={"If-Match": "*"}).status_code == 200
    assert client.get("/feed.xml", headers={"If-Match": '"other"'}).status_code == 412
    assert client.get("/feed.xml", headers={"If-Match": "W/" + etag}).status_code == 412


def test_max_age_is_configurable_and_rss_ttl_follows(content_dir, state_dir, monkeypatch):
    from lxml import etree

    from feedsvc import create_app

    monkeypatch.setenv("FEEDSVC_MAX_AGE", "900")
    client = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0}).test_client()
    response = client.get("/feed.xml")
    assert response.headers["Cache-Control"] == "public, max-age=900"
    assert etree.fromstring(response.data).findtext("channel/ttl") == "15"
    assert client.get("/").headers["Cache-Control"] == "public, max-age=900"


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [("GET", "/healthz", {}), ("POST", "/feed.xml", {}), ("GET", "/nope", {}), ("GET", "/feed.xml", {"If-Match": '"x"'})],
)
def test_every_response_with_a_body_declares_its_charset(client, method, path, headers):
    response = client.open(path, method=method, headers=headers)
    assert "charset=utf-8" in response.headers["Content-Type"]


def test_the_404_page_is_never_cached(client):
    # a cache holding a 404 would hide a post published a minute later
    assert client.get("/posts/not-yet/").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/feed.xml", "/", ARTICLE])
def test_a_query_string_gets_the_same_document(client, path):
    plain = client.get(path)
    for query in ("?x=1", "?utm_source=reader&x=%00"):
        response = client.get(path + query)
        assert response.status_code == 200
        assert response.data == plain.data and response.headers["ETag"] == plain.headers["ETag"]


@pytest.mark.parametrize(
    ("asked", "meant"),
    [
        ("//feed.xml", "/feed.xml"),
        ("//posts//new-faces-proteas-announce-test-debutants/", "/posts/new-faces-proteas-announce-test-debutants/"),
        ("//", "/"),
    ],
)
def test_a_path_with_doubled_slashes_is_not_a_second_url_of_a_document(client, asked, meant):
    """One URL per document (RFC 3986 §6): a crawler or cache would otherwise keep two copies under two URLs."""
    response = client.get("/", environ_overrides={"PATH_INFO": asked})
    assert response.status_code == 308
    assert response.headers["Location"] == f"http://127.0.0.1:8000{meant}"
