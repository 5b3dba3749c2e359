"""The Python ceiling: a bare WSGI app answering with fixed bytes, no logic beyond picking a variant.

BENCH_BODY_DIR holds identity/gzip bodies and their headers, written by bench/run.py from the
live service, so this app returns exactly the bytes feedsvc returns.
"""

import json
import os
from pathlib import Path

_dir = Path(os.environ["BENCH_BODY_DIR"])
_meta = json.loads((_dir / "meta.json").read_text())
_identity = (_dir / "identity").read_bytes()
_gzip = (_dir / "gzip").read_bytes()
_identity_headers = [tuple(h) for h in _meta["identity"]]
_gzip_headers = [tuple(h) for h in _meta["gzip"]]
_not_modified_headers = [tuple(h) for h in _meta["not_modified"]]


def app(environ, start_response):
    if "HTTP_IF_NONE_MATCH" in environ:
        start_response("304 Not Modified", _not_modified_headers)
        return [b""]
    if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
        start_response("200 OK", _gzip_headers)
        return [_gzip]
    start_response("200 OK", _identity_headers)
    return [_identity]
