"""Static export: atomic writes, and nginx serving it with the same bytes and headers as the live service."""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import feedparser
import pytest

from bench.generate_content import generate
from feedsvc.export import export_publication, file_for
from feedsvc.problems import ContentError
from feedsvc.publication import build_publication
from feedsvc.source.loader import load_content
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
        return real_write(*args)

    monkeypatch.setattr(feedsvc.export, "_write", failing_write)
    with pytest.raises(ContentError) as failed:  # a problem naming the document (build prints it), not a traceback
        export_publication(publication, tmp_path / "site")
    (problem,) = failed.value.problems
    assert problem.file == "(build)" and problem.field.startswith("/") and "No space left on device" in problem.message
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "site").rglob("*")) == before
    exports = [p.name for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith(".site.")]
    assert exports == [(tmp_path / "site").resolve().name]  # no partial export left behind


def test_a_new_export_switches_one_symlink_and_keeps_the_previous_one_as_the_next_workspace(tmp_path, content_dir):
    (tmp_path / "site").mkdir()  # an export from before exports were symlinks
    (tmp_path / "site" / "stale.html").write_text("old")
    export_publication(build_publication(load_content(content_dir)), tmp_path / "site")
    first = (tmp_path / "site").resolve()
    assert (tmp_path / "site").is_symlink() and not (tmp_path / "site" / "stale.html").exists()
    write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-08T10:00:00Z\nsection: latest')
    export_publication(build_publication(load_content(content_dir)), tmp_path / "site")
    assert (tmp_path / "site").resolve() != first
    assert (tmp_path / "site" / "posts" / "new" / "index.html").exists()
    assert not (first / "posts" / "new").exists()  # the export before, kept whole for the next build to update
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("."))
    assert folders == [".site.a", ".site.b"]  # blue/green: the real folder from before is gone
    (content_dir / "posts" / "new.md").unlink()
    export_publication(build_publication(load_content(content_dir)), tmp_path / "site")
    assert (tmp_path / "site").resolve() == first and not (tmp_path / "site" / "posts" / "new").exists()


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
            assert "[warn]" not in (tmp_path / "error.log").read_text()  # nginx took the generated config without a word
            publication = build_publication(load_content(content_dir, {"base_url": live}))
            paths = sorted(quote(path) for path in publication.paths() - publication.moved.keys())
            for path in publication.moved:  # aliases, legacy feed URLs: the same 308 (urllib would follow it)
                assert _redirect(live + quote(path)) == _redirect(static + quote(path)), path
                assert _redirect(live + quote(path))[0] == 308, path
            if example == "newsroom":
                assert "/tags/caf%C3%A9-culture/feed.xml" in paths and any(p.startswith("/media/") for p in paths)
            else:
                assert "/featured/archive/2025-07-07/feed.xml" in paths
            # a path with doubled slashes is no second URL of a document: both answer 308 to the one it means
            for path, meant in (("//feed.xml", "/feed.xml"), ("//posts//post-00001/", "/posts/post-00001/"), ("//x", "/x")):
                assert _redirect(live + path) == _redirect(static + path) == (308, f"{live}{meant}"), path
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


def _redirect(url: str) -> tuple[int, str | None]:
    """The status and Location of a GET, without following a redirect (urllib follows 308s)."""

    class Refuse(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(Refuse).open(url) as response:
            return response.status, response.headers["Location"]
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Location"]


def _inodes(root: Path) -> dict[str, int]:
    root = Path(os.path.realpath(root))
    return {str(p.relative_to(root)): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def _export(content_dir: Path, destination: Path, store, processes: int = 1) -> None:
    from feedsvc.state import Store

    store = store or Store(destination.parent / "state")
    content = load_content(content_dir, cache=store.parses)
    publication = build_publication(content, stamp=lambda etags: store.stamps.last_modified(etags, content.version, lambda: True))
    export_publication(publication, destination, store=store, processes=processes)


@pytest.fixture
def written(monkeypatch):
    """The files each export renders and writes (exports run in-process here)."""
    import feedsvc.export

    names: list[str] = []
    real_write, real_replace = feedsvc.export._write, feedsvc.export._replace

    def recording_write(root, name, representation, folders):
        names.append(name)
        return real_write(root, name, representation, folders)

    def recording_replace(root, name, representation):
        names.append(name)
        real_replace(root, name, representation)

    monkeypatch.setattr(feedsvc.export, "_write", recording_write)
    monkeypatch.setattr(feedsvc.export, "_replace", recording_replace)
    return names


@pytest.fixture
def in_workspaces(monkeypatch):
    """Every build writes the workspace that is not served (no change is small enough to be made in place)."""
    import feedsvc.export

    monkeypatch.setattr(feedsvc.export, "IN_PLACE_LIMIT", -1)


def _same_as_fresh(content_dir: Path, tmp_path: Path, store) -> None:
    """The export equals a build from scratch (same state, so the same Last-Modified): files, bytes and times."""
    _export(content_dir, tmp_path / "fresh", store)
    site, fresh = Path(os.path.realpath(tmp_path / "site")), Path(os.path.realpath(tmp_path / "fresh"))
    assert _inodes(site).keys() == _inodes(fresh).keys()
    for name in _inodes(site):
        assert (site / name).read_bytes() == (fresh / name).read_bytes(), name
        if not name.startswith("404.html"):  # never stamped: an error page has no Last-Modified
            assert int((site / name).stat().st_mtime) == int((fresh / name).stat().st_mtime), name


def test_a_build_after_one_edit_renders_only_what_changed_and_equals_a_fresh_build(tmp_path, content_dir, written, in_workspaces):
    from feedsvc.state import Store

    shutil.copytree(generate(tmp_path / "generated", 300) / "posts", content_dir / "posts", dirs_exist_ok=True)
    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)  # into .site.a
    _export(content_dir, tmp_path / "site", store)  # into .site.b: its first build, everything written
    total = len(written)
    edited = content_dir / "posts" / "post-00150.md"
    edited.write_text(edited.read_text() + "\nOne more line.\n")
    written.clear()
    _export(content_dir, tmp_path / "site", store)  # .site.a again: brought up to date
    assert Path(os.path.realpath(tmp_path / "site")).name == ".site.a"
    assert "posts/post-00150/index.html" in written
    assert "posts/post-00151/index.html" not in written  # the same inputs: the file is kept
    assert any(name.startswith("archive/") and name.endswith("feed.xml") for name in written)  # the day that holds it
    assert len(written) < total / 10
    _same_as_fresh(content_dir, tmp_path, store)


@pytest.mark.parametrize("in_place", [True, False])
def test_a_deleted_entry_leaves_no_file_in_the_updated_export(tmp_path, content_dir, monkeypatch, in_place):
    import feedsvc.export
    from feedsvc.state import Store

    if not in_place:
        monkeypatch.setattr(feedsvc.export, "IN_PLACE_LIMIT", -1)

    store = Store(tmp_path / "state")
    write_entry(content_dir, "gone.md", 'id: "urn:example:gone"\ntitle: Gone\ndate: 2025-07-08T10:00:00Z\nsection: latest')
    _export(content_dir, tmp_path / "site", store)
    _export(content_dir, tmp_path / "site", store)
    (content_dir / "posts" / "gone.md").unlink()
    _export(content_dir, tmp_path / "site", store)  # the workspace that had it, or the served one in place
    site = Path(os.path.realpath(tmp_path / "site"))
    assert site.name == ".site.a" and (tmp_path / ".site.b").exists() is not in_place
    assert not (site / "posts" / "gone").exists() and not (site / "archive" / "2025-07-08").exists()
    assert b"urn:example:gone" not in (site / "feed.xml").read_bytes()


@pytest.mark.parametrize("in_place", [True, False])
def test_other_rendering_code_never_keeps_an_old_file(tmp_path, content_dir, monkeypatch, written, in_place):
    import feedsvc.export
    import feedsvc.identity
    from feedsvc.state import Store

    if not in_place:
        monkeypatch.setattr(feedsvc.export, "IN_PLACE_LIMIT", -1)
    rendered: list[str] = []
    real_document = feedsvc.export.Publication.document
    monkeypatch.setattr(feedsvc.export.Publication, "document", lambda self, path: rendered.append(path) or real_document(self, path))
    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)
    _export(content_dir, tmp_path / "site", store)
    written.clear()
    rendered.clear()
    _export(content_dir, tmp_path / "site", store)
    everything = build_publication(load_content(content_dir)).paths()
    assert len(written) < len(everything) and len(rendered) < len(everything)  # the same code: files are kept
    written.clear()
    rendered.clear()
    monkeypatch.setattr(feedsvc.identity, "build_identity", lambda: "another version of feedsvc")
    _export(content_dir, tmp_path / "site", store)
    assert set(rendered) == set(everything)  # every document rendered by the new code
    if not in_place:  # in place, only the files whose bytes differ are replaced (here none: the code is the same)
        assert len(written) == len(everything) + 1  # every document, and the 404 page


def test_a_parallel_export_writes_what_a_sequential_one_writes(tmp_path, content_dir, monkeypatch):
    import feedsvc.export
    from feedsvc.state import Store

    shutil.copytree(generate(tmp_path / "generated", 120) / "posts", content_dir / "posts", dirs_exist_ok=True)
    monkeypatch.setattr(feedsvc.export, "PARALLEL_FROM", 10)
    monkeypatch.setattr(feedsvc.export, "_CHUNK", 7)
    _export(content_dir, tmp_path / "one" / "site", None, processes=1)
    published = 1_600_000_000  # a store clock long past: a file's time is its stamp, never the moment it was written
    _export(content_dir, tmp_path / "two" / "site", Store(tmp_path / "two" / "state", clock=lambda: published), processes=2)
    one, two = _inodes(tmp_path / "one" / "site"), _inodes(tmp_path / "two" / "site")
    assert one.keys() == two.keys() and len(one) > 300
    for name in one:
        assert (tmp_path / "one" / "site" / name).read_bytes() == (tmp_path / "two" / "site" / name).read_bytes(), name
        if not name.startswith("404.html"):  # each worker process stamped what it wrote
            assert (tmp_path / "two" / "site" / name).stat().st_mtime == published, name


def test_an_export_loads_each_body_from_the_store_once(tmp_path, content_dir, monkeypatch):
    """An entry's page and its day archives (the site's and its section's) are rendered together: one load, not three."""
    import re

    import feedsvc.state.parses
    from feedsvc.state import Store

    monkeypatch.setattr(feedsvc.state.parses, "RECENT_BODIES", 300)  # 600 entries: more than a writer keeps in memory
    directory = generate(tmp_path / "generated", 600)  # ten minutes apart: ~144 a day, four days and a bit
    store = Store(tmp_path / "state")
    content = load_content(directory, cache=store.parses)
    publication = build_publication(content, stamp=lambda etags: store.stamps.last_modified(etags, content.version, lambda: True))
    statements: list[str] = []
    store.db._connection().set_trace_callback(statements.append)
    export_publication(publication, tmp_path / "site", store=store)
    store.db._connection().set_trace_callback(None)
    loads: dict[str, int] = {}
    for sql in statements:
        if "FROM entry_texts" in sql:
            for key in re.findall(r"'([0-9a-f]{32}:[0-9a-f]{32}[^']*)'", sql):
                loads[key] = loads.get(key, 0) + 1
    assert len(loads) > 500  # the bodies of every page not rendered with the version
    assert max(loads.values()) == 1, sorted(loads.values())[-5:]


def test_an_export_builds_each_entrys_feed_elements_once(tmp_path, monkeypatch):
    """An entry is in its site's day archive and its section's: its RSS item and Atom entry are built once and move from feed to feed."""
    from feedgen.entry import FeedEntry

    directory = generate(tmp_path / "generated", 600)  # ~144 a day, in two sections
    publication = build_publication(load_content(directory))
    builds: dict[tuple[str, str], int] = {}

    def counted(name: str):
        original = getattr(FeedEntry, name)

        def counting(self, *args, **kwargs):
            builds[name, self.id()] = builds.get((name, self.id()), 0) + 1
            return original(self, *args, **kwargs)

        return counting

    for name in ("rss_entry", "atom_entry"):
        monkeypatch.setattr(FeedEntry, name, counted(name))
    export_publication(publication, tmp_path / "site")
    assert {entry_id for _, entry_id in builds} == {entry.id for entry in publication.content.entries}
    assert max(builds.values()) == 1, sorted(builds.values())[-5:]
    for day in {entry.day for entry in publication.content.entries}:  # and each feed still shows every entry of its day
        site_day = feedparser.parse((tmp_path / "site" / "archive" / day / "feed.xml").read_bytes())
        sections = [tmp_path / "site" / section.key / "archive" / day / "atom.xml" for section in publication.content.site.sections]
        in_sections = [entry.id for path in sections if path.exists() for entry in feedparser.parse(path.read_bytes()).entries]
        assert sorted(in_sections) == sorted(entry.id for entry in site_day.entries)
        assert len(site_day.entries) == sum(entry.day == day for entry in publication.content.entries)


def test_a_document_that_fails_in_a_worker_process_is_named_and_the_old_export_stays(tmp_path, content_dir, monkeypatch, fail_rendering):
    import feedsvc.export
    from feedsvc.problems import ContentError

    monkeypatch.setattr(feedsvc.export, "PARALLEL_FROM", 1)
    _export(content_dir, tmp_path / "site", None, processes=2)
    before = _inodes(tmp_path / "site")
    fail_rendering("new-faces-proteas-announce-test-debutants")
    with pytest.raises(ContentError) as caught:
        _export(content_dir, tmp_path / "site", None, processes=2)
    assert [p.file for p in caught.value.problems] == ["posts/new-faces-proteas-announce-test-debutants.md"]
    assert _inodes(tmp_path / "site") == before


def test_a_kept_file_gets_the_time_its_bytes_last_changed_even_when_they_changed_back(tmp_path, content_dir, written, in_workspaces):
    from feedsvc.state import Store

    store = Store(tmp_path / "state")
    entry = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    original = entry.read_text()
    _export(content_dir, tmp_path / "site", store)  # .site.a
    entry.write_text(original.replace("New Faces", "Newer Faces"))
    _export(content_dir, tmp_path / "site", store)  # .site.b, its bytes changed
    entry.write_text(original)
    written.clear()
    _export(content_dir, tmp_path / "site", store)  # .site.a: the old bytes again, the file kept
    assert "posts/new-faces-proteas-announce-test-debutants/index.html" not in written
    page = Path(os.path.realpath(tmp_path / "site")) / "posts" / "new-faces-proteas-announce-test-debutants" / "index.html"
    publication = build_publication(load_content(content_dir), stamp=lambda etags: store.stamps.last_modified(etags, "x", lambda: True))
    changed = publication.document("/posts/new-faces-proteas-announce-test-debutants/").last_modified
    assert page.stat().st_mtime == changed.timestamp()  # the third version's time, not the first's


def test_the_first_build_into_the_second_workspace_links_the_served_files_and_never_touches_them(
    tmp_path, content_dir, written, in_workspaces
):
    from feedsvc.state import Store

    shutil.copytree(generate(tmp_path / "generated", 200) / "posts", content_dir / "posts", dirs_exist_ok=True)
    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)  # .site.a, served
    served = Path(os.path.realpath(tmp_path / "site"))
    before = {p: (p.read_bytes(), p.stat().st_mtime) for p in served.rglob("*") if p.is_file()}
    edited = content_dir / "posts" / "post-00100.md"
    edited.write_text(edited.read_text() + "\nOne more line.\n")
    written.clear()
    _export(content_dir, tmp_path / "site", store)  # .site.b: starts from .site.a's files
    assert Path(os.path.realpath(tmp_path / "site")).name == ".site.b"
    assert "posts/post-00100/index.html" in written and "posts/post-00101/index.html" not in written
    assert len(written) < len(before) / 10
    assert {p: (p.read_bytes(), p.stat().st_mtime) for p in served.rglob("*") if p.is_file()} == before  # the export before, intact
    _export(content_dir, tmp_path / "fresh", store)
    site, fresh = Path(os.path.realpath(tmp_path / "site")), Path(os.path.realpath(tmp_path / "fresh"))
    assert _inodes(site).keys() == _inodes(fresh).keys()
    for name in _inodes(site):
        assert (site / name).read_bytes() == (fresh / name).read_bytes(), name
        if not name.startswith("404.html"):
            assert int((site / name).stat().st_mtime) == int((fresh / name).stat().st_mtime), name


def test_a_small_change_updates_the_served_export_in_place_file_by_file(tmp_path, content_dir, written):
    from feedsvc.state import Store

    shutil.copytree(generate(tmp_path / "generated", 200) / "posts", content_dir / "posts", dirs_exist_ok=True)
    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)
    served = Path(os.path.realpath(tmp_path / "site"))
    before = _inodes(served)
    page = served / "posts" / "post-00000" / "index.html"
    old_bytes = page.read_bytes()
    reader = page.open("rb")  # a slow download of the page, under way while the build runs
    edited = content_dir / "posts" / "post-00000.md"
    edited.write_text(edited.read_text().replace("title: ", "title: Edited ", 1))
    written.clear()
    _export(content_dir, tmp_path / "site", store)
    assert Path(os.path.realpath(tmp_path / "site")) == served  # no switch: the served folder was updated
    assert not (tmp_path / ".site.b").exists()  # and no second workspace was made for a small change
    assert "posts/post-00000/index.html" in written and "posts/post-00001/index.html" not in written
    assert len(written) < len(before) / 20
    # pages before the listings and feeds that link to them
    assert written.index("posts/post-00000/index.html") < min(written.index("feed.xml"), written.index("index.html"))
    assert "static/" not in " ".join(written)  # rendered again (no input key), but the same bytes: left alone
    after = _inodes(served)
    assert {name for name in before if after[name] != before[name]} == {n for name in written for n in (name, name + ".gz") if n in after}
    assert b"Edited" in page.read_bytes() and reader.read() == old_bytes  # a new inode: the reader kept its bytes
    reader.close()
    assert not [p for p in served.rglob("*.new")]  # no temporary file left
    written.clear()
    _export(content_dir, tmp_path / "site", store)
    assert written == []  # the store knows what the update wrote
    _same_as_fresh(content_dir, tmp_path, store)


def test_a_change_to_many_documents_is_written_into_the_other_workspace(tmp_path, content_dir, monkeypatch):
    import feedsvc.export
    from feedsvc.state import Store

    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)
    monkeypatch.setattr(feedsvc.export, "IN_PLACE_LIMIT", 3)  # one new entry changes more documents than this
    write_entry(content_dir, "new.md", 'id: "urn:example:new"\ntitle: New\ndate: 2025-07-08T10:00:00Z\nsection: latest')
    _export(content_dir, tmp_path / "site", store)
    assert Path(os.path.realpath(tmp_path / "site")).name == ".site.b"
    assert not (tmp_path / ".site.a" / "posts" / "new").exists()  # the export before, whole
    _same_as_fresh(content_dir, tmp_path, store)


def test_an_in_place_update_that_cannot_render_a_document_changes_nothing(tmp_path, content_dir, fail_rendering):
    from feedsvc.problems import ContentError
    from feedsvc.state import Store

    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)
    before = {name: (inode, (tmp_path / "site" / name).read_bytes()) for name, inode in _inodes(tmp_path / "site").items()}
    entry = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    entry.write_text(entry.read_text().replace("New Faces", "Newer Faces"))
    fail_rendering("new-faces-proteas-announce-test-debutants")
    with pytest.raises(ContentError):
        _export(content_dir, tmp_path / "site", store)
    assert {name: (inode, (tmp_path / "site" / name).read_bytes()) for name, inode in _inodes(tmp_path / "site").items()} == before
    fail_rendering(None)
    _export(content_dir, tmp_path / "site", store)
    _same_as_fresh(content_dir, tmp_path, store)


def test_an_in_place_update_stopped_halfway_is_finished_by_the_next_build(tmp_path, content_dir, monkeypatch):
    import feedsvc.export
    from feedsvc.state import Store

    store = Store(tmp_path / "state")
    _export(content_dir, tmp_path / "site", store)
    entry = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    entry.write_text(entry.read_text().replace("New Faces", "Newer Faces"))
    real_replace, calls = feedsvc.export._replace, []

    def replace_then_fail(root, name, representation):
        calls.append(name)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(root, name, representation)

    monkeypatch.setattr(feedsvc.export, "_replace", replace_then_fail)
    with pytest.raises(OSError):
        _export(content_dir, tmp_path / "site", store)
    monkeypatch.setattr(feedsvc.export, "_replace", real_replace)
    real_rename, renames = os.replace, []

    def rename_then_fail(source, target):  # the disk fills up while a file is being replaced
        renames.append(target)
        if len(renames) == 2:
            raise OSError(28, "No space left on device")
        real_rename(source, target)

    monkeypatch.setattr(feedsvc.export.os, "replace", rename_then_fail)
    with pytest.raises(OSError):
        _export(content_dir, tmp_path / "site", store)
    monkeypatch.setattr(feedsvc.export.os, "replace", real_rename)
    assert not list(Path(os.path.realpath(tmp_path / "site")).rglob("*.new"))  # nothing half-written left beside the files
    _export(content_dir, tmp_path / "site", store)  # the files the stopped build had replaced are known to be unknown
    _same_as_fresh(content_dir, tmp_path, store)


def test_a_picture_changed_while_the_export_is_written_is_a_problem_and_the_old_export_stays(tmp_path):
    from PIL import Image

    from feedsvc.problems import ContentError

    folder = tmp_path / "newsroom"
    shutil.copytree(ROOT / "examples" / "newsroom", folder)
    publication = build_publication(load_content(folder))
    export_publication(publication, tmp_path / "site")
    before = sorted(path.name for path in (tmp_path / "site").rglob("*"))
    with Image.open(folder / "media" / "market.webp") as image:
        image.load()
        redrawn = image.copy()
    redrawn.paste((1, 2, 3), (0, 0, 8, 8))
    redrawn.save(folder / "media" / "market.webp")  # an editor saves a new picture while the next build writes
    again = build_publication(publication.content)
    with pytest.raises(ContentError) as raised:
        export_publication(again, tmp_path / "site")
    assert str(raised.value.problems[0]) == "media/market.webp: file: changed while the export was being written; run the build again"
    assert sorted(path.name for path in (tmp_path / "site").rglob("*")) == before
