"""The state folder's guarantee, as a stateful property test: whatever happened to the state, a node serves what a node
started on an empty state folder serves for the same folder, settings and code.

Hypothesis draws sequences of an editor's edits (a body, a title, a picture, a tag's spelling, a
schedule, a deletion, a copy that keeps size and mtime, a broken file and its fix), an operator's
acts (a restart, a worker killed and replaced, the database deleted, the side files deleted, the
database damaged, the disk filled and freed, the state made read-only and writable again, an
upgrade that renders differently) and a second service (a preview) on the same state. After every
step the node reloads as its watcher would, then every path answers with the status, bytes and
entity tag of a node started on an empty state folder (while the folder is broken: of one started
on the folder as it last was good), and never with a 5xx.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import feedsvc.markdown
from feedsvc import create_app
from feedsvc.problems import ContentError
from tests.conftest import ROOT, require

pytestmark = pytest.mark.integration
BASE = "https://news.example.com"
UNKNOWN = ("/no-such-page/", "/posts/no-such-post/", "/archive/1999-01-01/feed.xml")
START = 1_767_225_600.0  # 2026-01-01: the stories of the example are older; a scheduled one is due later
POSTS = ("harbour-reopens.md", "lighthouse-restored.md", "market-day.md", "council-budget.md")
PICTURES = ("media/harbour.jpg", "media/lighthouse.png", "media/market.webp")
REAL_SLUG = feedsvc.markdown._heading_slug


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class StateFolderMachine(RuleBasedStateMachine):
    """One node (and maybe a preview) on one content folder and one state folder, and what happens to them."""

    def __init__(self) -> None:
        super().__init__()
        self.work = Path(tempfile.mkdtemp(prefix="feedsvc-state-machine-"))
        self.folder = self.work / "content"
        shutil.copytree(ROOT / "examples" / "newsroom", self.folder, ignore=shutil.ignore_patterns("README.md"))
        for name in (self.folder / "posts").iterdir():
            if name.name not in POSTS:
                name.unlink()
        site = self.folder / "site.yaml"
        site.write_text(site.read_text().replace("item_limit: 3", "item_limit: 2"))
        (self.work / "disk").mkdir()
        self.mounted = _mount("-t", "tmpfs", "-o", "size=6m", "tmpfs", str(self.work / "disk"))
        (self.work / "view").mkdir()
        self.mounted = self.mounted and _mount("--bind", str(self.work / "disk"), str(self.work / "view"))
        self.state = self.work / "view" / "state"
        self.clock = Clock()
        self.identity = "release-1"
        self.upgrades = 0
        self.broken = False
        self.good = self.work / "good"  # the folder as it last was good: what the node serves while it is broken
        shutil.copytree(self.folder, self.good)
        self.read_only = False
        # the database went while the folder was broken: the last good version's bodies of files edited since are gone
        # with it (neither in the state nor in their files): those documents may answer 503, never wrong bytes, never a 500
        self.bodies_at_risk = False
        self.references: dict[str, object] = {}
        self.previews: list = []
        self.node = self._start()

    def teardown(self) -> None:
        feedsvc.markdown._heading_slug = REAL_SLUG
        for node in [self.node, *self.previews]:
            if node is not None:
                node.extensions["feedsvc"].stop()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.work / "view")], check=False)
            subprocess.run(["umount", "-l", str(self.work / "disk")], check=False)
        shutil.rmtree(self.work, ignore_errors=True)

    # --- nodes ---------------------------------------------------------------------------------------

    def _config(self, state: Path, **more) -> dict:
        return {
            "CONTENT_DIR": str(self.folder),
            "STATE_DIR": str(state),
            "RELOAD_INTERVAL": 0,
            "BASE_URL": BASE,
            "CLOCK": self.clock,
            "BUILD_IDENTITY": self.identity,
            **more,
        }

    def _start(self):
        try:
            return create_app(self._config(self.state))
        except ContentError:
            # only while the folder is broken and the state keeps no whole version of this code (an empty state refuses too)
            kept = self._kept_in_state() and not self.bodies_at_risk
            assert self.broken and not kept, "a node refused to start on a broken folder with a good version kept"
            return None

    def _kept_in_state(self) -> bool:
        """Whether the state keeps a version this code made, with every parse it is built from (as far as its database can
        be read: a damaged one keeps none)."""
        try:
            with sqlite3.connect(f"file:{next(self.state.glob('*.sqlite3'))}?mode=ro", uri=True) as db:
                kept = db.execute("SELECT namespace FROM kept_versions WHERE identity = ?", (self.identity,)).fetchall()
                missing = "SELECT count(*) FROM kept_files WHERE namespace = ? AND key NOT IN (SELECT key FROM parsed_entries)"
                return any(db.execute(missing, namespace).fetchone() == (0,) for namespace in kept)
        except (StopIteration, sqlite3.Error):
            return False

    def _reference(self):
        """A node started on an empty state folder, on the folder as it is (or as it last was good), with the same code."""
        folder = self.good if self.broken else self.folder
        key = f"{_folder_digest(folder)}:{self.clock.now}:{self.identity}:{self.upgrades}"
        if key not in self.references:
            config = self._config(self.work / "references" / uuid.uuid4().hex, CONTENT_DIR=str(folder))
            self.references[key] = create_app(config)
        return self.references[key]

    def _edit(self, name: str, old: str, new: str) -> None:
        path = self.folder / "posts" / name
        if path.exists() and old in path.read_text():
            path.write_text(path.read_text().replace(old, new, 1))

    def _close_connections(self) -> None:
        for node in [self.node, *self.previews, *self.references.values()]:
            if node is not None:
                node.extensions["feedsvc.state"].db.close()

    # --- an editor ---------------------------------------------------------------------------------

    @rule(post=st.sampled_from(POSTS), text=st.sampled_from(["A new paragraph.", "## A heading\n\nWith a list:\n\n- one\n- two"]))
    def edit_a_body(self, post, text):
        path = self.folder / "posts" / post
        if path.exists():
            path.write_text(path.read_text() + f"\n{text}\n")

    @rule(post=st.sampled_from(POSTS), title=st.sampled_from(["A & B < C", "Über den Hafen", "Plain"]))
    def edit_a_title(self, post, title):
        path = self.folder / "posts" / post
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(f'title: "{title}"\n' if line.startswith("title:") else line for line in lines))

    @precondition(lambda self: not self.broken)
    @rule(picture=st.sampled_from(PICTURES), shade=st.integers(0, 255))
    def replace_a_picture(self, picture, shade):
        from PIL import Image

        path = self.folder / picture
        with Image.open(path) as image:
            image.load()
            redrawn = image.convert("RGB")
        redrawn.paste((shade, 255 - shade, 77), (0, 0, 16, 16))
        redrawn.save(path, format={"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[path.suffix[1:]])

    @rule(spelling=st.sampled_from(["harbour", "Harbour", "HARBOUR"]))
    def spell_a_tag_otherwise(self, spelling):
        for post in POSTS:
            path = self.folder / "posts" / post
            if path.exists():
                path.write_text(path.read_text().replace("harbour,", f"{spelling},").replace("[harbour", f"[{spelling}"))

    @rule(post=st.sampled_from(POSTS))
    def schedule_a_post(self, post):
        moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock.now + 3600))
        path = self.folder / "posts" / post
        if path.exists():  # (an update before the new date would make the file invalid: it goes)
            lines = path.read_text().splitlines(keepends=True)
            kept = [f"date: {moment}\n" if line.startswith("date:") else line for line in lines if not line.startswith("updated:")]
            path.write_text("".join(kept))

    @rule()
    def let_an_hour_pass(self):
        self.clock.now += 3601

    @rule(post=st.sampled_from(POSTS[1:]))
    def delete_a_post(self, post):
        (self.folder / "posts" / post).unlink(missing_ok=True)

    @rule(post=st.sampled_from(POSTS))
    def copy_keeping_size_and_mtime(self, post):
        """cp -p, rsync -t, tar x: new bytes, the same length and mtime."""
        path = self.folder / "posts" / post
        if path.exists():
            info = path.stat()
            text = path.read_text()
            swapped = text.replace("the", "THE", 1) if "the" in text else text.replace("THE", "the", 1)
            path.write_text(swapped)
            os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))

    @rule()
    def break_a_file(self):
        (self.folder / "posts" / "broken.md").write_text("---\ntitle: [unclosed\n---\n")

    @rule()
    def fix_the_broken_file(self):
        (self.folder / "posts" / "broken.md").unlink(missing_ok=True)

    # --- an operator ---------------------------------------------------------------------------------

    @rule()
    def restart(self):
        if self.node is not None:
            self.node.extensions["feedsvc"].stop()
        self.node = self._start()

    @rule()
    def kill_a_worker_and_start_another(self):
        self.node = self._start()  # the old one just stops answering: no stop, no retire

    @precondition(lambda self: not self.read_only)  # an operator cannot delete on a read-only disk either
    @rule()
    def delete_the_database(self):
        for path in self.state.glob("*.sqlite3"):
            path.unlink()
        self.bodies_at_risk = self.bodies_at_risk or self.broken

    @precondition(lambda self: not self.read_only)  # an operator cannot delete on a read-only disk either
    @rule()
    def delete_the_side_files(self):
        for path in self.state.glob("*.pickle"):
            path.unlink()

    @precondition(lambda self: not self.read_only)
    @rule(seed=st.integers(0, 2**16))
    def damage_the_database(self, seed):
        for path in self.state.glob("*.sqlite3"):
            data = bytearray(path.read_bytes())
            for page in range(1, len(data) // 4096):
                if (page * 7919 + seed) % 3 == 0:
                    data[page * 4096 + 64 : page * 4096 + 320] = hashlib.sha256(str((seed, page)).encode()).digest() * 8
            path.write_bytes(bytes(data))
        self.bodies_at_risk = self.bodies_at_risk or self.broken

    @precondition(lambda self: self.mounted)
    @rule()
    def fill_the_disk(self):
        try:
            with open(self.work / "disk" / "filler", "ab", buffering=0) as out:
                while out.write(b"\0" * 65536):
                    pass
        except OSError:  # full: as it should be
            pass

    @precondition(lambda self: self.mounted)
    @rule()
    def free_the_disk(self):
        (self.work / "disk" / "filler").unlink(missing_ok=True)

    @precondition(lambda self: self.mounted and not self.read_only)
    @rule()
    def make_the_state_read_only(self):
        self._close_connections()  # a mount point with files open for writing cannot be made read-only
        self.read_only = _mount("-o", "remount,ro,bind", str(self.work / "view"))

    @precondition(lambda self: self.read_only)
    @rule()
    def make_the_state_writable(self):
        assert _mount("-o", "remount,rw,bind", str(self.work / "view"))
        self.read_only = False

    @rule()
    def upgrade(self):
        """A new release whose renderer writes other heading anchors: every service restarts on it."""
        self.upgrades += 1
        self.identity = f"release-{self.upgrades + 1}"
        feedsvc.markdown._heading_slug = lambda text, prefix=f"r{self.upgrades}-": prefix + REAL_SLUG(text)
        for preview in self.previews:
            preview.extensions["feedsvc"].stop()
        self.previews = []  # (started again by the rule below when the folder allows)
        self.restart()

    @precondition(lambda self: len(self.previews) < 2 and not self.broken)
    @rule()
    def start_a_preview_on_the_same_state(self):
        self.previews.append(create_app(self._config(self.state, BASE_URL=f"http://127.0.0.1:{8001 + len(self.previews)}")))

    # --- the guarantee -------------------------------------------------------------------------------

    @invariant()
    def serves_what_an_empty_state_serves(self):
        self.broken = (self.folder / "posts" / "broken.md").exists()
        if not self.broken:
            shutil.rmtree(self.good)
            shutil.copytree(self.folder, self.good)
            self.bodies_at_risk = False
        if self.node is None:
            self.node = self._start()
            if self.node is None:
                return
        for node in [self.node, *self.previews]:
            node.extensions["feedsvc"].refresh()  # as the watcher does after each save
        reference = self._reference()
        paths = [*sorted(reference.extensions["feedsvc"].current.paths()), *UNKNOWN]
        served, expected = self.node.test_client(), reference.test_client()
        for path in paths:
            for coding in ("identity", "gzip"):
                got = served.get(path, headers={"Accept-Encoding": coding})
                if got.status_code == 503 and self.bodies_at_risk:
                    assert got.headers["Retry-After"], path
                    continue
                assert got.status_code < 500, (path, got.status_code, got.data[:300])
                want = expected.get(path, headers={"Accept-Encoding": coding})
                assert (got.status_code, got.headers.get("ETag"), got.data) == (want.status_code, want.headers.get("ETag"), want.data), (
                    path,
                    coding,
                )
        for preview in self.previews:
            assert preview.test_client().get("/feed.xml").status_code == 200


StateFolderMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("FEEDSVC_STATE_EXAMPLES", "12")),
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def test_whatever_the_state_folder_went_through_a_node_serves_what_an_empty_state_serves():
    require(os.geteuid() == 0 and shutil.which("mount") is not None, "filling and freezing a state disk needs root (tmpfs, bind mounts)")
    StateFolderMachine.TestCase().runTest()
