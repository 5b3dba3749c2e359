"""Static export: write a Publication as files (plus .gz twins) for nginx, a CDN or object storage.

The export folder is a symlink to a complete, versioned folder beside it; a new export is
written in full, then the symlink is switched with one rename, so a server reading the folder
sees the old export or the new one, never a mix and never nothing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime
from importlib import metadata, resources
from pathlib import Path

from .publication import Publication
from .store import Store

NOT_FOUND_FILE = "404.html"


def file_for(path: str) -> str:
    """Map a site path to a file name relative to the export root ("/posts/x/" -> "posts/x/index.html")."""
    relative = path.lstrip("/")
    return relative + "index.html" if relative == "" or relative.endswith("/") else relative


def _twins(name: str, representation) -> list[tuple[str, bytes]]:
    files = [(name, representation.identity.body)]
    if representation.gzip is not None:  # for nginx gzip_static / CDNs that serve precompressed twins
        files.append((name + ".gz", representation.gzip.body))
    return files


def _write(root: Path, name: str, representation, folders: set[str]) -> None:
    folder = os.path.dirname(name)
    if folder not in folders:  # one mkdir per folder, not per file
        os.makedirs(root / folder, exist_ok=True)
        folders.add(folder)
    for file, data in _twins(name, representation):
        with open(root / file, "wb") as out:
            out.write(data)


def _link(previous: Path, root: Path, name: str, folders: set[str]) -> bool:
    """Hard-link a file (and its .gz twin) of the previous export into the new one; False when that cannot be done."""
    folder = os.path.dirname(name)
    try:
        if folder not in folders:
            os.makedirs(root / folder, exist_ok=True)
            folders.add(folder)
        os.link(previous / name, root / name)
        if os.path.exists(previous / (name + ".gz")):
            os.link(previous / (name + ".gz"), root / (name + ".gz"))
        return True
    except OSError:  # gone, or a file system without hard links: render it instead
        for leftover in (root / name, root / (name + ".gz")):
            leftover.unlink(missing_ok=True)
        return False


def _set_times(root: Path, name: str, moment: datetime | None) -> None:
    """Make a file's mtime the time its bytes last changed: nginx derives Last-Modified and its ETag from it."""
    if moment is None:
        return
    stamp = moment.timestamp()
    for file in (name, name + ".gz"):
        with contextlib.suppress(FileNotFoundError):
            os.utime(root / file, (stamp, stamp))


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


@functools.cache
def _code_digest() -> str:
    """Digest of the code that renders: this package's files and the versions of the libraries that write bytes.

    Part of every remembered input key, so an upgrade never keeps a file the old code made.
    """
    digest = hashlib.sha256()
    for library in ("feedgen", "jinja2", "lxml", "markdown-it-py", "mdit-py-plugins", "pillow"):
        digest.update(f"{library}={metadata.version(library)};".encode())
    package = resources.files("feedsvc")
    pending = [package]
    while pending:
        for item in sorted(pending.pop().iterdir(), key=lambda i: i.name):
            if item.is_dir():
                if item.name != "__pycache__":
                    pending.append(item)
            elif item.name.endswith((".py", ".html", ".css", ".svg")):
                digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()


PARALLEL_FROM = 2000  # documents to render before the work is shared among processes
_CHUNK = 250  # documents one process renders and writes before reporting back
_JOB: tuple | None = None  # (publication, staging folder, paths): what forked writers inherit, never pickled


def _render_chunk(bounds: tuple[int, int]) -> dict[str, str]:
    """Render and write ``paths[start:stop]`` of the job; return each path's ETag."""
    publication, root, paths = _JOB
    folders: set[str] = set()
    etags = {}
    for path in paths[bounds[0] : bounds[1]]:
        representation = publication.document(path)
        _write(root, file_for(path), representation, folders)
        etags[path] = representation.etag
    return etags


def _render_all(publication: Publication, root: Path, paths: list[str], processes: int, done: Callable[[int], None]) -> dict[str, str]:
    """Render and write documents, on ``processes`` forked processes when there are enough; return path -> ETag.

    Nothing is stamped here: the caller stamps every document at once (one store transaction,
    not one per document).
    """
    global _JOB
    _JOB = (replace(publication, stamp=None), root, paths)
    chunks = [(start, min(start + _CHUNK, len(paths))) for start in range(0, len(paths), _CHUNK)]
    etags: dict[str, str] = {}
    pool = None
    try:
        if processes < 2 or len(paths) < PARALLEL_FROM:
            parts = map(_render_chunk, chunks)
        else:  # forked: the children share the publication as it is, no pickling of renderers or entries
            pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))
            parts = pool.map(_render_chunk, chunks)
        for part in parts:
            etags.update(part)
            done(len(part))
    finally:
        _JOB = None
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return etags


def _with_code(key: str | None) -> str | None:
    return None if key is None else hashlib.sha256(f"{_code_digest()}:{key}".encode()).hexdigest()


def export_publication(
    publication: Publication,
    destination: str | Path,
    progress: Callable[[int, int], None] | None = None,
    store: Store | None = None,
    processes: int = 1,
) -> int:
    """Write every document into ``destination`` (a symlink to the export), switching it only once complete.

    Returns the number of documents written. A failure leaves any previous export untouched.
    Each document is rendered here once (most are rendered on request in the service), on
    ``processes`` processes. With ``store``, a document whose input key (``Publication.input_key``)
    is what the previous export's file was made from is hard-linked from it instead of rendered:
    after one edit, only what changed is rendered and written.
    """
    destination = Path(destination).absolute()
    destination.parent.mkdir(parents=True, exist_ok=True)
    previous = Path(os.path.realpath(destination)) if destination.is_symlink() and destination.exists() else None
    earlier = store.exported(str(previous)) if store is not None and previous is not None else {}
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.{publication.version}-", dir=destination.parent))
    staging = Path(os.path.realpath(staging))
    try:
        paths = sorted(publication.paths())
        keys = {path: _with_code(publication.input_key(path)) for path in paths} if store is not None else {}
        folders: set[str] = set()
        etags: dict[str, str] = {}
        for path in paths:  # unchanged inputs: the previous export's file, hard-linked
            key, found = keys.get(path), earlier.get(path)
            if key is not None and found is not None and found[0] == key and _link(previous, staging, file_for(path), folders):
                etags[path] = found[1]
        written = len(etags)

        def done(count: int) -> None:
            nonlocal written
            before, written = written, written + count
            if progress is not None and (written // 500 > before // 500 or written == len(paths)):
                progress(written, len(paths))

        etags.update(_render_all(publication, staging, [p for p in paths if p not in etags], processes, done))
        if publication.stamp is not None:  # every document's Last-Modified, in one transaction
            for path, moment in publication.stamp(etags).items():
                _set_times(staging, file_for(path), moment)
        _write(staging, NOT_FOUND_FILE, publication.not_found, folders)
        staging.chmod(0o755)
        _switch(destination, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if store is not None:
        documents = {path: (keys[path], etags[path]) for path in paths if keys[path] is not None}
        store.remember_export(str(staging), documents, str(previous) if previous is not None else None)
    return len(paths) + 1
