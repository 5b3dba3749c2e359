"""Static export: write a Publication as files (plus .gz twins) for nginx, a CDN or object storage."""

from __future__ import annotations

import os
import shutil
import tempfile
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
            # servers derive Last-Modified from the file's mtime: make it the document's own date
            stamp = representation.last_modified.timestamp()
            os.utime(file, (stamp, stamp))


def export_publication(publication: Publication, destination: str | Path) -> int:
    """Write every document into ``destination``, replacing it only once the new export is complete.

    Returns the number of documents written. A failure leaves any previous export untouched.
    """
    destination = Path(destination).resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
    try:
        paths = sorted(publication.paths())
        for path in paths:
            _write(staging, file_for(path), publication.document(path))
        _write(staging, NOT_FOUND_FILE, publication.not_found)
        staging.chmod(0o755)
        # swap: the old export stays whole until the new one is complete, then both renames are instant
        retired = None
        if destination.exists():
            retired = destination.with_name(f".{destination.name}.old-{staging.name.rsplit('-', 1)[-1]}")
            destination.rename(retired)
        staging.rename(destination)
        if retired is not None:
            shutil.rmtree(retired)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(paths) + 1
