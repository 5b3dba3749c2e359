"""Problems with content: each names a file, a field and what to do; a ContentError carries all of them at once."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MESSAGE_LIMIT = 400  # characters of one problem message: a hostile value cannot make a megabyte of log or /healthz


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one file (each part of bounded length)."""

    file: str
    field: str
    message: str

    def __post_init__(self) -> None:
        for name, limit in (("file", 200), ("field", 80), ("message", MESSAGE_LIMIT)):
            value = getattr(self, name)
            if len(value) > limit:
                object.__setattr__(self, name, value[: limit - 1] + "\u2026")

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


class ContentError(Exception):
    """The content folder cannot be published; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem], retry_at: datetime | None = None):
        self.problems = tuple(problems)
        self.retry_at = retry_at  # the problems are over at this moment (a date that is in the future until then)
        super().__init__("\n".join(map(str, self.problems)))

    def __reduce__(self):  # raised in a worker process, it crosses back with its problems intact
        return ContentError, (list(self.problems), self.retry_at)


_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict = 2, 4, 4
_QUOTE.maxstring = _QUOTE.maxother = 80
_QUOTE.maxlong = 40


def quote(value: Any) -> str:
    """Quote a value for a message by its first ~80 characters, whatever its size or nesting."""
    text = _QUOTE.repr(value)
    return text if len(text) <= 100 else text[:99] + "\u2026"


class StaleBuildError(Exception):
    """The content folder changed while a version was being built: a newer build follows (the version is not served)."""


class BodyUnavailableError(LookupError):
    """An entry's body is neither in the state's cache nor renderable from its file (changed since): a newer version is on its way."""
