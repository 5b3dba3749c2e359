"""Installable like a Python tool: `pip install .` gives a `feedsvc` command that serves the bundled content."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from urllib.parse import urlsplit

from tests.servers import ROOT, fetch, running_service


def test_pip_install_gives_a_feedsvc_command_that_checks_and_serves(tmp_path, content_dir):
    source = tmp_path / "source"  # built from a copy: pip writes build/ and *.egg-info beside pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "feedsvc", source / "feedsvc", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # the dependencies come from the environment running the tests (requirements.txt's pins, in a virtualenv or not),
    # made visible to the new one by a .pth file; only feedsvc itself is installed
    new_site = subprocess.run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(new_site) / "tests-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    subprocess.run([venv / "bin" / "pip", "install", "--quiet", "--no-deps", str(source)], check=True, cwd=tmp_path)

    command = venv / "bin" / "feedsvc"
    result = subprocess.run([command, "check", "--content", str(content_dir)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "11 entries" in result.stdout
    assert "usage: feedsvc " in subprocess.run([command, "--help"], capture_output=True, text=True).stdout

    # the installed package carries its templates and static files
    with running_service(content_dir, tmp_path, program=(str(command),), env={"FEEDSVC_STATE_DIR": str(tmp_path / "state")}) as (base, _):
        status, _, body = fetch(base + "/")
        assert status == 200 and b"<html" in body
        stylesheet = urlsplit(body.split(b'rel="stylesheet" href="', 1)[1].split(b'"', 1)[0].decode()).path
        assert fetch(base + stylesheet)[0] == 200
