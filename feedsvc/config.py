"""Configuration: defaults, overridden by FEEDSVC_* environment variables, overridden by the caller."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from typing import Any

from .models import is_absolute_http_url

DEFAULTS: dict[str, Any] = {
    "CONTENT_DIR": "content",
    # the state folder shared by all workers (state/): a disposable cache; None: one folder per content folder under
    # $XDG_STATE_HOME/feedsvc (~/.local/state/feedsvc)
    "STATE_DIR": None,
    # the file events of one save are grouped into one reload: events are collected until 50 ms
    # pass without one, for at most this many seconds; 0 turns live reloading off
    "RELOAD_INTERVAL": 0.3,
    # serve pre-built documents from a bare WSGI layer in front of Flask (see web/fastpath.py)
    "FAST_PATH": True,
    # site-file settings an operator may override per deployment (None: keep the site file's)
    "BASE_URL": None,
    "MAX_AGE": None,
    "ITEM_LIMIT": None,
    # WebSub hub to advertise and to notify of every change (None: no push)
    "HUB_URL": None,
    # wall clock for Last-Modified stamps (tests inject one; never from the environment)
    "CLOCK": time.time,
    # the build identity every cache is keyed by (None: this code's, identity.build_identity; tests simulate upgrades)
    "BUILD_IDENTITY": None,
    # start the publisher in the background, answering from the kept hot set meanwhile (the WSGI entry point's way)
    "START_IN_BACKGROUND": False,
}


def absolute_url(value: str) -> str:
    """Accept only an absolute http(s) URL."""
    if not is_absolute_http_url(value):
        raise ValueError(value)
    return value


def seconds(value: str) -> float:
    """Accept a finite, non-negative number of seconds."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(value)
    return number


_PARSERS = {
    "CONTENT_DIR": str,
    "STATE_DIR": str,
    "RELOAD_INTERVAL": seconds,
    "FAST_PATH": lambda value: value.strip().lower() not in ("0", "false", "no", "off", ""),
    "BASE_URL": absolute_url,
    "MAX_AGE": int,
    "ITEM_LIMIT": int,
    "HUB_URL": absolute_url,
}
# configuration key -> site-file field it overrides
SITE_OVERRIDES = {"BASE_URL": "base_url", "MAX_AGE": "max_age", "ITEM_LIMIT": "item_limit"}
# the settings that change a document's bytes besides the content: with the folder, they name a namespace of the state
NAMESPACE_SETTINGS = ("BASE_URL", "MAX_AGE", "ITEM_LIMIT", "HUB_URL")


class ConfigError(Exception):
    """An environment variable holds a value feedsvc cannot use."""


def config_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Read the FEEDSVC_* variables that are set, converted to their types."""
    config = {}
    for key, parse in _PARSERS.items():
        name = f"FEEDSVC_{key}"
        if name in environ:
            try:
                config[key] = parse(environ[name])
            except ValueError:
                kind = {absolute_url: "absolute http(s) URL", seconds: "number of seconds (0 or more)"}.get(parse, parse.__name__)
                raise ConfigError(f"{name}={environ[name]!r} is not a valid {kind}") from None
    return config


def site_overrides(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the site-file fields that configuration overrides, as raw values for the content loader."""
    return {field: config[key] for key, field in SITE_OVERRIDES.items() if config.get(key) is not None}


def namespace_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the settings that change bytes (NAMESPACE_SETTINGS), as configured (None: the site file decides)."""
    return {key: config.get(key) for key in NAMESPACE_SETTINGS}
