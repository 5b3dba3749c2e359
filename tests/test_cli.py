"""The command line, run as a real subprocess: check and serve."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request

import feedparser
import pytest

from tests.conftest import ROOT, write_entry
from tests.servers import free_port, running_service


def _run(*args, env=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "feedsvc", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_check_accepts_the_bundled_content():
    result = _run("check")
    assert result.returncode == 0
    assert "11 entries, 38 documents, no problems" in result.stdout


def test_check_lists_every_problem_as_file_field_message(content_dir):
    bad = write_entry(content_dir, "bad.md", 'id: "urn:example:1"\ntitle: ""\ndate: someday\nsection: sport')
    result = _run("check", "--content", str(content_dir))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    for field in ("title", "date", "section"):
        assert any(line.startswith(f"{bad}: {field}: ") for line in lines), result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_invalid_content_without_a_traceback(content_dir):
    bad = content_dir / "site.yaml"
    bad.write_text("title: [unclosed\n")
    result = _run("serve", "--content", str(content_dir), "--port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad}: yaml: invalid YAML at line")
    assert "Traceback" not in result.stderr


def test_bad_environment_value_is_a_clear_error():
    result = _run("check", env={"FEEDSVC_MAX_AGE": "five minutes"})
    assert result.returncode == 1
    assert "FEEDSVC_MAX_AGE='five minutes' is not a valid int" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_serve_runs_the_production_server_with_links_to_itself(content_dir):
    # no FEEDSVC_BASE_URL anywhere: links must point at the port actually served
    with running_service(content_dir, content_dir.parent) as (base, _):
        with urllib.request.urlopen(f"{base}/feed.xml") as response:
            assert response.headers["Content-Type"] == "application/rss+xml; charset=utf-8"
            assert "granian" in response.headers["Server"]
            parsed = feedparser.parse(response.read())
        assert parsed.version == "rss20" and not parsed.bozo and len(parsed.entries) == 11
        assert parsed.entries[0].link.startswith(f"{base}/posts/")
        for entry in parsed.entries:
            with urllib.request.urlopen(entry.link) as page:
                assert page.status == 200


@pytest.mark.integration
def test_serve_logs_a_broken_edit_once_and_its_fix(content_dir):
    import time

    with running_service(content_dir, content_dir.parent) as (base, _):
        broken = content_dir / "posts" / "broken.md"
        broken.write_text("---\nid: x\n")
        log = next(content_dir.parent.glob("serve-*.log"))
        deadline = time.monotonic() + 10
        while "content problems fixed" not in log.read_text():
            if "front matter: missing" in log.read_text() and broken.exists():
                broken.unlink()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        assert text.count("\nposts/broken.md: front matter: missing") == 1  # named relative to the folder the log names
        assert f"ERROR feedsvc.publisher: content in {content_dir} not reloaded" in text
        with urllib.request.urlopen(base + "/healthz") as response:
            assert json.loads(response.read())["status"] == "ok"


@pytest.mark.parametrize(("option", "value", "words"), [("--workers", "0", "is not at least 1"), ("--port", "70000", "is not a TCP port")])
def test_serve_rejects_impossible_options_clearly(option, value, words):
    result = _run("serve", option, value)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_a_relative_hub_url_is_refused():
    result = _run("check", env={"FEEDSVC_HUB_URL": "hub.example.com"})
    assert result.returncode == 1
    assert "FEEDSVC_HUB_URL='hub.example.com' is not a valid absolute http(s) URL" in result.stderr


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "soon"])
def test_an_impossible_reload_interval_is_refused(value):
    result = _run("check", env={"FEEDSVC_RELOAD_INTERVAL": value})
    assert result.returncode == 1
    assert f"FEEDSVC_RELOAD_INTERVAL={value!r} is not a valid number of seconds (0 or more)" in result.stderr


def test_serve_starts_on_a_state_folder_it_cannot_write_and_says_so(content_dir, tmp_path):
    """The state only makes things faster: without it the same bytes are served, without Last-Modified, and /healthz says why."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = {"FEEDSVC_STATE_DIR": str(blocker / "state")}
    with running_service(content_dir, tmp_path, env=env) as (base, _):
        with urllib.request.urlopen(f"{base}/feed.xml") as response:
            assert response.status == 200 and b"<rss" in response.read() and "Last-Modified" not in response.headers
        with urllib.request.urlopen(f"{base}/healthz") as response:
            health = json.loads(response.read())
    assert health["status"] == "degraded" and health["error"][0].startswith("state: state.sqlite3 cannot be"), health
    assert str(blocker) not in json.dumps(health)  # no absolute paths
    log = sorted(tmp_path.glob("serve-*.log"))[-1].read_text()
    assert "state: state.sqlite3 cannot be" in log and "Traceback" not in log


def test_serve_starts_with_a_read_only_content_folder_and_an_empty_state_folder(content_dir, tmp_path):
    files = sorted(content_dir.rglob("*"))
    for path in [content_dir, *files]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        env = {"FEEDSVC_STATE_DIR": str(tmp_path / "fresh" / "state")}
        with running_service(content_dir, tmp_path, env=env) as (base, _), urllib.request.urlopen(f"{base}/feed.xml") as response:
            assert response.status == 200 and response.headers["Last-Modified"]
        assert (tmp_path / "fresh" / "state" / "state.sqlite3").exists()
        assert sorted(content_dir.rglob("*")) == files  # (root ignores the mode bits: check nothing was written)
    finally:
        for path in [content_dir, *content_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_check_renders_like_serve_and_names_the_file_that_fails(content_dir, fail_rendering, capsys):
    # whatever check accepts, serve serves: check runs the same build, so a render failure is a problem
    from feedsvc.__main__ import main

    fail_rendering("new-faces-proteas-announce-test-debutants")
    assert main(["check", "--content", str(content_dir)]) == 1
    stderr = capsys.readouterr().err
    assert f"{content_dir}/posts/new-faces-proteas-announce-test-debutants.md: file: cannot be rendered: OverflowError" in stderr


def test_long_work_reports_progress_with_an_estimate(capsys):
    from feedsvc.__main__ import Progress

    progress = Progress("parsing new files")
    progress(10, 100)  # under 2 s: quick work says nothing
    assert capsys.readouterr().err == ""
    progress.started -= 5  # as if it had been running for 5 s
    progress(10, 100)
    line = capsys.readouterr().err
    assert line.startswith("parsing new files: 10/100 (10%), 5 s, about 45 s left")
    progress(20, 100)  # not a terminal: at most a line every 10 s
    assert capsys.readouterr().err == ""
    progress(100, 100)  # but always the last one
    assert "100/100 (100%)" in capsys.readouterr().err


def test_a_restart_with_a_kept_version_starts_at_once_and_an_upgrade_is_checked_again(content_dir, tmp_path):
    env, port = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}, free_port()  # links name the port: one port, one namespace
    for attempt in ("first start", "restart"):
        with running_service(content_dir, tmp_path, env=env, port=port):
            pass
        log = sorted(tmp_path.glob("serve-*.log"), key=lambda path: path.stat().st_mtime)[-1].read_text()
        assert ("the workers start at once" in log) == (attempt == "restart"), (attempt, log)
        assert ("serving 11 entries" in log) == (attempt == "first start"), (attempt, log)  # only the check counts them
    # an upgrade: the same content and state, other code (one template changed): nothing kept is this code's,
    # so serve checks the folder again, and refuses it broken
    upgraded = tmp_path / "upgraded"
    shutil.copytree(ROOT / "feedsvc", upgraded / "feedsvc", ignore=shutil.ignore_patterns("__pycache__"))
    template = upgraded / "feedsvc" / "templates" / "404.html"
    template.write_text(template.read_text() + "\n")
    write_entry(content_dir, "broken.md", "title: no id")
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "serve", "--port", str(free_port()), "--content", str(content_dir)],
        capture_output=True,
        text=True,
        cwd=upgraded,  # its feedsvc is the one imported
        env={**os.environ, **env},
        timeout=60,
    )
    assert result.returncode == 1, result.stdout
    assert "posts/broken.md: id: is missing" in result.stderr


def test_build_says_when_every_link_points_at_a_local_preview(content_dir, tmp_path):
    result = _run("build", str(tmp_path / "site"), "--content", str(content_dir), env={"FEEDSVC_STATE_DIR": str(tmp_path / "state")})
    assert result.returncode == 0 and "every link points at http://127.0.0.1:8000, a preview on this machine" in result.stderr
    configured = _run(
        "build",
        str(tmp_path / "site"),
        "--content",
        str(content_dir),
        env={"FEEDSVC_STATE_DIR": str(tmp_path / "state"), "FEEDSVC_BASE_URL": "https://news.example.com"},
    )
    assert configured.returncode == 0 and "preview" not in configured.stderr


def test_serve_refuses_a_port_another_server_holds(content_dir, tmp_path):
    """granian binds with SO_REUSEPORT: a second serve on the same port would share it, and requests would go to either site."""
    port = free_port()
    with running_service(content_dir, tmp_path, port=port, env={"FEEDSVC_STATE_DIR": str(tmp_path / "state")}):
        result = _run("serve", "--port", str(port), "--content", str(content_dir), env={"FEEDSVC_STATE_DIR": str(tmp_path / "other")})
    assert result.returncode == 1
    assert f"environment: 127.0.0.1:{port} is in use by another server; stop it or choose another --port" in result.stderr
