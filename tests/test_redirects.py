"""URLs that never break (issue 28, item 2): entries' aliases and the site file's redirects answer 308, live and exported."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feedsvc.problems import ContentError
from feedsvc.publication import build_publication
from feedsvc.source.loader import load_content
from tests.conftest import ROOT, require, write_entry
from tests.servers import running_nginx, running_service
from tests.test_export import _redirect
from tests.test_newsroom import BASE, make_app

ENTRY = 'id: "urn:example:moved"\ntitle: Moved\ndate: 2025-07-08T10:00:00Z\nsection: news'


@pytest.fixture(params=[True, False], ids=["fast-path", "flask-views"])
def client(request, newsroom: Path, tmp_path: Path):
    return make_app(newsroom, tmp_path / "state", FAST_PATH=request.param).test_client()


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/2025/03/14/harbour-reopens/", "/posts/harbour-reopens/"),  # an entry's aliases
        ("/posts/harbour-reopened/", "/posts/harbour-reopens/"),
        ("/feed/", "/feed.xml"),  # the site file's redirects: legacy feed URLs
        ("/rss", "/feed.xml"),
        ("/index.xml", "/feed.xml"),
    ],
)
def test_an_old_url_answers_a_permanent_redirect_to_its_new_one(client, path, target):
    for method in (client.get, client.head):
        response = method(path)
        assert response.status_code == 308, (path, method)
        assert response.headers["Location"] == BASE + target
        assert "max-age=" in response.headers["Cache-Control"]  # cacheable, like the documents it leads to
    assert client.get(target).status_code == 200


def _problems(folder: Path) -> list[str]:
    with pytest.raises(ContentError) as caught:
        build_publication(load_content(folder))
    return [str(problem) for problem in caught.value.problems]


def _redirects(newsroom: Path, mapping: str) -> None:
    site = newsroom / "site.yaml"
    text = site.read_text()
    site.write_text(text[: text.index("redirects:")] + f"redirects: {mapping}\n")


def test_an_alias_that_would_hide_a_served_document_is_a_problem(newsroom):
    write_entry(newsroom, "moved.md", f"{ENTRY}\naliases: [/feed.xml]")
    (problem,) = _problems(newsroom)
    assert problem.startswith("posts/moved.md: aliases: the alias /feed.xml of /posts/moved/ would hide the document")


def test_two_entries_with_one_alias_are_a_problem_naming_both(newsroom):
    write_entry(newsroom, "moved.md", f"{ENTRY}\naliases: [/posts/harbour-reopened/]")
    (problem,) = _problems(newsroom)
    assert ": aliases: the alias /posts/harbour-reopened/ of " in problem and "rename one of them" in problem
    assert "posts/moved.md" in problem and "posts/harbour-reopens.md" in problem


def test_a_redirect_that_chains_to_another_is_a_problem_that_says_where_to_lead(newsroom):
    _redirects(newsroom, '{"/old-rss": "/rss", "/rss": "/feed.xml"}')
    (problem,) = _problems(newsroom)
    assert problem == "site.yaml: redirects: the redirect /old-rss -> /rss chains to the redirect /rss -> /feed.xml; lead to /feed.xml"


def test_a_redirect_to_nothing_is_a_problem(newsroom):
    _redirects(newsroom, '{"/old": "/nothing.xml", "/story": "/posts/harbour-reopens"}')
    problems = _problems(newsroom)
    assert "site.yaml: redirects: the redirect /old -> /nothing.xml leads to /nothing.xml, which this site does not serve" in problems
    assert any("/posts/harbour-reopens, which this site does not serve; did you mean /posts/harbour-reopens/?" in p for p in problems)


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("relative/path/", "is not a path of this site"),
        ("/a//b/", "is not a path of this site"),
        ("/a?page=2", "is not a path of this site"),
        ("/a/../b/", "is not a path of this site"),
        ("/a%0Ab/", "line break (U+000A)"),
        ('"/a b/"', "space (U+0020)"),
        ("/a;b/", "holds ';' or '$'"),
    ],
)
def test_an_alias_that_is_not_a_path_is_a_problem(newsroom, alias, message):
    write_entry(newsroom, "moved.md", f"{ENTRY}\naliases: [{alias}]")
    with pytest.raises(ContentError) as caught:
        load_content(newsroom)
    (problem,) = caught.value.problems
    assert str(problem).startswith("posts/moved.md: aliases:") and message in str(problem)


def test_a_percent_encoded_alias_matches_the_path_a_request_names(newsroom, tmp_path):
    write_entry(newsroom, "moved.md", f"{ENTRY}\naliases: [/caf%C3%A9/]")
    client = make_app(newsroom, tmp_path / "state").test_client()
    response = client.get("/caf%C3%A9/")
    assert response.status_code == 308 and response.headers["Location"] == BASE + "/posts/moved/"


def test_a_drafts_aliases_lead_nowhere_until_it_is_published(newsroom, tmp_path):
    write_entry(newsroom, "moved.md", f"{ENTRY}\ndraft: true\naliases: [/old-moved/]")
    client = make_app(newsroom, tmp_path / "state").test_client()
    assert client.get("/old-moved/").status_code == 404


def test_the_export_writes_no_file_for_a_redirect_and_nginx_config_answers_them(newsroom, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}
    run = [sys.executable, "-m", "feedsvc"]
    subprocess.run(
        [*run, "build", str(tmp_path / "export"), "--content", str(newsroom)], cwd=ROOT, env=env, check=True, capture_output=True
    )
    export = tmp_path / "export"
    assert not (export / "rss").exists() and not (export / "feed" / "index.html").exists()
    assert not (export / "2025").exists()
    config = subprocess.run(
        [*run, "nginx-config", "--content", str(newsroom)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    assert 'location = "/rss" {' in config.stdout and f'return 308 "{BASE}/posts/harbour-reopens/";' in config.stdout


@pytest.mark.integration
def test_nginx_answers_every_redirect_as_the_live_service_does(newsroom, tmp_path):
    require(shutil.which("nginx") is not None, "nginx is not installed (apt-get install nginx)")
    env = {"FEEDSVC_STATE_DIR": str(tmp_path / "state")}
    with running_service(newsroom, tmp_path, env=env) as (live, _):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | env | {"FEEDSVC_BASE_URL": live}
        run = [sys.executable, "-m", "feedsvc"]
        export = tmp_path / "export"
        subprocess.run([*run, "build", str(export), "--content", str(newsroom)], cwd=ROOT, env=clean, check=True, capture_output=True)
        config = subprocess.run(
            [*run, "nginx-config", "--content", str(newsroom)], cwd=ROOT, env=clean, check=True, capture_output=True, text=True
        )
        (tmp_path / "static.conf").write_text(config.stdout)
        with running_nginx(tmp_path, "access_log off;", f"root {export};\ninclude {tmp_path}/static.conf;", "/feed.xml") as static:
            assert "[warn]" not in (tmp_path / "error.log").read_text()
            for path, target in (
                ("/2025/03/14/harbour-reopens/", "/posts/harbour-reopens/"),
                ("/posts/harbour-reopened/", "/posts/harbour-reopens/"),
                ("/feed/", "/feed.xml"),
                ("/rss", "/feed.xml"),
                ("/index.xml", "/feed.xml"),
            ):
                assert _redirect(live + path) == _redirect(static + path) == (308, live + target), path
