"""The /healthz document: what a worker serves, and every problem with publishing it, in bounded size."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

HEALTH_PROBLEMS_SHOWN = 20  # /healthz lists this many problems (each of bounded length) and counts the rest


def health_report(problems: list[str], version: str, entries: int, last_load: datetime | None, bodies_to_render: int = 0) -> dict[str, Any]:
    """The /healthz document (bounded size): what is served, and every problem with publishing it.

    Problems start with what they concern: a content file (``posts/x.md: ...``), ``watcher:``,
    ``state:`` (the state folder: serving goes on without it) or ``starting:``.
    ``bodies_to_render``: bodies a start deferred and no worker rendered yet (an old page asked
    for meanwhile renders its own: slower, still served).
    """
    return {
        "status": "degraded" if problems else "ok",
        "content_version": version,
        "entries": entries,
        "last_successful_load": None if last_load is None else last_load.isoformat(),
        "problems": len(problems),
        "error": first_problems(problems) or None,
        "bodies_to_render": bodies_to_render,
    }


def first_problems(problems: list[str]) -> list[str]:
    """The first HEALTH_PROBLEMS_SHOWN problems, and how many more there are: a log line or /healthz of bounded size."""
    shown = problems[:HEALTH_PROBLEMS_SHOWN]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more (python -m feedsvc check lists them all)")
    return shown


def without_paths(problems: Iterable[str], *folders: str | os.PathLike) -> list[str]:
    """Problems with the content and state folders' own paths taken out (a file is named relative to its folder): a
    failure's message may carry them, and /healthz is public."""
    prefixes = sorted({form for folder in folders for form in (os.path.abspath(folder), os.path.realpath(folder))}, key=len, reverse=True)
    cleaned = []
    for problem in problems:
        for prefix in prefixes:
            problem = problem.replace(prefix + os.sep, "").replace(prefix, ".")
        cleaned.append(problem)
    return cleaned
