"""Load a content folder (site file + Markdown entries with YAML front matter) into a Content value.

Reuses every earlier load it is given (``LoadMemo``) and the cache across processes and restarts
(``ParseCache``): a reload after one edit reads and parses one file.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import itertools
import multiprocessing
import operator
import os
import posixpath
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..identity import build_identity
from ..markdown import DeferredBody, ImageFinder, RenderedMarkdown, has_no_pictures, render_markdown, shorten
from ..media import MediaError, MediaLibrary, resolve
from ..models import Content, Entry, Heading, Image, MediaFile, Site, sort_newest_first
from ..problems import ContentError, Problem, quote
from ..urls import entry_path
from .fields import (
    _SLUG,
    MAX_SLUG_LENGTH,
    SITE_DEFAULTS,
    SITE_FIELDS,
    _convert,
    _decode,
    _entry_fields,
    _FieldError,
    _parse_yaml,
    split_front_matter,
)
from .scan import ENTRY_SUFFIX, RACY, SITE_FILE, ContentFile, FolderScan, read_limited, scan_folder


def _load_site(directory: Path, overrides: Mapping[str, Any], problems: list[Problem]) -> tuple[Site | None, bytes]:
    name = SITE_FILE
    path = directory / SITE_FILE
    if not path.exists():
        problems.append(Problem(name, "file", "is missing; create it with id, title, description, author and sections"))
        return None, b""
    raw = read_limited(path, name, SITE_DEFAULTS["max_file_size"], problems)
    if raw is None:
        return None, b""
    text = _decode(raw, name, problems)
    data = None if text is None else _parse_yaml(text, name, "yaml", problems)
    if data is None:
        return None, raw
    before = len(problems)
    values = {**SITE_DEFAULTS, **_convert(data, SITE_FIELDS, name, problems)}
    for setting, value in overrides.items():  # FEEDSVC_* settings go through the same converters
        try:
            values[setting] = SITE_FIELDS[setting][1](value)
        except _FieldError as error:
            problems.append(Problem("environment", f"FEEDSVC_{setting.upper()}", str(error)))
    if len(problems) > before:
        return None, raw
    return Site(**values), raw


def _image(values: dict, written: dict, name: str, find_image: ImageFinder, problems: list[Problem]) -> Image | None:
    """The entry's picture from its front matter (``image`` + ``image_alt``), or None."""
    reference, alt = values.get("image"), values.get("image_alt")
    if reference is None:
        if alt is not None and written.get("image") is None:  # (an image given but wrong is reported already)
            problems.append(Problem(name, "image_alt", "describes no image; add 'image: media/...' or remove it"))
        return None
    if alt is None:
        problems.append(Problem(name, "image_alt", "is missing; describe the image for readers who cannot see it"))
        return None
    if "://" in reference:
        return Image(reference, alt)
    try:
        url, media = find_image("/" + reference)
    except MediaError as error:
        problems.append(Problem(name, "image", str(error)))
        return None
    return Image(url, alt, media)


def _parse_entry(
    name: str, raw: bytes, digest: str, site: Site, library: MediaLibrary, problems: list[Problem], defer_bodies: bool = False
) -> Entry | None:
    """Parse and check one entry file; with ``defer_bodies``, a body without pictures is left to render when first asked for."""
    text = _decode(raw, name, problems)
    if text is None:
        return None
    parts = split_front_matter(text)
    if parts is None:
        problems.append(Problem(name, "front matter", "missing; start the file with a '---' line, the fields, and another '---' line"))
        return None
    data = _parse_yaml(parts[0], name, "front matter", problems, first_line=2)
    if data is None:
        return None
    before = len(problems)
    values = _convert(data, _entry_fields(site), name, problems)
    stem = posixpath.splitext(posixpath.basename(name))[0]  # PurePath's stem, without its ~20 us a call
    slug = values.get("slug") or stem
    if "slug" not in values and not _SLUG.match(slug):
        problems.append(Problem(name, "slug", f"file name {stem!r} is not a slug; rename the file or add 'slug: some-words'"))
    elif "slug" not in values and len(slug) > MAX_SLUG_LENGTH:
        problems.append(
            Problem(name, "slug", f"file name is {len(slug)} characters long, more than {MAX_SLUG_LENGTH}; add a shorter 'slug:'")
        )
    published, updated = values.get("date"), values.get("updated", values.get("date"))
    if published and updated and updated < published:
        problems.append(Problem(name, "updated", "is earlier than date; an entry cannot change before it is published"))
    folder = posixpath.dirname(name)  # "" at the top of the content folder

    def find_image(reference: str) -> tuple[str, MediaFile]:
        target = resolve(reference, folder)
        if target is None:
            raise MediaError("leaves the content folder; keep images inside it")
        media = library.get(target)
        return site.url(media.path), media

    image = _image(values, data, name, find_image, problems)
    page_url = site.url(entry_path(slug))
    body_source = parts[1]
    summary = values.get("summary")
    if defer_bodies and body_source.strip() and has_no_pictures(body_source):
        body: str | DeferredBody = DeferredBody.of(body_source, page_url, summary)
        headings: tuple[Heading, ...] = ()
        media = {}  # no picture in it; the summary comes with the rendered body
    else:
        rendered = render_markdown(body_source, page_url, find_image) if body_source.strip() else RenderedMarkdown("", "", (), (), ())
        problems.extend(Problem(name, "body", problem) for problem in rendered.problems)
        body, headings, media = rendered.html, rendered.headings, {m.name: m for m in rendered.media}
        summary = shorten(summary or rendered.lede)
    if len(problems) > before:
        return None
    if image is not None and image.file is not None:
        media = {image.file.name: image.file, **media}
    if media:  # the entry's HTML names its images' digests: what reuse compares must change with them
        digest = hashlib.sha256(" ".join([digest, *(m.digest for m in media.values())]).encode()).hexdigest()[:32]
    return Entry(
        id=values["id"],
        slug=slug,
        title=values["title"],
        published=published,
        updated=updated,
        section=values["section"],
        own_summary=summary,
        body=body,
        source=name,
        digest=digest,
        image=image,
        authors=values.get("authors", ()),
        tags=values.get("tags", ()),
        headings=headings,
        media=tuple(media.values()),
        draft=values.get("draft", False),
        aliases=values.get("aliases", ()),
    )


def _check_unique(entries: list[Entry], problems: list[Problem]) -> None:
    for attribute in ("id", "slug"):
        seen: dict[str, Entry] = {}
        for entry in entries:
            value = getattr(entry, attribute)
            if value in seen:
                problems.append(
                    Problem(
                        entry.source,
                        attribute,
                        f"{quote(value)} is already used by {seen[value].source}; every entry needs its own {attribute}",
                    )
                )
            else:
                seen[value] = entry


class ParseCache(Protocol):
    """Where the loader keeps its work between loads and processes (``state.parses.ParseStore`` is one)."""

    def file_digests(self, folder: str, names: list[str]) -> dict[str, tuple[int, int, int, str]]: ...

    def parsed_entries(self, keys: Iterable[str]) -> dict[str, Any]: ...

    def remember_parsed(self, entries: Mapping[str, Any]) -> Mapping[str, Any]: ...

    def remember_files(self, folder: str, files: Mapping[str, tuple[int, int, int, str]]) -> None: ...

    def register_site(self, site_key: str, recover: Callable[[str, str, str], tuple | None]) -> None: ...


PARALLEL_FROM = 1000  # files to parse before the work is shared among processes


def forked(processes: int) -> int:
    """How many forked processes may share work: ``processes`` on Linux, 1 elsewhere.

    The work is shared by forking (the children inherit the site, the images, the publication, with
    nothing pickled). On macOS fork is unsafe in a process whose libraries started threads (CPython
    no longer uses it there by default), and spawning would pickle everything: one process it is.
    """
    return processes if sys.platform.startswith("linux") else 1


def _parse_files(
    site: Site, library: MediaLibrary, items: list[tuple[str, bytes, str]], defer_bodies: bool = False
) -> list[tuple[Entry | None, list[Problem]]]:
    """Parse files, each to its entry (or None) and its problems; any exception becomes a problem naming the file."""
    results = []
    for name, raw, file_digest in items:
        problems: list[Problem] = []
        try:
            entry = _parse_entry(name, raw, file_digest[:32], site, library, problems, defer_bodies)
        except Exception as error:  # a library failing on odd input must not escape: name the file
            problems.append(Problem(name, "file", f"could not be read: {type(error).__name__}: {shorten(str(error), 80)}"))
            entry = None
        results.append((entry, problems))
    return results


Progress = Callable[[int, int], None]  # (files done, files in all): long loads report as they go


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cycle collector while a load makes objects that live as long as it does.

    Each full pass walks every object made so far: a load of 100,000 entries spent 6 s of its main
    process collecting (4.7 s in 11 full passes) and freed nothing (entries hold no cycles).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _parse_all(
    site: Site,
    library: MediaLibrary,
    items: list[tuple[str, bytes, str]],
    processes: int,
    progress: Progress | None = None,
    defer_bodies: bool = False,
    on_part: Callable[[list[tuple[str, bytes, str]], list[tuple[Entry | None, list[Problem]]]], None] | None = None,
) -> list[tuple[Entry | None, list[Problem]]]:
    """Parse on ``processes`` processes when there is enough to share (forked: call only where no threads run).

    ``on_part`` is given each part's items and results as they come: it works while the other
    processes parse the next parts.
    """
    chunk = max(200, len(items) // (max(1, processes) * 20))
    chunks = [items[start : start + chunk] for start in range(0, len(items), chunk)]
    results: list[tuple[Entry | None, list[Problem]]] = []
    if forked(processes) < 2 or len(items) < PARALLEL_FROM:
        parts = (_parse_files(site, library, part, defer_bodies) for part in chunks)
        pool = None
    else:  # the executor pickles a chunk only when a process is ready for it: the bytes are not all copied at once
        # the parsers collect their own garbage: only this process pauses its collector (``load_content``)
        pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"), initializer=gc.enable)
        parts = pool.map(_parse_files, [site] * len(chunks), [library] * len(chunks), chunks, [defer_bodies] * len(chunks))
    try:
        for items_part, part in zip(chunks, parts, strict=True):
            results.extend(part)
            if on_part is not None:
                on_part(items_part, part)
            if progress is not None:
                progress(len(results), len(items))
    finally:
        if pool is not None:
            pool.shutdown()
    return results


@dataclass
class LoadMemo:
    """What the last load of a folder found, so the next one works only on files whose size or mtime changed.

    ``files`` maps each entry file's name to (the scan's record of it, its parse key, its entry),
    for the site digest ``site_digest``; ``newest_first`` is the published order that load gave.
    A load that fails keeps the parses it made, so fixing the typo re-parses one file.
    """

    site_digest: str = ""
    files: dict[str, tuple[ContentFile, str, Entry]] = field(default_factory=dict)
    newest_first: tuple[Entry, ...] | None = None  # None: the last load failed
    drafts: tuple[Entry, ...] = ()
    fresh: int = 0  # files the last load did not take from the memo before it
    with_media: tuple[str, ...] = ()  # the files whose entries show images: checked when an image changes
    scan: FolderScan = field(default_factory=lambda: FolderScan((), ()))  # the scan that load read (a rescan shares its unchanged records)
    images: dict[str, tuple[str, int, int]] | None = None  # the images of that scan, as MediaLibrary takes them
    version: str | None = None  # the version the last successful load gave


def content_version(site_digest: str, loaded: Iterable[tuple[ContentFile, str, Entry]]) -> str:
    """The version of a load: its site's digest and each entry's (its file's and its pictures') in file order.

    The same bytes give the same version in every process, whatever was loaded before.
    """
    digest = hashlib.sha256(site_digest.encode())
    digest.update("\n".join(entry.digest for _, _, entry in loaded).encode())
    return digest.hexdigest()[:16]


def _same_place(before: Entry, after: Entry) -> bool:
    """Tell whether an edited entry keeps its place: the same id and slug (no uniqueness to check), date and draft flag (no new order)."""
    return (before.id, before.slug, before.published, before.draft) == (after.id, after.slug, after.published, after.draft)


def _place_of(entries: tuple[Entry, ...], entry: Entry) -> int:
    """Return where ``entry`` is in ``entries`` (newest first, as ``sort_newest_first`` orders them): a binary search."""
    wanted = (entry.published, entry.id)
    low, high = 0, len(entries)
    while low < high:  # the first place whose (published, id) is not above the entry's
        middle = (low + high) // 2
        if (entries[middle].published, entries[middle].id) > wanted:
            low = middle + 1
        else:
            high = middle
    if low >= len(entries) or entries[low] is not entry:
        raise LookupError(f"{entry.source} is not where its date puts it")
    return low


def _unseen(file: ContentFile, remembered: Mapping[str, tuple[ContentFile, str, Entry]], size_limit: int) -> bool:
    """Tell whether the last load (``remembered``) did not see ``file`` as it is now, or it is too large to take as it was.

    A RACY record proves nothing (the file may have changed within its stat's granularity since): it is read again.
    """
    prior = remembered.get(file.name)
    return prior is None or (prior[0] is not file and (prior[0] != file or file.change == RACY)) or file.size > size_limit


def _sorted_out(
    scan: FolderScan, remembered: Mapping[str, tuple[ContentFile, str, Entry]], size_limit: int
) -> tuple[list[ContentFile], dict[str, tuple[str, int, int]], list[ContentFile]]:
    """Sort the scan's files out: the entry files in order, the images (as MediaLibrary takes them), and the entry
    files the last load (``remembered``) did not see as they are now."""
    files, images, pending = [], {}, []
    for file in scan.files:  # the scanner listed content files only: an entry, an image or the site file
        name = file.name
        if not name.endswith(ENTRY_SUFFIX):
            if name != SITE_FILE:
                images[name] = (scan.path(file), file.size, file.mtime_ns)
            continue
        files.append(file)
        if _unseen(file, remembered, size_limit):
            pending.append(file)
    return files, images, pending


def _with_changed_images(
    showing_images: Iterable[str], remembered: Mapping[str, tuple[ContentFile, str, Entry]], pending: set[str], library: MediaLibrary
) -> list[ContentFile]:
    """Return the files of entries taken from the last load whose images changed since (parsed again); tell
    ``library`` the images the others show, as they are."""
    stale = []
    for name in showing_images:
        if name in remembered and name not in pending:
            file, _, entry = remembered[name]
            if all(library.current(media) for media in entry.media):
                library.known.update((media.name, media) for media in entry.media)
            else:
                stale.append(file)
    return stale


def _swapped_in(
    entries: tuple[Entry, ...], drafts: tuple[Entry, ...], edits: Iterable[tuple[Entry, Entry]]
) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    """Return the published entries and drafts with each edited entry (before, after) where its earlier self was.

    Only for edits that keep an entry's id, slug, date and draft flag (``_same_place``): the order holds.
    """
    for before, after in edits:
        if after.draft:
            drafts = tuple(after if entry is before else entry for entry in drafts)
        else:
            at = _place_of(entries, before)
            entries = (*entries[:at], after, *entries[at + 1 :])
    return entries, drafts


def _with_shared_strings(entry: Entry, file: ContentFile) -> Entry:
    """Make a new entry (parsed in another process, or read from the state) share strings with the rest of the load; return it.

    Its file name is the scan's string object, its section and day the ones every entry of that
    section and day shares: 100,000 entries held by every worker save ~18 MB.
    """
    # a new object only this load refers to yet: set in place
    if entry.source is not file.name and entry.source == file.name:
        object.__setattr__(entry, "source", file.name)
    object.__setattr__(entry, "section", sys.intern(entry.section))  # a few sections
    object.__setattr__(entry, "day", sys.intern(entry.day))  # a few thousand days
    return entry


def _changed_entry_files(scan: FolderScan, memo: LoadMemo, remembered: Mapping, size_limit: int) -> list[ContentFile] | None:
    """Return the entry files whose records differ from those of the scan the last load read, or None to look at every file.

    A rescan keeps the record of every file it did not look at, so the differences are found by
    identity in C (100,000 files: milliseconds, not a Python pass over each). None when files may
    have come, gone or been renamed (another count, another name at a place) or an image or the
    site file changed: then every file is looked at.
    """
    before = memo.scan.files
    if memo.images is None or len(before) != len(scan.files):
        return None
    pending = []
    for at in itertools.compress(itertools.count(), map(operator.is_not, scan.files, before)):
        file = scan.files[at]
        if file.name != before[at].name or not file.name.endswith(ENTRY_SUFFIX):
            return None
        if _unseen(file, remembered, size_limit):
            pending.append(file)
    return pending


@collector_paused()
def load_content(
    directory: str | Path,
    overrides: Mapping[str, Any] | None = None,
    parsed: LoadMemo | None = None,
    cache: ParseCache | None = None,
    processes: int = 1,
    scan: FolderScan | None = None,
    progress: Progress | None = None,
    defer_bodies: bool = False,
    identity: str | None = None,
) -> Content:
    """Load and validate a whole content folder, or raise ContentError listing every problem.

    ``parsed``, when given, remembers the last load (``LoadMemo``): files it saw with the same
    name, size and mtime are taken from it as they were, so a reload after one edit reads,
    parses, checks and sorts little; it is refilled with this load's files. ``cache`` keeps
    parses across restarts and processes, plus each file's digest by its name, size and mtime (as
    make and rsync do, with its inode and ctime), so an unchanged file is not even read; its keys
    hold the build ``identity`` (default: this code's), so parses made by other code are never used. ``processes`` > 1 parses many new
    files in parallel. ``scan`` is the folder's scan when the caller has just made it. Files are
    named relative to the folder in every message.

    ``defer_bodies`` (with ``cache``): new bodies that show no picture, and so cannot be wrong, are
    checked but not rendered: the cache keeps their source and renders each when first asked for
    (``markdown.DeferredBody``). A start of 100,000 new entries spends 80 % of its parse on Markdown.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ContentError([Problem(".", "folder", "does not exist; pass --content DIR or set FEEDSVC_CONTENT_DIR")])
    scan = scan or scan_folder(directory)
    problems = list(scan.problems)
    if any(problem.file == "." for problem in problems):
        raise ContentError(problems)
    site, site_raw = _load_site(directory, overrides or {}, problems)
    if site is None:
        raise ContentError(problems)
    digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in (overrides or {}).items())).encode())
    digest.update((identity or build_identity()).encode())  # other code: other parses
    digest.update(site_raw)
    site_digest = digest.hexdigest()  # the site file and its overrides: what every entry's parse also depends on
    memo = parsed if parsed is not None else LoadMemo()
    remembered = memo.files if memo.site_digest == site_digest else {}
    # the last load was complete and valid: entries that keep their place need no new check or sort
    previous_order = memo.newest_first
    trusted = bool(remembered) and previous_order is not None

    # entry files the last load did not see as they are now; every other one is taken from it (``remembered``) as it was
    pending = _changed_entry_files(scan, memo, remembered, site.max_file_size) if trusted else None
    files: list[ContentFile] | None = None  # the entry files in order, when listed (the quick look above does not)
    if pending is not None:
        images = memo.images
    else:
        files, images, pending = _sorted_out(scan, remembered, site.max_file_size)
    pending_names = {file.name for file in pending}
    library = MediaLibrary(images)
    stale = _with_changed_images(memo.with_media if remembered else (), remembered, pending_names, library)
    keys: dict[str, str] = {file.name: remembered[file.name][1] for file in stale}  # name -> parse key, of each pending file
    found: dict[str, Entry] = {}  # parse key -> entry, parsed before
    pending += stale
    pending_names.update(file.name for file in stale)

    folder_key = os.path.abspath(directory)  # file digests are recorded by name within a folder
    known = cache.file_digests(folder_key, [file.name for file in pending]) if cache is not None and pending else {}
    file_digests: dict[str, str] = {}  # name -> digest, of each readable pending file
    raws: dict[str, bytes] = {}
    read_problems: dict[str, list[Problem]] = {}

    def note_digest(name: str, file_digest: str) -> None:
        file_digests[name] = file_digest
        # one string object per key: the memo, the state's body references and this load share it; 128 bits
        # of each digest name a parse as surely as 256 (no two files' keys meet by chance), in ~64 bytes less a
        # key: 100,000 keys are held by every worker
        keys[name] = sys.intern(f"{file_digest[:32]}:{site_digest[:32]}")

    def read(file: ContentFile) -> None:
        raw = read_limited(scan.path(file), file.name, site.max_file_size, read_problems.setdefault(file.name, []))
        if raw is None:
            file_digests.pop(file.name, None)
            keys.pop(file.name, None)
            return
        raws[file.name] = raw
        note_digest(file.name, hashlib.sha256(file.name.encode() + b"\0" + raw).hexdigest())

    for file in pending:
        if file.name in keys:  # taken from the last load, its images changed: read it again below
            continue
        earlier = known.get(file.name)
        if earlier is not None and earlier[:3] == file[1:] and file.change != RACY and file.size <= site.max_file_size:
            note_digest(file.name, earlier[3])  # unchanged since a load that recorded it: not even read
        else:
            read(file)
    if cache is not None:
        stale_keys = {keys[file.name] for file in stale}
        found.update(cache.parsed_entries(keys[f.name] for f in pending if f.name in keys and keys[f.name] not in stale_keys))
    for key, entry in list(found.items()):  # a parse shows its images as they were: parse again when one changed
        if entry.media:
            if all(library.current(media) for media in entry.media):
                library.known.update((media.name, media) for media in entry.media)
            else:
                del found[key]
    for file in pending:
        if file.name in keys and file.name not in raws and keys[file.name] not in found:
            read(file)  # known digest, no parse cached (the site file changed, an image changed): read it now
    to_parse = [(f.name, raws[f.name], file_digests[f.name]) for f in pending if f.name in raws and keys[f.name] not in found]
    stored: dict[str, Entry] = {}  # parse key -> new entry, its body kept in the cache from now on, not in this process
    pending_files = {file.name: file for file in pending}

    def keep_part(items: list[tuple[str, bytes, str]], results: list[tuple[Entry | None, list[Problem]]]) -> None:
        # kept as each part comes, while the other processes parse the next (a failed load keeps its parses too)
        parsed = {
            keys[name]: _with_shared_strings(entry, pending_files[name])
            for (name, _, _), (entry, _) in zip(items, results, strict=True)
            if entry is not None
        }
        if parsed:
            stored.update(cache.remember_parsed(parsed))

    parse_results = dict(
        zip(
            (item[0] for item in to_parse),
            _parse_all(
                site, library, to_parse, processes, progress, defer_bodies and cache is not None, keep_part if cache is not None else None
            ),
            strict=True,
        )
    )

    read_problems = {name: found_problems for name, found_problems in read_problems.items() if found_problems}
    this_load: dict[str, tuple[ContentFile, str, Entry]]  # name -> (file, key, entry), in file order
    if trusted and (files is None or len(files) == len(remembered)) and not read_problems and all(f.name in remembered for f in pending):
        this_load = dict(remembered)  # the same files as last time, in the same order: only the pending ones change
        for file in pending:
            key = keys[file.name]
            entry = found.get(key)
            if file.name in parse_results:
                entry, entry_problems = parse_results[file.name]
                problems.extend(entry_problems)
            if entry is None:
                del this_load[file.name]
            else:
                this_load[file.name] = (file, key, stored.get(key) or _with_shared_strings(entry, file))
    else:
        this_load = {}
        for file in files if files is not None else (f for f in scan.files if f.name.endswith(ENTRY_SUFFIX)):
            name = file.name
            if read_problems:
                problems.extend(read_problems.get(name, ()))
            if name not in pending_names:
                this_load[name] = remembered[name]
                continue
            key = keys.get(name)
            if key is None:
                continue
            entry = found.get(key)
            if name in parse_results:
                entry, entry_problems = parse_results[name]
                problems.extend(entry_problems)
            if entry is not None:
                this_load[name] = (file, key, stored.get(key) or _with_shared_strings(entry, file))
    changed_files = {
        f.name: value
        for f in pending
        if f.name in file_digests and f.change != RACY and known.get(f.name) != (value := (*f[1:], file_digests[f.name]))
    }
    if cache is not None:
        if changed_files:
            cache.remember_files(folder_key, changed_files)
        # a body missing from the cache is rendered again from its file, with this site
        cache.register_site(site_digest[:32], functools.partial(recover_body, os.fspath(directory), site))
    # the version: the site's digest and every entry's in file order (an entry's covers its file and the pictures it shows)
    version = content_version(site_digest, this_load.values())

    # edited entries that keep their id, slug, date and draft flag: the last load's order and checks still hold
    edited = {f.name for f in pending if f.name in this_load}
    in_place = (
        trusted
        and len(this_load) == len(remembered)
        and all(name in remembered and _same_place(remembered[name][2], this_load[name][2]) for name in edited)
    )
    if not in_place:
        _check_unique([entry for _, _, entry in this_load.values()], problems)
    if parsed is not None:  # what the next load starts from, a failed one too: fixing a typo re-parses one file
        parsed.site_digest, parsed.files, parsed.newest_first, parsed.fresh = site_digest, this_load, None, len(pending)
        parsed.scan, parsed.images = scan, images
        if remembered and len(pending) < 1000:  # the entries showing images: the last load's, with the pending ones' changes
            with_media = set(memo.with_media) - pending_names
            with_media.update(name for name in pending_names if name in this_load and this_load[name][2].media)
        else:
            with_media = {name for name, (_, _, entry) in this_load.items() if entry.media}
        parsed.with_media = tuple(sorted(with_media))
    if problems:
        raise ContentError(problems)
    if in_place:  # swap the edited entries in where the last load had them
        entries, drafts = _swapped_in(previous_order, memo.drafts, [(remembered[name][2], this_load[name][2]) for name in edited])
    else:
        entries = sort_newest_first(entry for _, _, entry in this_load.values() if not entry.draft)
        drafts = tuple(entry for _, _, entry in this_load.values() if entry.draft)
    if parsed is not None:
        parsed.newest_first, parsed.drafts = entries, drafts
    if parsed is not None:
        parsed.version = version
    return Content(site=site, entries=entries, version=version, drafts=drafts, folder=str(directory))


class _FolderImages(Mapping[str, tuple[str, int, int]]):
    """The images of a folder as ``MediaLibrary`` takes them (name -> path, size, mtime), each looked at when asked for."""

    def __init__(self, folder: str):
        self._folder = folder

    def __getitem__(self, name: str) -> tuple[str, int, int]:
        path = os.path.join(self._folder, name)
        try:
            info = os.stat(path)
        except OSError:
            raise KeyError(name) from None
        return path, info.st_size, info.st_mtime_ns

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def recover_body(folder: str, site: Site, source: str, parse_key: str, digest: str) -> tuple[str, tuple[Heading, ...], str] | None:
    """Render an entry's body again from its file (a body the cache lost), or None when the file no longer has its bytes.

    The same file, site and pictures give the same body, byte for byte: the entry's digest, which
    covers its file and its pictures, must come out as it was.
    """
    problems: list[Problem] = []
    raw = read_limited(os.path.join(folder, source), source, site.max_file_size, problems)
    if raw is None:
        return None
    file_digest = hashlib.sha256(source.encode() + b"\0" + raw).hexdigest()
    if not parse_key.startswith(file_digest[:32] + ":"):
        return None
    try:
        entry = _parse_entry(source, raw, file_digest[:32], site, MediaLibrary(_FolderImages(folder)), problems)  # type: ignore[arg-type]
    except Exception:  # what a library chokes on now, it choked on then: not this body
        return None
    if entry is None or entry.digest != digest:
        return None
    return entry.texts()


class KeptVersionError(LookupError):
    """The kept version cannot be built again from the cache (parses gone or damaged): there is no last good version."""


def load_kept(directory: str | Path, kept: Any, parsed: LoadMemo, cache: ParseCache) -> Content:
    """Build a namespace's last good version (``state.kept.KeptVersion``) again from the cache, without reading the folder.

    Entries the memo holds under the same parse key and digest are taken from it; the others come
    from the cache. The version must come out as it was kept, or nothing is built
    (KeptVersionError). ``parsed`` is refilled as by a load of those files, so the next load from
    the folder reads only the files that differ from the kept version's.
    """
    remembered = parsed.files if parsed.site_digest == kept.site_digest else {}
    wanted = [file for file in kept.files if not _same_kept(remembered.get(file.name), file)]
    found = cache.parsed_entries([file.key for file in wanted]) if wanted else {}
    this_load: dict[str, tuple[ContentFile, str, Entry]] = {}
    for file in kept.files:
        record = ContentFile(file.name, file.size, file.mtime_ns, file.change)
        earlier = remembered.get(file.name)
        if _same_kept(earlier, file):
            this_load[file.name] = (earlier[0] if earlier[0] == record else record, earlier[1], earlier[2])
            continue
        entry = found.get(file.key)
        if entry is None or entry.digest != file.digest:
            raise KeptVersionError(f"{file.name}: its parse is no longer in the state folder")
        this_load[file.name] = (record, file.key, _with_shared_strings(entry, record))
    version = content_version(kept.site_digest, this_load.values())
    if version != kept.version:
        raise KeptVersionError(f"the kept files give version {version}, not {kept.version}")
    entries = sort_newest_first(entry for _, _, entry in this_load.values() if not entry.draft)
    drafts = tuple(entry for _, _, entry in this_load.values() if entry.draft)
    records = tuple(record for record, _, _ in this_load.values())
    parsed.site_digest, parsed.files, parsed.newest_first, parsed.drafts = kept.site_digest, this_load, entries, drafts
    parsed.scan, parsed.images, parsed.fresh, parsed.version = (
        FolderScan(records, (), root=os.fspath(directory)),
        None,
        len(wanted),
        version,
    )
    parsed.with_media = tuple(name for name, (_, _, entry) in this_load.items() if entry.media)
    cache.register_site(kept.site_digest[:32], functools.partial(recover_body, os.fspath(directory), kept.site))
    return Content(site=kept.site, entries=entries, version=version, drafts=drafts, folder=str(directory))


def _same_kept(earlier: tuple[ContentFile, str, Entry] | None, file: Any) -> bool:
    return earlier is not None and earlier[1] == file.key and earlier[2].digest == file.digest


def load_site(directory: Path, overrides: Mapping[str, Any]) -> Site | None:
    """Read the site file alone (None when it has a problem: a load reports it)."""
    return _load_site(directory, overrides, [])[0]
