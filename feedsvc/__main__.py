"""Command line: ``python -m feedsvc check|serve|build|nginx-config``."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import resource
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from .config import DEFAULTS, ConfigError, config_from_env, namespace_settings, site_overrides
from .export import export_publication
from .identity import build_identity
from .live.publisher import Publisher, keep_load, kept_load
from .markdown import shorten
from .models import release
from .nginx import static_site_config
from .problems import ContentError, Problem
from .publication import Publication, build_publication, redirects_of
from .source.fields import SITE_DEFAULTS
from .source.loader import load_content, load_site
from .state import Store, default_state_dir, namespace_of
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


def _load(directory: str, store: Store | None = None, render_all: bool = True) -> Publication | None:
    """Load, validate and render content exactly as the service does, printing every problem; None when there are any.

    With ``render_all`` every document is rendered, entry and archive pages too, so whatever
    ``check`` accepts, ``serve`` serves. New files are parsed on every core (this runs before any
    thread starts); ``store`` keeps the parses and the whole load for the next build.
    """
    identity = build_identity()
    memo, _ = kept_load(store, directory, identity)  # the last whole load: a build after one edit reads one file
    try:
        config = config_from_env()
        loaded = load_content(
            directory,
            site_overrides(config),
            parsed=memo,
            cache=store.parses if store is not None else None,
            processes=os.cpu_count() or 1,
            progress=Progress("parsing new files"),
            identity=identity,
        )
        if store is not None and memo.fresh:
            keep_load(store, memo, directory, identity)  # for the next build
        content = release(loaded, datetime.now(UTC))
        stamp = None if store is None else lambda etags: store.stamps.last_modified(etags, content.version, lambda: True)
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
_RESERVED_DESCRIPTORS = 128  # files, the state database, inotify, the worker's pipes


def raise_descriptor_limit() -> int:
    """Raise this process's soft file-descriptor limit as far as the system lets it (inherited by the workers); return it.

    Linux caps it at the hard limit; macOS reports an unlimited hard limit but refuses more than
    kern.maxfilesperproc (10,240 by default) and starts programs at 256: each smaller step is tried.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return soft
    steps = [hard] if hard != resource.RLIM_INFINITY else []
    steps += [step for step in (1 << 20, 65_536, 24_576, 10_240, 4_096, 1_024) if hard == resource.RLIM_INFINITY or step < hard]
    for wanted in steps:
        if wanted <= soft:
            break
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return wanted
        except (ValueError, OSError):  # above the kernel's nr_open, or macOS's per-process cap: a smaller step
            continue
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


def _base_url_for(port: int) -> str:
    """The public URL of a site whose site file names none, served on ``port`` of this machine."""
    return f"http://127.0.0.1:{port}"


def _port_taken(host: str, port: int) -> bool:
    """Tell whether another server holds ``host:port`` (granian binds with SO_REUSEPORT, so a second one would share it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def _check(content: str, store: Store, config: dict) -> dict | None:
    """Load and check the folder as a worker starts on it, on every core; keep what the workers start from. None: invalid.

    Parsed into the state, where the workers find it: they start without parsing. Bodies without
    pictures cannot be wrong: checked by their front matter, they are rendered once serving. The
    hot documents and the version are kept as a worker keeps them, so the workers answer at once.
    """
    try:
        publisher = Publisher(
            content,
            site_overrides(config),
            config["HUB_URL"],
            store,
            identity=build_identity(),
            processes=os.cpu_count() or 1,
            defer_bodies=True,
            progress=Progress("parsing new files"),
        )
    except ContentError as error:
        _report(content, error.problems)
        return None
    publisher.stop()  # not serving: it leaves the workers' ledger
    return {"entries": len(publisher.current.content.entries)}


def serve(args: argparse.Namespace) -> int:
    """Run the production server (granian, WSGI) on the content, or its last good version when the state kept one."""
    _keep_standard_streams_open()
    # absolute, not resolved: a `current -> releases/N` symlink is followed again on every reload
    os.environ["FEEDSVC_CONTENT_DIR"] = str(Path(args.content).absolute())
    os.environ.pop("FLASK_DEBUG", None)  # debug mode is for `flask run`, never for serve
    try:
        config = {**DEFAULTS, **config_from_env()}
    except ConfigError as error:
        _say(f"environment: {error}", sys.stderr)
        return 1
    if _port_taken(args.host, args.port):
        _say(f"environment: {args.host}:{args.port} is in use by another server; stop it or choose another --port", sys.stderr)
        return 1
    if config["BASE_URL"] is None and args.port != 8000 and _names_no_base_url(args.content):
        # nobody configured a public URL: links point at this local server (set before the state's namespace is named)
        os.environ["FEEDSVC_BASE_URL"] = config["BASE_URL"] = _base_url_for(args.port)
    directory = config["CONTENT_DIR"]
    state_dir = config["STATE_DIR"] or default_state_dir(directory)
    store = Store(state_dir, namespace_of(directory, namespace_settings(config)))
    descriptors = raise_descriptor_limit()
    max_connections = args.max_connections or max(1, min(MAX_CONNECTIONS, descriptors - _RESERVED_DESCRIPTORS))
    if max_connections > descriptors - _RESERVED_DESCRIPTORS:
        _say(
            f"environment: --max-connections {max_connections} needs more than the {descriptors} file descriptors allowed (ulimit -n)",
            sys.stderr,
        )
        return 1
    kept = store.kept.version()
    if kept is not None and kept[1] == build_identity():
        _say(f"{args.content}: the state keeps version {kept[0]} of this folder: the workers start at once and look at every file")
        served = "its content"
    else:  # a first start, an upgrade, other settings: refuse to start on invalid content
        checked = _check(args.content, store, config)
        if checked is None:
            return 1
        served = f"{checked['entries']} entries"
    if store.problem is not None:
        _say(f"{store.problem} (Last-Modified times and fast restarts wait until it can)", sys.stderr)
    _say(
        f"feedsvc: serving {served} on http://{args.host}:{args.port}/ with {args.workers} worker(s), "
        f"up to {max_connections} connections each, idle timeout {args.timeout:g} s, HTTP/2 {'on' if args.http2 else 'off'}"
    )
    os.execv(sys.executable, granian_command(args, max_connections))
    return 0  # not reached


def _names_no_base_url(content: str) -> bool:
    """Tell whether the site file leaves the public URL to its default (a broken site file is the check's to report)."""
    site = load_site(Path(content), {})
    return site is not None and site.base_url == SITE_DEFAULTS["base_url"]


def build(args: argparse.Namespace) -> int:
    """Write a static export of every document (byte-identical to what the service serves)."""
    try:
        config = {**DEFAULTS, **config_from_env(), "CONTENT_DIR": args.content}
    except ConfigError as error:
        print(f"environment: {error}", file=sys.stderr)
        return 1
    namespace = namespace_of(args.content, namespace_settings(config))
    store = Store(config["STATE_DIR"] or default_state_dir(args.content), namespace, role="build")
    publication = _load(args.content, store, render_all=False)  # the export renders every document, once
    if publication is None:
        return 1  # nothing written: a previous export stays as it was
    try:
        count = export_publication(publication, args.out, Progress("writing documents"), store, os.cpu_count() or 1)
    except ContentError as error:  # a document that cannot be rendered: named, and the previous export kept
        _report(args.content, error.problems)
        return 1
    except OSError as error:  # the export's own folder: unwritable, a full disk
        _report(args.content, [Problem("(build)", args.out, f"cannot be written ({error.strerror or error})")])
        return 1
    content = publication.content
    print(f"{args.out}: {count} documents from {len(content.entries)} entries (version {content.version})")
    if content.site.base_url == SITE_DEFAULTS["base_url"]:
        _say(
            f"build: every link points at {content.site.base_url}, a preview on this machine: set base_url in site.yaml "
            "(or FEEDSVC_BASE_URL) to the address readers use",
            sys.stderr,
        )
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
        content = release(load_content(args.content, site_overrides(config)), datetime.now(UTC))
    except ConfigError as error:
        print(f"environment: {error}", file=sys.stderr)
        return 1
    except ContentError as error:
        _report(args.content, error.problems)
        return 1
    sys.stdout.write(static_site_config(content.site, config.get("HUB_URL"), redirects_of(content)))
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
