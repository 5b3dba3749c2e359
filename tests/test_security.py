"""Security headers, error pages without internals, and no debug mode in production."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize("path", ["/", "/posts/new-faces-proteas-announce-test-debutants/", "/nope"])
def test_html_has_a_strict_content_security_policy(client, path):
    headers = client.get(path).headers
    policy = dict(part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["style-src"] == "'self'"
    assert "script-src" not in policy  # falls back to 'none': no script at all
    # pictures may come from https origins (an entry's image may be an https URL); nothing else from anywhere
    assert policy["img-src"] == "'self' https:"
    assert all("http" not in value for name, value in policy.items() if name != "img-src")
    assert policy["frame-ancestors"] == "'none'"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


@pytest.mark.parametrize("path", ["/feed.xml", "/atom.xml", "/feed.json"])
def test_feeds_are_nosniff(client, path):
    assert client.get(path).headers["X-Content-Type-Options"] == "nosniff"


def test_an_unexpected_error_is_a_plain_500_without_a_traceback(content_dir):
    from feedsvc import create_app

    app = create_app({"CONTENT_DIR": str(content_dir), "RELOAD_INTERVAL": 0})

    def broken():
        raise RuntimeError("secret internals")

    app.add_url_rule("/broken", "broken", broken)
    response = app.test_client().get("/broken")
    assert response.status_code == 500
    assert b"secret" not in response.data and b"Traceback" not in response.data


def test_production_entry_point_never_runs_in_debug_mode():
    env = {**os.environ, "FLASK_DEBUG": "1", "FEEDSVC_CONTENT_DIR": str(ROOT / "content"), "FEEDSVC_RELOAD_INTERVAL": "0"}
    result = subprocess.run(
        [sys.executable, "-c", "from feedsvc.wsgi import flask_app; print(flask_app.debug)"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "False", result.stderr
