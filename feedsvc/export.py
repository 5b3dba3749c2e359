"""Static export: write a Publication as files (plus .gz twins) for nginx, a CDN or object storage.

The export folder is a symlink to one of two folders beside it (``.OUT.a``, ``.OUT.b``), as in a
blue/green deploy: a new export is written into the folder that is not served, then the symlink
is switched with one rename, so a server reading the folder sees the old export or the new one,
never a mix and never nothing. The folder not served keeps the export before; the next build
brings it up to date, rewriting only the files whose inputs changed (the state remembers what
each file was made from) and removing the files of documents that are gone.

A build that changes few documents (``IN_PLACE_LIMIT``: an edit, a new post) updates the served
folder in place instead, as rsync does: every changed document is rendered before anything is
written (a document that cannot be rendered changes nothing), each file is replaced atomically
(a new inode renamed over the old one), pages before the listings and feeds that link to them,
and removed documents go last. Readers see each file old or new, never half written, and never
a link to a page not yet there; a whole workspace is written only when much changed, so one
edit to a 100,000-entry archive touches a few dozen files, not 250,000.
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from . import identity
from .feeds import sharing_entries
from .problems import ContentError, Problem
from .publication import Publication
from .source.loader import forked
from .state import Store

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


def _document(publication: Publication, path: str):
    """Render the document at ``path``; a picture whose bytes changed since the version was loaded is a problem, not a crash."""
    representation = publication.document(path)
    if representation is None:
        changed = next((media.name for entry in publication.content.entries for media in entry.media if media.path == path), path)
        raise ContentError([Problem(changed, "file", "changed while the export was being written; run the build again")])
    return representation


def _write(root: Path | str, name: str, representation, folders: set[str]) -> list[str]:
    """Write a document's file and its .gz twin as new inodes; return the paths written."""
    folder = os.path.dirname(name)
    if folder not in folders:  # one mkdir per folder, not per file
        try:
            os.mkdir(os.path.join(root, folder))  # an entry's own folder: its parent is usually there
        except FileNotFoundError:
            os.makedirs(os.path.join(root, folder), exist_ok=True)
        except FileExistsError:
            pass
        folders.add(folder)
    written = []
    for file, data in _twins(name, representation):
        path = os.path.join(root, file)  # strings, not Paths: this runs for every file of an export
        # a new inode, never the old one rewritten: a slow download of the export before last,
        # still reading the old file, keeps its bytes
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            os.unlink(path)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(descriptor, "wb") as out:
            out.write(data)
        written.append(path)
    if representation.gzip is None:  # a twin left by an earlier version of this file would be served stale
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(root, name + ".gz"))
    return written


def _written(root: str, path: str, representation, folders: set[str]) -> list[str]:
    """``_write`` the document at ``path``; a file the system refuses (a name too long, a full disk) is a problem naming it."""
    try:
        return _write(root, file_for(path), representation, folders)
    except OSError as error:
        raise ContentError([Problem("(build)", path, f"cannot be written to the export ({error.strerror or error})")]) from None


def _set_times(root: Path | str, name: str, moment: datetime | None) -> None:
    """Make a file's mtime the time its bytes last changed: nginx derives Last-Modified and its ETag from it."""
    if moment is None:
        return
    stamp = moment.timestamp()
    for file in (name, name + ".gz"):
        path = os.path.join(root, file)  # strings, not Paths: this runs for every file of an export
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_nlink > 1:  # shared with the other export: give this one its own inode
                pending = f"{path}.{os.getpid()}.new"  # renamed over it: the folder may be the served one
                with open(path, "rb") as shared, open(pending, "wb") as copy:
                    copy.write(shared.read())
                os.replace(pending, path)
            os.utime(path, (stamp, stamp))


def _link(source: Path, root: Path, name: str, folders: set[str]) -> bool:
    """Hard-link a file (and its .gz twin) of the served export into the workspace; False when that cannot be done.

    Safe because nothing in a workspace is ever rewritten in place: new bytes get a new inode
    (``_write``), a new time a copy (``_set_times``).
    """
    folder = os.path.dirname(name)
    try:
        if folder not in folders:
            os.makedirs(root / folder, exist_ok=True)
            folders.add(folder)
        for file in (name, name + ".gz"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / file)
            if file == name or os.path.exists(source / file):
                os.link(source / file, root / file)
        return True
    except OSError:  # gone, or a file system without hard links: render it instead
        return False


def _remove_others(root: Path, expected: set[str]) -> None:
    """Remove every file (and emptied folder) of ``root`` that is not expected: documents gone since its last export."""
    for folder, _, files in os.walk(root, topdown=False):
        relative = os.path.relpath(folder, root)
        prefix = "" if relative == "." else relative + "/"
        for name in files:
            file = prefix + name
            if file not in expected and not (file.endswith(".gz") and file[:-3] in expected):
                os.unlink(os.path.join(folder, name))
        if prefix and not os.listdir(folder):
            os.rmdir(folder)


def _switch(link: Path, target: Path, workspaces: tuple[Path, Path]) -> None:
    """Point ``link`` at ``target`` atomically (rename over the old link).

    The export it served stays, as the next build's workspace; an export from before the two
    workspaces (a real folder, or a versioned one) is removed.
    """
    previous = Path(os.path.realpath(link)) if link.is_symlink() else None
    if link.exists() and not link.is_symlink():  # an export from before the switch existed: a real folder
        retired = link.with_name(f".{link.name}.retired")
        shutil.rmtree(retired, ignore_errors=True)
        link.rename(retired)  # the one moment without an export: only when upgrading
        previous = retired
    pending = link.with_name(f".{link.name}.link")
    pending.unlink(missing_ok=True)
    pending.symlink_to(target.name)  # relative: the export can be moved with its folder
    os.replace(pending, link)
    if previous is not None and previous not in workspaces:
        shutil.rmtree(previous, ignore_errors=True)


IN_PLACE_LIMIT = 1000  # changed + removed documents a build writes into the served export directly
PARALLEL_FROM = 2000  # documents to render before the work is shared among processes
_CHUNK = 250  # documents one process renders and writes before reporting back
_JOB: tuple | None = None  # (publication, stamper, staging folder, paths): what forked writers inherit, never pickled


def _render_chunk(bounds: tuple[int, int]) -> dict[str, tuple[str, int | None]]:
    """Render, write and stamp ``paths[start:stop]`` of the job; return each path's ETag and Last-Modified."""
    publication, stamp, root, paths = _JOB
    chunk = paths[bounds[0] : bounds[1]]
    folders: set[str] = set()
    etags = {}
    files: dict[str, list[str]] = {}  # path -> the files just written for it (new inodes, this export's own)
    publication.prepare(chunk)
    with sharing_entries():  # a chunk holds whole days: each entry is in its site's and its section's day archives
        for path in chunk:
            representation = _document(publication, path)
            files[path] = _written(root, path, representation, folders)
            etags[path] = representation.etag
    stamps: dict[str, int | None] = dict.fromkeys(etags)
    if stamp is not None:  # one store transaction a chunk; each file's time set while it is fresh in the kernel's caches
        for path, moment in stamp(etags).items():
            seconds = moment.timestamp()
            stamps[path] = int(seconds)
            for file in files[path]:
                os.utime(file, (seconds, seconds))
    return {path: (etag, stamps[path]) for path, etag in etags.items()}


def _by_day(publication: Publication, paths: list[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """Order documents by the (UTC) day of the newest entry they show; cut them into chunks of whole days, up to _CHUNK.

    An entry's body is shown by its page and by two day archives (the site's and its section's,
    three formats each): in one chunk, a writer loads it from the state once, not three times.
    """
    days: dict[str, list[str]] = {}
    for path in paths:
        shown = publication.shown_entries(path)
        days.setdefault(shown[0].day if shown else "", []).append(path)  # the day archive the newest one is in
    ordered: list[str] = []
    chunks: list[tuple[int, int]] = []
    start = 0
    for _, found in sorted(days.items()):
        if len(ordered) > start and len(ordered) - start + len(found) > _CHUNK:  # this day goes into the next chunk
            chunks.append((start, len(ordered)))
            start = len(ordered)
        ordered.extend(sorted(found))
        while len(ordered) - start > _CHUNK:  # a day (or the documents of no day) larger than a chunk
            chunks.append((start, start + _CHUNK))
            start += _CHUNK
    if len(ordered) > start:
        chunks.append((start, len(ordered)))
    return ordered, chunks


def _render_all(
    publication: Publication, root: Path, paths: list[str], processes: int, done: Callable[[int], None]
) -> dict[str, tuple[str, int | None]]:
    """Render, write and stamp documents, on ``processes`` forked processes when there are enough; return path -> (ETag, time).

    Each chunk is stamped as one store transaction by the process that wrote it: setting 244,000
    files' times afterwards, one by one in this process, took 9 s of a 100,000-entry build.
    """
    global _JOB
    paths, chunks = _by_day(publication, paths)
    _JOB = (replace(publication, stamp=None), publication.stamp, root, paths)
    results: dict[str, tuple[str, int | None]] = {}
    pool = None
    try:
        if forked(processes) < 2 or len(paths) < PARALLEL_FROM:
            parts = map(_render_chunk, chunks)
        else:  # forked: the children share the publication as it is, no pickling of renderers or entries
            pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"))
            parts = pool.map(_render_chunk, chunks)
        for part in parts:
            results.update(part)
            done(len(part))
    finally:
        _JOB = None
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return results


def _keyed(key: str | None) -> str | None:
    return None if key is None else identity.with_code(key)


def export_publication(
    publication: Publication,
    destination: str | Path,
    progress: Callable[[int, int], None] | None = None,
    store: Store | None = None,
    processes: int = 1,
) -> int:
    """Write every document into ``destination`` (a symlink to the export), switching it only once complete.

    Returns the number of documents. A failure leaves the served export untouched. Each document
    is rendered here once (most are rendered on request in the service), on ``processes``
    processes. With ``store``, the workspace's file of a document whose input key
    (``Publication.input_key``, plus the rendering code's digest) is what that file was made from
    is kept as it is: after one edit, only what changed is rendered and written.
    """
    destination = Path(os.path.realpath(Path(destination).absolute().parent)) / Path(destination).name
    destination.parent.mkdir(parents=True, exist_ok=True)
    with open(destination.with_name(f".{destination.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two builds of one export take turns: each owns the workspace
        return _export(publication, destination, progress, store, processes)


def _remove_gone(root: Path, gone: set[str]) -> None:
    """Remove the files of documents that are gone (and their .gz twins), then the folders they leave empty."""
    folders = set()
    for name in gone:
        for file in (name, name + ".gz"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / file)
        folders.add(os.path.dirname(name))
    for folder in sorted(folders, key=len, reverse=True):  # deepest first
        while folder:
            try:
                os.rmdir(root / folder)
            except OSError:  # not empty (or gone already)
                break
            folder = os.path.dirname(folder)


def _replace(root: str, name: str, representation) -> None:
    """Replace a file of a served export (and its .gz twin) atomically: a reader gets the old bytes or the new ones."""
    for file, data in _twins(name, representation):
        pending = os.path.join(root, f"{file}.{os.getpid()}.new")
        try:
            with open(pending, "wb") as out:
                out.write(data)
            os.replace(pending, os.path.join(root, file))
        except BaseException:  # disk full, killed: no half-written file stays beside the served ones
            with contextlib.suppress(OSError):
                os.unlink(pending)
            raise
    if representation.gzip is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(root, name + ".gz"))


def _update_in_place(
    publication: Publication,
    served: Path,
    store: Store,
    keys: dict[str, str | None],
    changed: list[str],
    gone: set[str],
    record: dict[str, tuple[str, str, int | None]],
) -> int:
    """Bring the served export up to date file by file: ``changed`` documents rewritten, ``gone`` ones removed."""
    rendered = {path: _document(publication, path) for path in changed}  # all of them first: a failure writes nothing
    # a document without an input key is rendered every time, but rewritten only when its bytes differ
    writes = [path for path in changed if path not in record or record[path][1] != rendered[path].etag]
    not_found = publication.not_found.identity.body
    root = os.fspath(served)
    not_found_changed = True
    with contextlib.suppress(OSError), open(os.path.join(root, NOT_FOUND_FILE), "rb") as current:  # unreadable: different
        not_found_changed = current.read() != not_found
    # until it is done, the state knows nothing of the files being replaced: a build stopped halfway renders them again
    store.exports.update(root, {}, writes)
    folders: set[str] = set()
    # deepest first: entry pages and archives exist before the listings and feeds that link to them
    for path in sorted(writes, key=lambda p: file_for(p).count("/"), reverse=True):
        name = file_for(path)
        folder = os.path.dirname(name)
        if folder not in folders:
            os.makedirs(os.path.join(root, folder), exist_ok=True)
            folders.add(folder)
        _replace(root, name, rendered[path])
    if not_found_changed:
        _replace(root, NOT_FOUND_FILE, publication.not_found)
    _remove_gone(served, {file_for(path) for path in gone})
    etags = {path: found[1] for path, found in record.items() if path not in gone} | {p: r.etag for p, r in rendered.items()}
    rewritten = set(writes)
    updates = {path: (keys[path] or "", etags[path], None if path in rewritten else record[path][2]) for path in changed}
    if publication.stamp is not None:
        for path, moment in publication.stamp(etags).items():
            stamp = int(moment.timestamp())
            if path not in record or record[path][2] != stamp:  # a kept file whose bytes came back gets their time
                _set_times(served, file_for(path), moment)
                updates[path] = (keys[path] or "", etags[path], stamp)
    store.exports.update(root, updates, gone)
    return len(etags) + 1


def _export(publication: Publication, destination: Path, progress, store: Store | None, processes: int) -> int:
    workspaces = (destination.with_name(f".{destination.name}.a"), destination.with_name(f".{destination.name}.b"))
    served = Path(os.path.realpath(destination)) if destination.is_symlink() else None
    target = workspaces[1] if served == workspaces[0] else workspaces[0]
    paths = sorted(publication.paths() - publication.moved.keys())  # redirects are the web server's (nginx-config), not files
    keys = {path: _keyed(publication.input_key(path)) for path in paths} if store is not None else {}
    record = store.exports.exported(str(served)) if store is not None and served in workspaces else {}
    if record:  # what the served export holds is known: few changes are made to it in place
        changed = [path for path in paths if keys[path] is None or record.get(path, ("",))[0] != keys[path]]
        gone = record.keys() - set(paths)
        if len(changed) + len(gone) <= IN_PLACE_LIMIT:
            return _update_in_place(publication, served, store, keys, changed, gone, record)
    earlier: dict[str, tuple[str, str, int | None]] = {}
    on_show: dict[str, tuple[str, str, int | None]] = {}
    if store is not None:
        earlier = store.exports.exported(str(target))
        store.exports.remember(str(target), {})  # it is being changed: nothing of it is known until it is done
        if not earlier:  # a workspace's first build: start from the served export
            on_show = record
    fresh = not target.exists()  # nothing in it but what this build writes
    target.mkdir(exist_ok=True)
    try:
        etags: dict[str, str] = {}
        times: dict[str, int | None] = {}  # the mtime a kept file has
        folders: set[str] = set()
        root = os.fspath(target)
        for path in paths:  # unchanged inputs: the workspace's file (or the served one, linked) is what rendering would write
            key, found, shown = keys.get(path), earlier.get(path), on_show.get(path)
            if key is None:
                continue
            if found is not None and found[0] == key and os.path.isfile(os.path.join(root, file_for(path))):
                etags[path], times[path] = found[1], found[2]
            elif shown is not None and shown[0] == key and _link(served, target, file_for(path), folders):
                etags[path], times[path] = shown[1], shown[2]
        kept = set(etags)
        written = len(etags)

        def done(count: int) -> None:
            nonlocal written
            before, written = written, written + count
            if progress is not None and (written // 500 > before // 500 or written == len(paths)):
                progress(written, len(paths))

        rendered = _render_all(publication, target, [p for p in paths if p not in kept], processes, done)
        etags.update((path, etag) for path, (etag, _) in rendered.items())
        _write(target, NOT_FOUND_FILE, publication.not_found, set())
        if earlier:  # the state knows the workspace's documents: remove those that are gone
            _remove_gone(target, {file_for(path) for path in earlier.keys() - set(paths)})
        elif not fresh:  # a workspace whose last build never finished (or unknown to the state): look at every file
            _remove_others(target, {NOT_FOUND_FILE, *map(file_for, paths)})
        stamps: dict[str, int | None] = dict.fromkeys(paths) | {path: stamp for path, (_, stamp) in rendered.items()}
        if publication.stamp is not None and kept:  # the kept documents' Last-Modified, in one transaction
            for path, moment in publication.stamp({path: etags[path] for path in kept}).items():
                stamps[path] = int(moment.timestamp())
                if times[path] != stamps[path]:  # a kept file has its time already
                    _set_times(target, file_for(path), moment)
        target.chmod(0o755)
        _switch(destination, target, workspaces)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # not served: the next build starts it afresh
        raise
    if store is not None:
        store.exports.remember(str(target), {path: (keys[path] or "", etags[path], stamps[path]) for path in paths})
    return len(paths) + 1
