"""Look at the content folder: which files are content, what stat says of each, and reading one safely.

Strings and os calls only: a scan runs over every file of the folder (100,000 files: ~1 s).
"""

from __future__ import annotations

import bisect
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..media import is_media_name
from ..problems import Problem, quote

SITE_FILE = "site.yaml"
ENTRY_SUFFIX = ".md"
# Documentation that may live beside the entries; never an entry.
NOT_ENTRIES = frozenset({"readme.md"})


def _is_content_name(relative: str, name: str) -> bool:
    """Tell whether a path of the folder (with no dot-part: those are never content) is the site file, an entry or an image.

    Skipped: editors' ``.#x.md`` lock links and ``.x.md.swp`` (dot-names, never looked at),
    Emacs autosaves ``#x.md#``, backups ``x.md~`` and README.md (documentation).
    """
    if relative == SITE_FILE:
        return True
    if name.startswith("#"):
        return False
    return (name.endswith(ENTRY_SUFFIX) and name.lower() not in NOT_ENTRIES) or is_media_name(name)


class ContentFile(NamedTuple):
    """A file the loader will read: its name relative to the folder, and what stat said of it.

    Its path is the scan's folder and its name (``FolderScan.path``), not kept: 100,000 paths
    cost every worker ~8 MB.
    """

    name: str
    size: int
    mtime_ns: int
    # the inode number and ctime, in one number: what ``cp -p``, ``rsync -t`` and ``tar x`` cannot keep when they
    # write new bytes with the old size and mtime (RACY: a record not to be trusted, see ``racy``)
    change: int


RACY = -1  # never a ``change`` (a tuple's hash is never -1 in CPython): a record equal to no stat
# A file whose mtime is this close to the moment it was looked at may change again without its stat
# changing (a save within the file system's timestamp granularity: a jiffy on Linux, 1 s on HFS+ and
# NFSv3, 2 s on FAT): git's "racily clean" entries. Its record says RACY, so no later look takes the file
# as unchanged: it is read again until it has been still for this long (the file server's clock is
# assumed to be within a second of this machine's).
RACY_NS = 2_000_000_000


def change_of(info: os.stat_result) -> int:
    """The ``change`` of a file's stat: its inode and ctime (which no tool can set), as one number."""
    return hash((info.st_ino, info.st_ctime_ns))


def _record(name: str, info: os.stat_result, looked_at_ns: int) -> ContentFile:
    recent = info.st_mtime_ns >= looked_at_ns - RACY_NS
    return ContentFile(name, info.st_size, info.st_mtime_ns, RACY if recent else change_of(info))


@dataclass(frozen=True)
class FolderScan:
    """The content files of a folder, and what is wrong with the folder itself."""

    files: tuple[ContentFile, ...]
    problems: tuple[Problem, ...]
    links: tuple[str, ...] = ()  # content files that are symlinks (to files inside the folder): their targets' edits name the target
    root: str = ""  # the folder scanned, as it was named
    racy: tuple[str, ...] = ()  # files whose records say RACY: the folder may have changed without their stat changing

    def path(self, file: ContentFile) -> str:
        """Return the path of one of the scan's files."""
        return os.path.join(self.root, file.name)


_SPECIAL = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _file_problem(name: str, mode: int) -> Problem | None:
    if stat.S_ISREG(mode):
        return None
    what = _SPECIAL.get(stat.S_IFMT(mode), "not a regular file")
    return Problem(name, "file", f"is {what}, not a regular file; remove it (it is never opened)")


def scan_folder(directory: Path, known: Iterable[ContentFile] = ()) -> FolderScan:
    """List the site file and every entry file, sorted: the one list the loader and the watcher share.

    ``known``: records of an earlier scan of the same folder (or the last load's); a regular file
    that stat shows unchanged keeps its record object instead of a new equal one, so a restart's scan does not
    hold every record twice beside the kept load, and the loader finds changes by identity.

    Nothing is opened: a FIFO, device or socket with a content name is reported, never read. A
    symlink is followed only when its target stays inside the folder (a link out, say to /dev/zero
    or /etc, is reported); dangling symlinks (what Emacs leaves while a buffer is modified) are not
    content; linked folders are not descended into. A folder that cannot be listed is reported, so
    an unreadable ``posts/`` never publishes as an empty site. Strings and os calls only: this runs
    over every file (100,000 files: ~1 s, mostly one stat each), so a reload that knows which paths
    changed rescans only those (``rescan_folder``).
    """
    files: list[ContentFile] = []
    problems: list[Problem] = []
    links: list[str] = []
    earlier = {record.name: record for record in known}
    looked_at_ns = time.time_ns()
    try:
        root = os.path.realpath(directory)
    except OSError as error:
        return FolderScan((), (Problem(".", "folder", f"cannot be resolved ({error.strerror})"),), root=os.fspath(directory))
    pending = [(os.fspath(directory), "")]
    while pending:
        folder, prefix = pending.pop()
        shown = prefix.rstrip("/") or "."
        try:
            listing = os.scandir(folder)
        except OSError as error:
            problems.append(Problem(shown, "folder", f"cannot be read ({error.strerror}); fix its permissions"))
            continue
        with listing:
            for item in _one_at_a_time(listing, shown, problems):
                base = item.name
                if base.startswith("."):
                    continue
                name = prefix + base
                try:
                    if item.is_dir(follow_symlinks=False):
                        pending.append((item.path, name + "/"))
                        continue
                    if not _is_content_name(name, base):
                        continue
                    info = item.stat(follow_symlinks=False)
                    found = earlier.get(name)
                    if (
                        found is None
                        or not stat.S_ISREG(info.st_mode)
                        or (found.size, found.mtime_ns, found.change) != (info.st_size, info.st_mtime_ns, change_of(info))
                    ):
                        found = _content_file(root, name, item.path, info, looked_at_ns)
                except OSError as error:  # deleted or renamed while we looked
                    found = Problem(name, "file", f"cannot be read ({error.strerror})")
                if isinstance(found, ContentFile):
                    files.append(found)
                    if stat.S_ISLNK(info.st_mode):
                        links.append(name)
                elif found is not None:
                    problems.append(found)
    return _folder_scan(files, problems, links, os.fspath(directory))


def _one_at_a_time(listing: Iterator[os.DirEntry], shown: str, problems: list[Problem]) -> Iterator[os.DirEntry]:
    """A folder's entries as the OS lists them, never all at once (a list of 100,000 left ~70 MB of fragments in
    every worker); a failure to list the rest is the folder's problem, as a failure to open it is."""
    try:
        yield from listing
    except OSError as error:
        problems.append(Problem(shown, "folder", f"cannot be read ({error.strerror}); fix its permissions"))


def _folder_scan(files: Iterable[ContentFile], problems: Iterable[Problem], links: Iterable[str], root: str) -> FolderScan:
    """A scan in the one order every scan has (files and problems by name), however it was found."""
    files = sorted(files)
    racy = tuple(file.name for file in files if file.change == RACY)
    return FolderScan(tuple(files), _in_order(problems), tuple(sorted(links)), root, racy)


def _in_order(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda p: (p.file, p.field)))


def _content_file(root: str, name: str, path: str, info: os.stat_result, looked_at_ns: int) -> ContentFile | Problem | None:
    """What the scan makes of a file with a content name, given its lstat: a content file, a problem, or nothing (raises OSError)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(name).decode("utf-8", "backslashreplace")
        return Problem(shown, "file name", "is not valid UTF-8; rename the file")
    if stat.S_ISLNK(info.st_mode):
        target = os.path.realpath(path)
        if not os.path.exists(target):
            return None  # dangling: an editor's lock link, not content
        if os.path.commonpath((root, target)) != root:
            return Problem(name, "file", f"is a symlink to {quote(target)}, outside the content folder; copy the file in")
        info = os.stat(path)
    return _file_problem(name, info.st_mode) or _record(name, info, looked_at_ns)


def rescan_folder(directory: Path, previous: FolderScan, changed: Iterable[str]) -> FolderScan:
    """Return the folder's scan after changes to the ``changed`` paths (absolute, as inotify names them).

    Only those paths (and the content files that are symlinks, whose targets' edits name the
    target, and those whose records were RACY) are looked at, so a reload after one edit does not stat 100,000 files. Falls back to a
    full ``scan_folder`` whenever the changes could concern files it does not name: a folder among
    them (created, renamed, its permissions changed), a path gone that held files we knew, a name
    that is not UTF-8, or a folder problem in the scan before.
    """
    looked_at_ns = time.time_ns()
    try:
        root = os.path.realpath(directory)
    except OSError:
        return scan_folder(directory)
    if any(problem.field == "folder" for problem in previous.problems):
        return scan_folder(directory)
    files = list(previous.files)  # kept sorted by name: looked up and changed by bisection, never sorted again
    problems = {problem.file: problem for problem in previous.problems}
    links = set(previous.links)
    racy = set(previous.racy)
    folder = os.fspath(directory)

    def index_of(name: str) -> int:  # where ``name`` is, or would be, in ``files`` (a 1-tuple sorts before its file)
        return bisect.bisect_left(files, (name,))

    def holds(name: str) -> bool:
        at = index_of(name)
        return at < len(files) and files[at].name == name

    for name in sorted({os.path.relpath(path, root).replace(os.sep, "/") for path in changed} | links | racy):
        if name == "." or name.startswith("../") or name == "..":
            return scan_folder(directory)  # the folder itself, or a path outside it: look at everything
        if any(part.startswith(".") for part in name.split("/")):
            continue  # under a dot-folder, or a dot-file: never content
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return scan_folder(directory)
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        except OSError:
            return scan_folder(directory)
        known = holds(name) or name in problems
        if info is None and not known:
            inside = name + "/"
            at = index_of(inside)
            if (at < len(files) and files[at].name.startswith(inside)) or any(other.startswith(inside) for other in problems):
                return scan_folder(directory)  # a folder that held files: they are gone or moved
            continue  # gone, and never content (an editor's temporary file)
        if info is not None and stat.S_ISDIR(info.st_mode):
            return scan_folder(directory)  # a new, renamed or changed folder: its files are not named one by one
        if holds(name):
            del files[index_of(name)]
        problems.pop(name, None)
        links.discard(name)
        racy.discard(name)
        if info is None or not _is_content_name(name, name.rpartition("/")[2]):
            continue
        try:
            found = _content_file(root, name, path, info, looked_at_ns)
        except OSError as error:
            found = Problem(name, "file", f"cannot be read ({error.strerror})")
        if isinstance(found, ContentFile):
            files.insert(index_of(name), found)
            if stat.S_ISLNK(info.st_mode):
                links.add(name)
            if found.change == RACY:
                racy.add(name)
        elif found is not None:
            problems[name] = found
    return FolderScan(tuple(files), _in_order(problems.values()), tuple(sorted(links)), folder, tuple(sorted(racy)))


def read_limited(path: Path, name: str, limit: int, problems: list[Problem]) -> bytes | None:
    """Read a regular file of at most ``limit`` bytes, or record why not.

    Opened non-blocking and checked after opening, so a file swapped for a FIFO or a device
    since the folder was scanned is refused, never waited on or read without end.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:  # deleted or renamed while we were reading the folder
        problems.append(Problem(name, "file", f"cannot be read ({error.strerror})"))
        return None
    try:  # read with the descriptor itself: a file object around it cost a start of 100,000 files ~3 s
        info = os.fstat(descriptor)
        problem = _file_problem(name, info.st_mode)
        if problem is None and info.st_size <= limit:
            # ask for the size stat gave (plus one byte, to see growth), never for `limit`: a read
            # of 1 MiB allocates 1 MiB (a mapping of its own) before shrinking to the file, and
            # 100,000 such leftovers exhaust the kernel's 65,530 mappings per process
            data = _read_up_to(descriptor, info.st_size + 1)
            if len(data) > info.st_size:  # grown since stat: read on, up to the limit
                data += _read_up_to(descriptor, limit + 1 - len(data))
            if len(data) <= limit:
                return data
        if problem is None:
            size = max(info.st_size, limit + 1)
            problem = Problem(
                name, "file", f"is {size:,} bytes, more than max_file_size ({limit:,}); split it, or raise max_file_size in {SITE_FILE}"
            )
        problems.append(problem)
        return None
    finally:
        os.close(descriptor)


def _read_up_to(descriptor: int, count: int) -> bytes:
    """Read ``count`` bytes, or up to the end of the file (a read may return fewer than asked)."""
    parts = []
    while count > 0 and (part := os.read(descriptor, count)):
        parts.append(part)
        count -= len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)
