"""Command line: ``python -m feedsvc check|serve|build|nginx-config``."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from .config import DEFAULTS, ConfigError, config_from_env, site_overrides
from .content import SITE_DEFAULTS, ContentError, FolderScan, Problem, load_content, scan_folder
from .export import export_publication
from .markdown import shorten
from .models import release
from .nginx import static_site_config
from .publication import Publication, build_publication
from .publisher import (
    CHECKED_SCAN_VARIABLE,
    WARM_START_VARIABLE,
    fingerprint,
    handover_note,
    hot_set_key,
    keep_hot_set,
    keep_load,
    kept_load,
)
from .store import StateError, Store, default_state_dir
from .warmstart import usable_hot_set
from .websub import HubNotifier


def _say(message: str, stream=None) -> None:
    """Print a line; a full or closed stdout never stops the service."""
    with contextlib.suppress(OSError, ValueError):
        print(message, file=stream or sys.stdout, flush=True)


class Progress:
    """Report work that takes more than 2 s on stderr: a line that updates itself on a terminal, a line every 10 s otherwise."""

    def __init__(self, what: str):
        self.what = what
        self.started = time.monotonic()
        self.shown = 0.0
        try:
            self.terminal = sys.stderr.isatty()
        except (AttributeError, OSError, ValueError):  # stderr closed (None) or unusable: plain lines, dropped
            self.terminal = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.started < 2 and not self.shown:
            return  # quick work says nothing
        if done < total and now - self.shown < (0.2 if self.terminal else 10):
            return
        self.shown = now
        elapsed = now - self.started
        left = elapsed / done * (total - done) if done else 0
        line = f"{self.what}: {done:,}/{total:,} ({100 * done // max(1, total)}%), {elapsed:.0f} s, about {left:.0f} s left"
        if self.terminal:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write("\r" + line + ("\n" if done >= total else ""))
                sys.stderr.flush()
        else:
            _say(line, sys.stderr)


def _load(
    directory: str,
    store: Store | None = None,
    render_all: bool = True,
    cache: Store | None = None,
    scan: FolderScan | None = None,
    defer_bodies: bool = False,
) -> Publication | None:
    """Load, validate and render content exactly as the service does, printing every problem; None when there are any.

    With ``render_all`` every document is rendered, entry and archive pages too, so whatever
    ``check`` accepts, ``serve`` serves; ``serve`` itself checks what it renders at start.
    New files are parsed on every core (this runs before any thread starts); ``store`` or
    ``cache`` keep the parses for the next load and the service's workers; with ``defer_bodies``
    they keep the bodies without pictures unrendered, for the workers to render (``load_content``).
    """
    memo, kept = kept_load(store or cache, directory)  # the last whole load: a build after one edit reads one file
    try:
        config = config_from_env()
        loaded = load_content(
            directory,
            site_overrides(config),
            parsed=memo,
            cache=store or cache,
            processes=os.cpu_count() or 1,
            scan=scan,
            progress=Progress("parsing new files"),
            defer_bodies=defer_bodies,
        )
        keep_load(store or cache, memo, kept)  # for the next build, or the service's workers
        content = release(loaded, datetime.now(UTC))
        stamp = None if store is None else lambda etags: store.last_modified(etags, content.version, lambda: True)
        publication = build_publication(content, config.get("HUB_URL"), stamp=stamp)
        if render_all:
            for path in sorted(publication.paths()):
                publication.document(path)
        return publication
    except ContentError as error:
        problems = error.problems
    except ConfigError as error:
        _say(f"environment: {error}", sys.stderr)
        return None
    except Exception as error:  # a library choking on odd input: still one line naming what failed
        problems = (Problem("(build)", type(error).__name__, shorten(str(error) or "failed", 200)),)
    _report(directory, problems)
    return None


def _report(directory: str, problems) -> None:
    """Print every problem as FILE: FIELD: message, the file as a path that opens from where the command ran."""
    for problem in problems:
        where = problem.file if problem.file in ("environment", "(build)") else Path(directory, problem.file)
        _say(f"{where}: {problem.field}: {problem.message}", sys.stderr)
    _say(f"{len(problems)} problem(s) in {directory}", sys.stderr)


def check(args: argparse.Namespace) -> int:
    """Validate a content folder: print FILE: FIELD: problem lines (files relative to the folder), exit 1 on any."""
    publication = _load(args.content)
    if publication is None:
        return 1
    content = publication.content
    print(f"{args.content}: {len(content.entries)} entries, {len(publication.paths())} documents, no problems (version {content.version})")
    for entry in content.scheduled:  # oldest first: the next to go live first
        print(f"scheduled: {entry.source} goes live {entry.published.isoformat()} ({entry.title})")
    for entry in content.drafts:
        print(f"draft: {entry.source} is published nowhere until its 'draft: true' goes ({entry.title})")
    return 0


# Connection limits of `serve` (README, "Production server"): what nginx's defaults and a
# security review expect of a server facing the open internet.
IDLE_TIMEOUT = 10  # s: a request's headers must arrive within this, also the idle wait between keep-alive requests
MAX_CONNECTIONS = 10_000  # per worker, at most; lower when the file-descriptor limit is lower
HEADER_LIMIT = 64 * 1024  # bytes of request headers (HTTP/1 read buffer; HTTP/2 header list)
_RESERVED_DESCRIPTORS = 128  # files, the store, inotify, the worker's pipes


def raise_descriptor_limit() -> int:
    """Raise this process's soft file-descriptor limit to its hard limit (inherited by the workers); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):  # e.g. above the kernel's nr_open: keep what we have
            pass
    return soft


def _keep_standard_streams_open() -> None:
    """Point closed stdin/stdout/stderr at /dev/null, so no socket the server opens later takes their place."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != descriptor:
                os.dup2(null, descriptor)
                os.close(null)


def connection_limits(timeout: float = IDLE_TIMEOUT, max_connections: int = MAX_CONNECTIONS, http2: bool = False) -> list[str]:
    """granian's options for ``serve``'s connection limits (the benchmark's ceiling runs with the same)."""
    timeout_ms = str(int(timeout * 1000))
    protocol = ["--http", "1"]
    if http2:
        protocol = ["--http", "auto", "--http2-max-headers-size", str(HEADER_LIMIT), "--http2-keep-alive-interval", timeout_ms]
    return [
        # a connection holds its slot from accept to close, idle or not: the default (backlog/workers,
        # 512) let 1,000 idle connections take the site offline
        "--backpressure", str(max_connections),
        # hyper closes a connection whose request headers are not complete within this time,
        # and the same timer runs while a keep-alive connection waits for its next request
        "--http1-header-read-timeout", timeout_ms,
        "--http1-buffer-size", str(HEADER_LIMIT),
        *protocol,
    ]  # fmt: skip


def granian_command(args: argparse.Namespace, max_connections: int) -> list[str]:
    """The granian command line for ``serve``'s options."""
    return [
        sys.executable, "-m", "granian",
        "--interface", "wsgi",
        "--host", args.host,
        "--port", str(args.port),
        "--workers", str(args.workers),
        "--respawn-failed-workers",  # a crashed worker is replaced
        # a worker told to stop while it was still loading the content misses the signal: without
        # this, stopping the service waited for it forever
        "--workers-kill-timeout", "10",
        "--blocking-threads", "2",  # requests never block on I/O: two threads keep the GIL busy
        "--no-ws",
        *connection_limits(args.timeout, max_connections, args.http2),
        "--log-level", "warning",
        "feedsvc.wsgi:app",
    ]  # fmt: skip


CHECKED_SETTING = "serve: content checked"


def _check_key(folder_fingerprint: str) -> str:
    """What a check of the content depends on: the folder's ``fingerprint`` (which one, its files' names, sizes and mtimes) and the configuration.

    Made from the scan the check loads: a file changed after it has another mtime, so a key never
    describes bytes the check did not see.
    """
    config = {key: value for key, value in config_from_env().items() if key != "CLOCK"}
    return hashlib.sha256(repr((folder_fingerprint, sorted(config.items()))).encode()).hexdigest()


def _checked_before(store: Store, key: str) -> dict | None:
    """The result of the last successful start's check, if the folder and configuration are as they were then.

    A restart on unchanged content then starts the workers at once (they validate what they load;
    the check is what refuses to start on a broken folder, and a broken folder has changed).
    """
    remembered = store.setting(CHECKED_SETTING)
    checked = None if remembered is None else json.loads(remembered)
    return checked if checked is not None and checked.get("key") == key else None


def _base_url_for(port: int) -> str:
    """The public URL of a site whose site file names none, served on ``port`` of this machine."""
    return f"http://127.0.0.1:{port}"


def _warm_start(store: Store, port: int) -> dict | None:
    """What the last check found, when the workers may start on the hot set the last run kept (None: check the folder).

    A restart then answers at once with the documents it served before and looks at every file in
    the workers, in the background: an edit made while it was down is published like any edit,
    and one that broke a file leaves the last good version served and named in /healthz (a typo
    never keeps the site down). Only a start with no hot set, other code or other settings, or a
    scheduled entry due since, checks the folder first (and refuses invalid content).
    """
    remembered = store.setting(CHECKED_SETTING)
    if remembered is None:
        return None
    checked = json.loads(remembered)
    config = {**DEFAULTS, **config_from_env()}
    if checked["default_base_url"] and port != 8000:  # what serve sets below, and its workers render with
        config["BASE_URL"] = _base_url_for(port)
    key = hot_set_key(config)
    hot = usable_hot_set(store, key, time.time)  # read as the workers will: a damaged file means a check
    return None if hot is None else {"entries": hot.entries, "default_base_url": checked["default_base_url"], "hot_set": key}


def _check(store: Store, content: str) -> tuple[dict | None, str]:
    """Check the folder unless it is as the last start's check saw it: what it holds (None: invalid), and the scan's fingerprint."""
    scan = scan_folder(Path(content))
    seen = fingerprint(Path(content), scan)
    key = _check_key(seen)
    checked = _checked_before(store, key)
    if checked is not None:
        _say(f"{content}: unchanged since the last start's check (same files, sizes, times and settings)")
        return checked, seen
    # parsed on every core into the store, where the workers find it: they start without parsing. Bodies
    # without pictures cannot be wrong: checked by their front matter, they are rendered once serving.
    # Stamped like the workers stamp (the store gives the same bytes the same Last-Modified in every process)
    publication = _load(content, store, render_all=False, scan=scan, defer_bodies=True)  # the workers render the rest
    if publication is None:
        return None, seen
    # the hot documents the check rendered, kept as a restart keeps them: workers with the check's settings
    # answer with them at once while they load the archive (`serve` hands them over when the keys agree)
    keep_hot_set(store, publication, hot_set_key({**DEFAULTS, **config_from_env()}))
    checked = {
        "entries": len(publication.content.entries),
        "default_base_url": publication.content.site.base_url == SITE_DEFAULTS["base_url"],
    }
    store.remember(CHECKED_SETTING, json.dumps({"key": key, **checked}))
    return checked, seen


def serve(args: argparse.Namespace) -> int:
    """Run the production server (granian, WSGI) on validated content."""
    _keep_standard_streams_open()
    # absolute, not resolved: a `current -> releases/N` symlink is followed again on every reload
    os.environ["FEEDSVC_CONTENT_DIR"] = str(Path(args.content).absolute())
    os.environ.pop("FLASK_DEBUG", None)  # debug mode is for `flask run`, never for serve
    try:
        store = Store(config_from_env().get("STATE_DIR") or default_state_dir(args.content))
    except (ConfigError, StateError) as error:
        _say(f"environment: {error}", sys.stderr)
        return 1
    descriptors = raise_descriptor_limit()
    max_connections = args.max_connections or max(1, min(MAX_CONNECTIONS, descriptors - _RESERVED_DESCRIPTORS))
    if max_connections > descriptors - _RESERVED_DESCRIPTORS:
        _say(
            f"environment: --max-connections {max_connections} needs more than the {descriptors} file descriptors allowed (ulimit -n)",
            sys.stderr,
        )
        return 1
    checked = _warm_start(store, args.port)
    if checked is not None:
        _say(f"{args.content}: restarting on the documents the last run served; the workers look at every file meanwhile")
        os.environ[WARM_START_VARIABLE] = handover_note(checked["hot_set"])
    else:
        checked, seen = _check(store, args.content)
        if checked is None:
            return 1  # refuse to start: the messages above say what to fix
        # the workers start from this look at every file when their kept load has the same (Publisher's checked_scan)
        os.environ[CHECKED_SCAN_VARIABLE] = handover_note(seen)
        warm = _warm_start(store, args.port)  # the hot set the check rendered, unless the workers' settings differ
        if warm is not None:
            os.environ[WARM_START_VARIABLE] = handover_note(warm["hot_set"])
    if checked["default_base_url"] and args.port != 8000:
        # nobody configured a public URL: make links point at this local server
        os.environ["FEEDSVC_BASE_URL"] = _base_url_for(args.port)
    _say(
        f"feedsvc: serving {checked['entries']} entries on http://{args.host}:{args.port}/ with {args.workers} worker(s), "
        f"up to {max_connections} connections each, idle timeout {args.timeout:g} s, HTTP/2 {'on' if args.http2 else 'off'}"
    )
    os.execv(sys.executable, granian_command(args, max_connections))
    return 0  # not reached


def build(args: argparse.Namespace) -> int:
    """Write a static export of every document (byte-identical to what the service serves)."""
    try:
        config = config_from_env()
        store = Store(config.get("STATE_DIR") or default_state_dir(args.content))
    except (ConfigError, StateError) as error:
        print(f"environment: {error}", file=sys.stderr)
        return 1
    publication = _load(args.content, store, render_all=False)  # the export renders every document, once
    if publication is None:
        return 1  # nothing written: a previous export stays as it was
    try:
        count = export_publication(publication, args.out, Progress("writing documents"), store, os.cpu_count() or 1)
    except ContentError as error:  # a document that cannot be rendered: named, and the previous export kept
        _report(args.content, error.problems)
        return 1
    content = publication.content
    print(f"{args.out}: {count} documents from {len(content.entries)} entries (version {content.version})")
    hub_url = config.get("HUB_URL")
    if hub_url:  # the export is in place: now the hub may fetch it
        notifier = HubNotifier(hub_url, store)
        notifier.announce(publication)
        notifier.wait()
    return 0


def nginx_config(args: argparse.Namespace) -> int:
    """Print the nginx directives that serve a static export of this site like the live service."""
    try:
        config = config_from_env()
        site = load_content(args.content, site_overrides(config)).site
    except ConfigError as error:
        print(f"environment: {error}", file=sys.stderr)
        return 1
    except ContentError as error:
        _report(args.content, error.problems)
        return 1
    sys.stdout.write(static_site_config(site, config.get("HUB_URL")))
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _timeout(text: str) -> float:
    value = float(text)
    if not 1 <= value <= 60:  # granian's header read timeout accepts 1 ms to 60 s; below 1 s real clients fail
        raise argparse.ArgumentTypeError(f"{text} is not between 1 and 60 seconds")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run a subcommand."""
    prog = "feedsvc" if Path(sys.argv[0]).name == "feedsvc" else "python -m feedsvc"  # console script or -m
    parser = argparse.ArgumentParser(prog=prog, description="Publish Markdown content as RSS, Atom and JSON Feed.")
    commands = parser.add_subparsers(dest="command", required=True)
    default_content = os.environ.get("FEEDSVC_CONTENT_DIR", "content")

    check_parser = commands.add_parser("check", help="validate a content folder")
    check_parser.add_argument("--content", default=default_content, help="content folder (default: %(default)s)")
    check_parser.set_defaults(run=check)

    serve_parser = commands.add_parser("serve", help="run the production server")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve_parser.add_argument("--port", type=_port, default=8000, help="port (default: %(default)s)")
    serve_parser.add_argument(
        "--workers", type=_count, default=os.cpu_count() or 1, help="worker processes (default: one per core, %(default)s)"
    )
    serve_parser.add_argument("--content", default=default_content, help="content folder (default: %(default)s)")
    serve_parser.add_argument(
        "--timeout",
        type=_timeout,
        default=IDLE_TIMEOUT,
        help="seconds a connection may take to send a request's headers, and may stay idle between requests (1-60, default: %(default)s)",
    )
    serve_parser.add_argument(
        "--max-connections",
        type=_count,
        default=None,
        help=f"open connections per worker; more wait in the listen queue (default: {MAX_CONNECTIONS:,}, less if ulimit -n is lower)",
    )
    serve_parser.add_argument(
        "--http2", action="store_true", help=f"also speak HTTP/2 (cleartext prior knowledge; headers limited to {HEADER_LIMIT // 1024} KiB)"
    )
    serve_parser.set_defaults(run=serve)

    build_parser = commands.add_parser("build", help="write a static export (files + .gz) to a folder")
    build_parser.add_argument("out", help="output folder (replaced atomically when the export is complete)")
    build_parser.add_argument("--content", default=default_content, help="content folder (default: %(default)s)")
    build_parser.set_defaults(run=build)

    nginx_parser = commands.add_parser("nginx-config", help="print nginx directives that serve a static export like the service")
    nginx_parser.add_argument("--content", default=default_content, help="content folder (default: %(default)s)")
    nginx_parser.set_defaults(run=nginx_config)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
