"""Command line: ``python -m feedsvc check|serve|build``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import ConfigError, config_from_env, site_overrides
from .content import SITE_DEFAULTS, ContentError, load_content
from .export import export_publication
from .models import Content
from .publication import build_publication


def _load(directory: str) -> Content | None:
    """Load and validate content, printing every problem; None when there are any."""
    try:
        return load_content(directory, site_overrides(config_from_env()))
    except ContentError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        print(f"{len(error.problems)} problem(s) in {directory}", file=sys.stderr)
    except ConfigError as error:
        print(f"environment: {error}", file=sys.stderr)
    return None


def check(args: argparse.Namespace) -> int:
    """Validate a content folder: print FILE: FIELD: problem lines, exit 1 on any."""
    content = _load(args.content)
    if content is None:
        return 1
    print(f"{args.content}: {len(content.entries)} entries, no problems (version {content.version})")
    return 0


def serve(args: argparse.Namespace) -> int:
    """Run the production server (granian, WSGI) on validated content."""
    os.environ["FEEDSVC_CONTENT_DIR"] = str(Path(args.content).resolve())
    os.environ.pop("FLASK_DEBUG", None)  # debug mode is for `flask run`, never for serve
    content = _load(args.content)
    if content is None:
        return 1  # refuse to start: the messages above say what to fix
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
    content = _load(args.content)
    if content is None:
        return 1  # nothing written: a previous export stays as it was
    config = config_from_env()
    count = export_publication(build_publication(content, config.get("HUB_URL")), args.out)
    print(f"{args.out}: {count} documents from {len(content.entries)} entries (version {content.version})")
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

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
