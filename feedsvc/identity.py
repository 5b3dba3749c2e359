"""The build identity: one digest of everything besides the content and the settings that decides what feedsvc serves.

Every cache in the state folder (parses, rendered bodies, the kept load, the hot set, the last
good version) and every export input key is keyed by it, so an upgrade of feedsvc, of a library
that writes or checks bytes, of Python or of zlib turns old entries into misses: nothing made by
other code is ever served or trusted. There is no version number to remember to bump.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import unicodedata
import zlib
from importlib import metadata, resources

# Installed distributions whose version can change a document's bytes or what is accepted as valid:
# the web stack's templates and escaping, feed and XML writers, the Markdown renderer and its
# plugins, image reading, YAML and date parsing, and the time-zone rules naive dates are read in.
DISTRIBUTIONS = (
    "feedgen",
    "flask",
    "jinja2",
    "lxml",
    "markdown-it-py",
    "markupsafe",
    "mdit-py-plugins",
    "pillow",
    "python-dateutil",
    "pyyaml",
    "tzdata",
    "werkzeug",
)
_PACKAGE_SUFFIXES = (".py", ".html", ".css", ".svg")


def _distribution(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _package_digest() -> str:
    """Digest of this package's own files (code, templates, assets), by name and bytes, in a fixed order."""
    digest = hashlib.sha256()
    pending = [resources.files("feedsvc")]
    while pending:
        for item in sorted(pending.pop().iterdir(), key=lambda i: i.name):
            if item.is_dir():
                if item.name != "__pycache__":
                    pending.append(item)
            elif item.name.endswith(_PACKAGE_SUFFIXES):
                digest.update(item.name.encode() + b"\0" + item.read_bytes())
    return digest.hexdigest()


def _system_time_zones() -> str | None:
    """The version of the system's time-zone database, which zoneinfo reads when tzdata is not installed."""
    try:
        with open("/usr/share/zoneinfo/tzdata.zi", encoding="ascii") as source:
            return source.readline().strip()
    except (OSError, UnicodeDecodeError):
        return None


def describe_build() -> dict:
    """Everything the build identity is made of, as plain values (``python -m feedsvc check`` shows the digest)."""
    import yaml  # the C libraries PyYAML and lxml run on read and write bytes too
    from lxml import etree

    libyaml = yaml._yaml.get_version_string() if getattr(yaml, "__with_libyaml__", False) else None
    return {
        "package": _package_digest(),
        "distributions": {name: _distribution(name) for name in DISTRIBUTIONS},
        "python": sys.version,
        "unicode": unicodedata.unidata_version,  # tag slugs, word boundaries
        # gzip bytes depend on the zlib the interpreter runs with (a system library on Debian)
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "libxml2": ".".join(map(str, etree.LIBXML_VERSION)),
        "libyaml": libyaml,
        "zoneinfo": _system_time_zones(),
    }


@functools.cache
def build_identity() -> str:
    """Return the build identity (32 hex digits), computed once per process (~20 ms)."""
    return hashlib.sha256(json.dumps(describe_build(), sort_keys=True).encode()).hexdigest()[:32]


def with_code(key: str) -> str:
    """Return a digest of ``key`` (what a document is made from) and the build identity (the code that makes it)."""
    return hashlib.sha256(f"{build_identity()}:{key}".encode()).hexdigest()
