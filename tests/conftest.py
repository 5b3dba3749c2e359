"""Fixtures: a private copy of the bundled content, an app on it, and clients (fast path on and off)."""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from feedsvc import create_app
from feedsvc.feeds import FeedSpec, render_xml_feeds, site_feeds

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CONTENT = ROOT / "content"
NEWSROOM = ROOT / "examples" / "newsroom"


def require(condition: bool, reason: str) -> None:
    """Skip a test whose prerequisite is missing, except under FEEDSVC_STRICT=1 (CI), where it fails."""
    if condition:
        return
    if os.environ.get("FEEDSVC_STRICT") == "1":
        pytest.fail(f"FEEDSVC_STRICT=1 and {reason}")
    pytest.skip(reason)


def write_entry(directory: Path, name: str, front_matter: str, body: str = "") -> Path:
    """Write ``directory/posts/name`` as front matter + body and return its path."""
    path = directory / "posts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\n{textwrap.dedent(front_matter).strip()}\n---\n{body}", encoding="utf-8")
    return path


def settled(directory: Path) -> Path:
    """Date every file of ``directory`` an hour back, as files saved long ago are: a file saved within the last two
    seconds is read again on every look (source.scan.RACY_NS), which tests of what a reload reuses must not meet."""
    an_hour_ago = time.time() - 3600
    for path in directory.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago), follow_symlinks=False)
    return directory


def site_feed(content) -> FeedSpec:
    """The subscription feed of the whole site, as the publication describes it."""
    return site_feeds(content)[0]


def render_rss(spec: FeedSpec) -> bytes:
    """RSS 2.0 bytes of a feed, through the renderer the service uses."""
    return render_xml_feeds(spec)[0]


def render_atom(spec: FeedSpec) -> bytes:
    """Atom 1.0 bytes of a feed, through the renderer the service uses."""
    return render_xml_feeds(spec)[1]


@pytest.fixture
def fail_rendering(monkeypatch):
    """Return a switch that makes rendering one entry's page raise, as a library choking on odd input would.

    ``fail_rendering("slug")`` turns it on; ``fail_rendering(None)`` turns it off.
    """
    import feedsvc.publication

    real_render = feedsvc.publication.render_entry

    def switch(slug: str | None) -> None:
        def render_or_fail(context, entry):
            if entry.slug == slug:
                raise OverflowError("date value out of range")
            return real_render(context, entry)

        monkeypatch.setattr(feedsvc.publication, "render_entry", render_or_fail if slug else real_render)

    return switch


@pytest.fixture(autouse=True, scope="session")
def private_state_home(tmp_path_factory):
    """Keep every default state folder (XDG_STATE_HOME) of the run, servers' included, out of the home directory."""
    home = tmp_path_factory.mktemp("state-home")
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(home)
    yield home
    if previous is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = previous


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """An empty state folder (FEEDSVC_STATE_DIR) for one test."""
    return tmp_path / "state"


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A writable copy of the bundled content folder."""
    target = tmp_path / "content"
    shutil.copytree(BUNDLED_CONTENT, target)
    return target


@pytest.fixture
def newsroom(tmp_path: Path) -> Path:
    """A writable copy of examples/newsroom (pictures, tags, authors, a draft, a scheduled post, redirects)."""
    target = tmp_path / "newsroom"
    shutil.copytree(NEWSROOM, target)
    return target


@pytest.fixture
def app(content_dir: Path, state_dir: Path):
    """An app on the copied content, without the watcher thread (tests call refresh() themselves)."""
    return create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0})


@pytest.fixture(params=[True, False], ids=["fast-path", "flask-views"])
def client(request, content_dir: Path, state_dir: Path):
    """A test client; every HTTP test runs against the WSGI fast path and against the Flask views."""
    app = create_app({"CONTENT_DIR": str(content_dir), "STATE_DIR": str(state_dir), "RELOAD_INTERVAL": 0, "FAST_PATH": request.param})
    return app.test_client()


@pytest.fixture
def publisher(app):
    """The app's Publisher."""
    return app.extensions["feedsvc"]
