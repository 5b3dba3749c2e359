"""Static export: atomic writes, and nginx serving it with the same bytes and headers as the live service."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from bench.generate_content import generate
from feedsvc.content import load_content
from feedsvc.export import export_publication, file_for
from feedsvc.publication import build_publication
from tests.conftest import ROOT, require, write_entry
from tests.servers import RecordingHub, fetch, running_nginx, running_service

DEPLOY = ROOT / "deploy"
COMPARED_HEADERS = (  # ETag aside: nginx makes its own from mtime (= Last-Modified) and size
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
        ("/featured/archive/2025-07-07/atom.xml", "featured/archive/2025-07-07/atom.xml"),
    ],
)
def test_site_paths_map_to_files(path, file):
    assert file_for(path) == file


def test_export_writes_every_document_and_its_gzip_twin(tmp_path, content_dir):
    publication = build_publication(load_content(content_dir))
    export_publication(publication, tmp_path / "site")
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
    exports = [p.name for p in tmp_path.iterdir() if p.name.startswith(".site.")]
    assert len(exports) == 1 and (tmp_path / "site").resolve().name == exports[0]  # no partial export left behind


def test_a_new_export_switches_one_symlink_and_removes_the_old_one(tmp_path, content_dir):
    (tmp_path / "site").mkdir()  # an export from before exports were symlinks
    (tmp_path / "site" / "stale.html").write_text("old")
    export_publication(build_publication(load_content(content_dir)), tmp_path / "site")
    first = (tmp_path / "site").resolve()
    assert (tmp_path / "site").is_symlink() and not (tmp_path / "site" / "stale.html").exists()
    write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-08T10:00:00Z\nsection: latest')
    export_publication(build_publication(load_content(content_dir)), tmp_path / "site")
    assert (tmp_path / "site").resolve() != first and not first.exists()
    assert (tmp_path / "site" / "posts" / "new" / "index.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [(tmp_path / "site").resolve().name]


def test_committed_nginx_config_is_the_generated_one():
    result = subprocess.run(
        [sys.executable, "-m", "feedsvc", "nginx-config"], cwd=ROOT, capture_output=True, text=True, check=True, env=_clean_env()
    )
    assert (DEPLOY / "nginx-static.conf").read_text() == result.stdout


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


def _clean_env(**extra) -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}, **extra}


@pytest.mark.integration
@pytest.mark.parametrize("example", ["bundled", "newsroom"])
def test_nginx_serves_the_export_like_the_live_service(tmp_path, content_dir, example):
    require(shutil.which("nginx") is not None, "nginx is not installed (apt-get install nginx)")
    if example == "newsroom":  # pictures, tag pages and feeds (one with non-ASCII letters), sitemap, OPML
        shutil.rmtree(content_dir)
        shutil.copytree(ROOT / "examples" / "newsroom", content_dir)
    else:
        shutil.copytree(generate(tmp_path / "generated", 45) / "posts", content_dir / "posts", dirs_exist_ok=True)
    recording_hub = RecordingHub()
    hub = recording_hub.url
    # the service and the export share the state folder, so Last-Modified agrees too
    env = {"FEEDSVC_STATE_DIR": str(tmp_path / "state"), "FEEDSVC_HUB_URL": hub}
    with running_service(content_dir, tmp_path, env=env) as (live, _), contextlib.closing(recording_hub):
        export = tmp_path / "export"
        build_env = _clean_env(FEEDSVC_BASE_URL=live, **env)
        for command in (["build", str(export)], ["nginx-config"]):
            result = subprocess.run(
                [sys.executable, "-m", "feedsvc", *command, "--content", str(content_dir)],
                cwd=ROOT,
                env=build_env,
                check=True,
                capture_output=True,
                text=True,
            )
        (tmp_path / "static.conf").write_text(result.stdout)
        with running_nginx(tmp_path, "access_log off;", f"root {export};\ninclude {tmp_path}/static.conf;", "/feed.xml") as static:
            paths = sorted(quote(path) for path in build_publication(load_content(content_dir, {"base_url": live})).paths())
            if example == "newsroom":
                assert "/tags/caf%C3%A9-culture/feed.xml" in paths and any(p.startswith("/media/") for p in paths)
            else:
                assert "/featured/archive/2025-07-07/feed.xml" in paths
            for path in [*paths, "/no-such-page", "/posts/post-00001", "/posts/"]:
                for headers in ({}, {"Accept-Encoding": "gzip"}):
                    live_status, live_headers, live_body = fetch(live + path, headers)
                    static_status, static_headers, static_body = fetch(static + path, headers)
                    assert static_status == live_status, path
                    if live_status == 308:
                        assert static_headers["Location"] == live_headers["Location"] == f"{live}{path}/"
                        continue
                    assert static_body == live_body, path
                    for name in COMPARED_HEADERS:
                        assert static_headers[name] == live_headers[name], (path, headers, name)
                    assert static_headers["Link"] == live_headers["Link"], path
                    if live_headers["Link"]:
                        assert live_headers["Link"] == f'<{hub}>; rel="hub", <{live}{path}>; rel="self"'


def _inodes(root: Path) -> dict[str, int]:
    root = Path(os.path.realpath(root))
    return {str(p.relative_to(root)): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def _export(content_dir: Path, destination: Path, store, processes: int = 1) -> None:
    from feedsvc.store import Store

    store = store or Store(destination.parent / "state")
    content = load_content(content_dir, cache=store)
    publication = build_publication(content, stamp=lambda etags: store.last_modified(etags, content.version, lambda: True))
    export_publication(publication, destination, store=store, processes=processes)


def test_a_build_after_one_edit_renders_only_what_changed_and_equals_a_fresh_build(tmp_path, content_dir):
    from feedsvc.store import Store

    shutil.copytree(generate(tmp_path / "generated", 300) / "posts", content_dir / "posts", dirs_exist_ok=True)
    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)
    before = _inodes(tmp_path / "site")
    edited = content_dir / "posts" / "post-00150.md"
    edited.write_text(edited.read_text() + "\nOne more line.\n")
    _export(content_dir, tmp_path / "site", store)
    after = _inodes(tmp_path / "site")
    rendered = {name for name, inode in after.items() if before.get(name) != inode}
    assert "posts/post-00150/index.html" in rendered
    assert "posts/post-00151/index.html" not in rendered  # kept: the same inputs, hard-linked
    day = next(name for name in rendered if name.startswith("archive/") and name.endswith("feed.xml"))
    assert b"post-00150" in (tmp_path / "site" / day).read_bytes()  # the archive day that holds it was redone
    entry_pages = [name for name in after if name.startswith("posts/")]
    assert len(rendered & set(entry_pages)) <= 2 * 2  # the page (and .gz), plus its newer neighbour at most
    # the same bytes and times a build from scratch gives (same state, so the same Last-Modified)
    _export(content_dir, tmp_path / "fresh", store)
    site, fresh = Path(os.path.realpath(tmp_path / "site")), Path(os.path.realpath(tmp_path / "fresh"))
    for name in after:
        if name.startswith("404.html"):
            continue  # never stamped: an error page has no Last-Modified
        assert (site / name).read_bytes() == (fresh / name).read_bytes(), name
        assert int((site / name).stat().st_mtime) == int((fresh / name).stat().st_mtime), name


def test_other_rendering_code_never_keeps_an_old_file(tmp_path, content_dir, monkeypatch):
    import feedsvc.export
    from feedsvc.store import Store

    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)
    before = _inodes(tmp_path / "site")
    monkeypatch.setattr(feedsvc.export, "_code_digest", lambda: "another version of feedsvc")
    _export(content_dir, tmp_path / "site", store)
    kept = [name for name, inode in _inodes(tmp_path / "site").items() if before.get(name) == inode]
    assert kept == []


def test_a_parallel_export_writes_what_a_sequential_one_writes(tmp_path, content_dir, monkeypatch):
    import feedsvc.export

    shutil.copytree(generate(tmp_path / "generated", 120) / "posts", content_dir / "posts", dirs_exist_ok=True)
    monkeypatch.setattr(feedsvc.export, "PARALLEL_FROM", 10)
    monkeypatch.setattr(feedsvc.export, "_CHUNK", 7)
    _export(content_dir, tmp_path / "one" / "site", None, processes=1)
    _export(content_dir, tmp_path / "two" / "site", None, processes=2)
    one, two = _inodes(tmp_path / "one" / "site"), _inodes(tmp_path / "two" / "site")
    assert one.keys() == two.keys() and len(one) > 300
    for name in one:
        assert (tmp_path / "one" / "site" / name).read_bytes() == (tmp_path / "two" / "site" / name).read_bytes(), name


def test_a_document_that_fails_in_a_worker_process_is_named_and_the_old_export_stays(tmp_path, content_dir, monkeypatch, fail_rendering):
    import feedsvc.export
    from feedsvc.content import ContentError

    monkeypatch.setattr(feedsvc.export, "PARALLEL_FROM", 1)
    _export(content_dir, tmp_path / "site", None, processes=2)
    before = _inodes(tmp_path / "site")
    fail_rendering("new-faces-proteas-announce-test-debutants")
    with pytest.raises(ContentError) as caught:
        _export(content_dir, tmp_path / "site", None, processes=2)
    assert [p.file for p in caught.value.problems] == ["posts/new-faces-proteas-announce-test-debutants.md"]
    assert _inodes(tmp_path / "site") == before
