"""Static export: atomic writes, and nginx serving it with the same bytes and headers as the live service."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys

import pytest

from bench.generate_content import generate
from feedsvc.content import load_content
from feedsvc.export import export_publication, file_for
from feedsvc.publication import build_publication
from tests.conftest import ROOT, require
from tests.servers import fetch, running_nginx, running_service

DEPLOY = ROOT / "deploy"
COMPARED_HEADERS = (
    "Content-Type",
    "Cache-Control",
    "Last-Modified",
    "Content-Encoding",
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Access-Control-Allow-Origin",
)


@pytest.mark.parametrize(
    ("path", "file"),
    [
        ("/", "index.html"),
        ("/posts/a-b/", "posts/a-b/index.html"),
        ("/feed.xml", "feed.xml"),
        ("/featured/archive/2/atom.xml", "featured/archive/2/atom.xml"),
    ],
)
def test_site_paths_map_to_files(path, file):
    assert file_for(path) == file


def test_export_writes_every_document_and_its_gzip_twin(tmp_path, content_dir):
    publication = build_publication(load_content(content_dir))
    export_publication(publication, tmp_path / "site")
    assert any("/archive/" in path for path in publication.paths()) is False  # bundled content: no archives
    for path in publication.paths():
        representation = publication.document(path)
        written = tmp_path / "site" / file_for(path)
        assert written.read_bytes() == representation.identity.body
        if representation.gzip is not None:
            assert gzip.decompress(written.with_name(written.name + ".gz").read_bytes()) == representation.identity.body
    assert (tmp_path / "site" / "404.html").read_bytes() == publication.not_found.identity.body


def test_a_failed_export_leaves_the_previous_one_whole(tmp_path, content_dir, monkeypatch):
    publication = build_publication(load_content(content_dir))
    export_publication(publication, tmp_path / "site")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "site").rglob("*"))

    import feedsvc.export

    calls = {"n": 0}
    real_write = feedsvc.export._write

    def failing_write(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        real_write(*args)

    monkeypatch.setattr(feedsvc.export, "_write", failing_write)
    with pytest.raises(OSError):
        export_publication(publication, tmp_path / "site")
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "site").rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["content", "site"]  # no partial export left behind


def test_build_command_refuses_invalid_content_and_writes_nothing(tmp_path, content_dir):
    (content_dir / "site.yaml").write_text("title: [broken\n")
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "build", str(tmp_path / "out"), "--content", str(content_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "invalid YAML" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_nginx_serves_the_export_like_the_live_service(tmp_path, content_dir):
    require(shutil.which("nginx") is not None, "nginx is not installed (apt-get install nginx)")
    # enough posts for archive pages in every section
    shutil.copytree(generate(tmp_path / "generated", 45) / "posts", content_dir / "posts", dirs_exist_ok=True)
    with running_service(content_dir, tmp_path) as (live, _):
        export = tmp_path / "export"
        env = {**os.environ, "FEEDSVC_BASE_URL": live}
        subprocess.run(
            [sys.executable, "-m", "feedsvc", "build", str(export), "--content", str(content_dir)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        shutil.copy(DEPLOY / "feedsvc-feed-headers.conf", tmp_path / "feedsvc-feed-headers.conf")  # includes resolve beside nginx.conf
        with running_nginx(tmp_path, "access_log off;", f"root {export};\ninclude {DEPLOY}/nginx-static.conf;", "/feed.xml") as static:
            paths = sorted(build_publication(load_content(content_dir, {"base_url": live})).paths())
            assert "/featured/archive/1/feed.xml" in paths
            for path in [*paths, "/no-such-page"]:
                for headers in ({}, {"Accept-Encoding": "gzip"}):
                    live_status, live_headers, live_body = fetch(live + path, headers)
                    static_status, static_headers, static_body = fetch(static + path, headers)
                    assert (static_status, static_body) == (live_status, live_body), path
                    for name in COMPARED_HEADERS:
                        if path.startswith("/static/") and name == "Last-Modified":
                            continue  # hashed assets carry no Last-Modified in the service
                        if live_status == 404 and name in ("Cache-Control", "Last-Modified"):
                            continue
                        assert static_headers[name] == live_headers[name], (path, headers, name)
