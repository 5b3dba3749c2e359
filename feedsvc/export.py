"""Static export: write a Publication as files (plus .gz twins) for nginx, a CDN or object storage.

The export folder is a symlink to a complete, versioned folder beside it; a new export is
written in full, then the symlink is switched with one rename, so a server reading the folder
sees the old export or the new one, never a mix and never nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .publication import Publication

NOT_FOUND_FILE = "404.html"


def file_for(path: str) -> str:
    """Map a site path to a file name relative to the export root ("/posts/x/" -> "posts/x/index.html")."""
    relative = path.lstrip("/")
    return relative + "index.html" if relative == "" or relative.endswith("/") else relative


def _write(root: Path, name: str, representation) -> None:
    target = root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    files = [(target, representation.identity.body)]
    if representation.gzip is not None:  # for nginx gzip_static / CDNs that serve precompressed twins
        files.append((target.with_name(target.name + ".gz"), representation.gzip.body))
    for file, data in files:
        file.write_bytes(data)
        if representation.last_modified is not None:
            # servers derive Last-Modified (and nginx its ETag) from the mtime: make it the time these
            # bytes last changed, so both validators change exactly when the bytes do
            stamp = representation.last_modified.timestamp()
            os.utime(file, (stamp, stamp))


def _switch(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically (rename over the old link), then remove the old target."""
    previous = link.resolve() if link.is_symlink() else None
    if link.exists() and not link.is_symlink():  # an export from before the switch existed: a real folder
        retired = link.with_name(f".{link.name}.retired")
        shutil.rmtree(retired, ignore_errors=True)
        link.rename(retired)  # the one moment without an export: only when upgrading
        previous = retired
    pending = link.with_name(f".{link.name}.link")
    pending.unlink(missing_ok=True)
    pending.symlink_to(target.name)  # relative: the export can be moved with its folder
    os.replace(pending, link)
    if previous is not None and previous != target.resolve():
        shutil.rmtree(previous, ignore_errors=True)


def export_publication(publication: Publication, destination: str | Path, progress: Callable[[int, int], None] | None = None) -> int:
    """Write every document into ``destination`` (a symlink to the export), switching it only once complete.

    Returns the number of documents written. A failure leaves any previous export untouched.
    Each document is rendered here once (most are rendered on request in the service).
    """
    destination = Path(destination).absolute()
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.{publication.version}-", dir=destination.parent))
    try:
        paths = sorted(publication.paths())
        for done, path in enumerate(paths, start=1):
            _write(staging, file_for(path), publication.document(path))
            if progress is not None and done % 500 == 0:
                progress(done, len(paths))
        _write(staging, NOT_FOUND_FILE, publication.not_found)
        staging.chmod(0o755)
        _switch(destination, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(paths) + 1
