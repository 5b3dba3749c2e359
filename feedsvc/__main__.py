"""Command line: ``python -m feedsvc check|serve|build|nginx-config``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import ConfigError, config_from_env, site_overrides
from .content import SITE_DEFAULTS, ContentError, Problem, load_content, shorten
from .export import export_publication
from .nginx import static_site_config
from .publication import Publication, build_publication
from .store import StateError, Store, default_state_dir
from .websub import HubNotifier


def _load(directory: str, store: Store | None = None) -> Publication | None:
    """Load, validate and render content exactly as the service does, printing every problem; None when there are any.

    Every document is rendered, archive pages too, so whatever ``check`` accepts, ``serve`` serves.
    """
    try:
        config = config_from_env()
        content = load_content(directory, site_overrides(config))
        stamp = None if store is None else lambda etags: store.last_modified(etags, content.version, lambda: True)
        publication = build_publication(content, config.get("HUB_URL"), stamp=stamp)
        for path in sorted(publication.paths()):
            publication.document(path)
        return publication
    except ContentError as error:
        problems = error.problems
    except ConfigError as error:
        print(f"environment: {error}", file=sys.stderr)
        return None
    except Exception as error:  # a library choking on odd input: still one line naming what failed
        problems = (Problem("(build)", type(error).__name__, shorten(str(error) or "failed", 200)),)
    _report(directory, problems)
    return None


def _report(directory: str, problems) -> None:
    """Print every problem as FILE: FIELD: message, the file as a path that opens from where the command ran."""
    for problem in problems:
        where = problem.file if problem.file in ("environment", "(build)") else Path(directory, problem.file)
        print(f"{where}: {problem.field}: {problem.message}", file=sys.stderr)
    print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)


def check(args: argparse.Namespace) -> int:
    """Validate a content folder: print FILE: FIELD: problem lines (files relative to the folder), exit 1 on any."""
    publication = _load(args.content)
    if publication is None:
        return 1
    content = publication.content
    print(f"{args.content}: {len(content.entries)} entries, {len(publication.paths())} documents, no problems (version {content.version})")
    return 0


def serve(args: argparse.Namespace) -> int:
    """Run the production server (granian, WSGI) on validated content."""
    # absolute, not resolved: a `current -> releases/N` symlink keeps working (and keeps its state)
    os.environ["FEEDSVC_CONTENT_DIR"] = str(Path(args.content).absolute())
    os.environ.pop("FLASK_DEBUG", None)  # debug mode is for `flask run`, never for serve
    try:
        Store(config_from_env().get("STATE_DIR") or default_state_dir(args.content))
    except (ConfigError, StateError) as error:
        print(f"environment: {error}", file=sys.stderr)
        return 1
    publication = _load(args.content)
    if publication is None:
        return 1  # refuse to start: the messages above say what to fix
    content = publication.content
    if content.site.base_url == SITE_DEFAULTS["base_url"] and args.port != 8000:
        # nobody configured a public URL: make links point at this local server
        os.environ["FEEDSVC_BASE_URL"] = f"http://127.0.0.1:{args.port}"
    command = [
        sys.executable, "-m", "granian",
        "--interface", "wsgi",
        "--host", args.host,
        "--port", str(args.port),
        "--workers", str(args.workers),
        "--respawn-failed-workers",  # a crashed worker is replaced
        "--blocking-threads", "2",  # requests never block on I/O: two threads keep the GIL busy
        "--no-ws",
        "--log-level", "warning",
        "feedsvc.wsgi:app",
    ]  # fmt: skip
    print(f"feedsvc: serving {len(content.entries)} entries on http://{args.host}:{args.port}/ with {args.workers} worker(s)", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


def build(args: argparse.Namespace) -> int:
    """Write a static export of every document (byte-identical to what the service serves)."""
    try:
        config = config_from_env()
        store = Store(config.get("STATE_DIR") or default_state_dir(args.content))
    except (ConfigError, StateError) as error:
        print(f"environment: {error}", file=sys.stderr)
        return 1
    publication = _load(args.content, store)
    if publication is None:
        return 1  # nothing written: a previous export stays as it was
    count = export_publication(publication, args.out)
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


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run a subcommand."""
    parser = argparse.ArgumentParser(prog="python -m feedsvc", description="Publish Markdown content as RSS, Atom and JSON Feed.")
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
