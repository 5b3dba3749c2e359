"""Content bombs and careless files: every one is a problem naming the file, in bounded time and memory.

Each case is tried on ``check`` (exit 1, no traceback, under a memory cap and a timeout) and on a
running ``serve`` (the last good version stays served, /healthz says degraded, names the file and
stays small, and the worker's memory stays bounded).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from feedsvc.problems import MESSAGE_LIMIT, ContentError
from feedsvc.source.loader import load_content
from tests.conftest import write_entry
from tests.servers import ROOT, fetch, running_service, server_rss_kib

GOOD_FRONT_MATTER = 'id: "urn:uuid:{uuid}"\ntitle: {title}\ndate: Jul 08, 2025 08:00\nsection: latest\n'
# Dropping these two capabilities makes root obey file permissions, so an unreadable folder is unreadable.
AS_ORDINARY_USER = (
    ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-dac_override,-dac_read_search")
    if os.geteuid() == 0
    else ()
)


def _entry(directory: Path, name: str, title: str, body: str = "") -> Path:
    path = directory / "posts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "---\n" + GOOD_FRONT_MATTER.format(uuid="5e3c1f1e-0000-4000-8000-00000000000" + str(len(name) % 10), title=title) + "---\n" + body
    )
    return path


def _billion_laughs(directory: Path) -> str:
    levels = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, previous in zip("bcdefghi", "abcdefgh", strict=True):
        levels.append(f"&{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    _entry(directory, "laughs.md", "[" + ", ".join(levels) + "]")
    return "posts/laughs.md: front matter: expands to more than"


def _long_number(directory: Path) -> str:
    _entry(directory, "number.md", "9" * 5000)
    return "posts/number.md: front matter: cannot be read: ValueError"


def _huge_file(directory: Path) -> str:
    path = _entry(directory, "huge.md", "A huge post")
    os.truncate(path, 50 * 1024 * 1024)  # sparse: 50 MB of zeros after the front matter, written in no time
    return "posts/huge.md: file: is 52,428,800 bytes, more than max_file_size (1,048,576)"


def _link_to_dev_zero(directory: Path) -> str:
    (directory / "posts" / "zero.md").symlink_to("/dev/zero")
    return "posts/zero.md: file: is a symlink to '/dev/zero', outside the content folder"


def _link_out_of_the_folder(directory: Path) -> str:
    outside = directory.parent / "outside.md"
    outside.write_text("---\n" + GOOD_FRONT_MATTER.format(uuid="5e3c1f1e-0000-4000-8000-0000000000aa", title="Outside") + "---\n")
    (directory / "posts" / "outside.md").symlink_to(outside)
    return "posts/outside.md: file: is a symlink to"


def _fifo(directory: Path) -> str:
    os.mkfifo(directory / "posts" / "pipe.md")
    return "posts/pipe.md: file: is a FIFO, not a regular file"


def _non_utf8_name(directory: Path) -> str:
    name = os.path.join(os.fsencode(directory / "posts"), b"caf\xe9.md")
    with open(name, "wb") as file:
        file.write(b"---\ntitle: x\n---\n")
    return "posts/caf\\xe9.md: file name: is not valid UTF-8"


def _unreadable_posts(directory: Path) -> str:
    (directory / "posts").chmod(0)
    return "posts: folder: cannot be read (Permission denied)"


def _deep_nesting(directory: Path) -> str:
    _entry(directory, "deep.md", "[" * 100_000)
    return "posts/deep.md: front matter: invalid YAML"


CASES = {
    "billion laughs": _billion_laughs,
    "5,000-digit number": _long_number,
    "50 MB file": _huge_file,
    "symlink to /dev/zero": _link_to_dev_zero,
    "symlink out of the folder": _link_out_of_the_folder,
    "FIFO": _fifo,
    "non-UTF-8 file name": _non_utf8_name,
    "unreadable posts/": _unreadable_posts,
    "nesting 100,000 deep": _deep_nesting,
}


def _undo(directory: Path) -> None:
    """Remove whatever a case added, leaving the bundled content."""
    posts = directory / "posts"
    posts.chmod(0o755)
    for path in posts.iterdir():
        if path.is_symlink() or not (ROOT / "content" / "posts" / path.name).exists():
            path.unlink()


def _limit_memory() -> None:
    limit = 1536 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.parametrize("case", CASES)
def test_check_reports_the_file_in_bounded_time_and_memory(case, content_dir):
    expected = CASES[case](content_dir)
    result = subprocess.run(
        [*AS_ORDINARY_USER, sys.executable, "-m", "feedsvc", "check", "--content", str(content_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        preexec_fn=_limit_memory,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"{content_dir}/{expected}" in result.stderr
    assert all(len(line) < 1000 for line in result.stderr.splitlines())


def test_every_message_quotes_a_huge_value_by_its_start(content_dir):
    _entry(content_dir, "long.md", "x", body="")
    path = content_dir / "posts" / "long.md"
    path.write_text(
        path.read_text().replace("section: latest", "section: " + "y" * 500_000).replace("title: x", "title: [" + "z," * 5_000 + "z]")
    )
    with pytest.raises(ContentError) as raised:
        load_content(content_dir)
    messages = [p.message for p in raised.value.problems if p.file == "posts/long.md"]
    assert len(messages) == 2
    assert all(len(message) <= MESSAGE_LIMIT for message in messages)
    assert any("'yyyy" in message and "is not a section" in message for message in messages)


def test_max_file_size_is_a_site_setting(content_dir):
    path = _entry(content_dir, "long.md", "Long", body="word " * 4000)
    load_content(content_dir)  # 20 KB: fine by default
    site = content_dir / "site.yaml"
    site.write_text(site.read_text() + "max_file_size: 16384\n")
    with pytest.raises(ContentError) as raised:
        load_content(content_dir)
    size = path.stat().st_size
    assert [str(p) for p in raised.value.problems] == [
        f"posts/long.md: file: is {size:,} bytes, more than max_file_size (16,384); split it, or raise max_file_size in site.yaml"
    ]


def test_symlinks_inside_the_folder_still_work(content_dir):
    target = write_entry(
        content_dir,
        "real.md",
        'id: "urn:uuid:7d0f0c36-3c1e-4a39-9b1e-0b7b8c2d4e11"\ntitle: Real\ndate: Jul 08, 2025 08:00\nsection: latest',
    )
    (content_dir / "posts" / "alias").mkdir()
    (content_dir / "posts" / "alias" / "real.md").symlink_to(target)
    with pytest.raises(ContentError) as raised:  # the same entry twice: the link is followed
        load_content(content_dir)
    assert "posts/real.md" in str(raised.value) and "already used by posts/alias/real.md" in str(raised.value)


def _healthz(base: str) -> tuple[dict, int]:
    with urllib.request.urlopen(base + "/healthz", timeout=10) as response:
        body = response.read()
    return json.loads(body), len(body)


def _wait_for_status(base: str, wanted: str, timeout: float = 20, problems: int | None = None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, _ = _healthz(base)
        if (status["status"] == wanted and problems in (None, status["problems"])) or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def test_a_running_service_survives_every_case_and_says_so(content_dir, tmp_path):
    state = tmp_path / "state"
    with running_service(
        content_dir, tmp_path, env={"FEEDSVC_STATE_DIR": str(state), "FEEDSVC_RELOAD_INTERVAL": "0.1"}, wrapper=AS_ORDINARY_USER
    ) as (base, process):
        good = fetch(base + "/feed.xml")
        baseline = server_rss_kib(process.pid)
        for case, make in CASES.items():
            expected = make(content_dir)
            status = _wait_for_status(base, "degraded")
            assert status["status"] == "degraded", case
            assert any(expected in problem for problem in status["error"]), (case, status)
            assert fetch(base + "/feed.xml")[2] == good[2], case  # the last good version is still served
            assert server_rss_kib(process.pid) < baseline + 200 * 1024, case
            _undo(content_dir)
            assert _wait_for_status(base, "ok")["status"] == "ok", case

        # hundreds of broken files (each missing id, date and section): /healthz stays small and counts them
        for number in range(500):
            write_entry(content_dir, f"broken-{number}.md", "title: " + "x" * 2000)
        status = _wait_for_status(base, "degraded", problems=1500)
        body_size = _healthz(base)[1]
        assert status["problems"] == 1500
        assert len(status["error"]) == 21 and status["error"][-1].startswith("... and ")
        assert body_size <= 64 * 1024


def test_reading_a_small_file_allocates_its_size_not_the_limit(content_dir):
    import tracemalloc

    from feedsvc.source.scan import read_limited

    path = content_dir / "posts" / "new-faces-proteas-announce-test-debutants.md"
    tracemalloc.start()
    try:
        data = read_limited(path, "posts/x.md", 64 * 1024 * 1024, [])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data == path.read_bytes()
    # read(limit + 1) allocated the whole limit first, then shrank it to the file: with threads
    # about, each left a memory mapping of its own, and 100,000 files hit vm.max_map_count (65,530)
    assert peak < 1024 * 1024
