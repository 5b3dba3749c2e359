"""feedsvc: publish a site's Markdown content as RSS, Atom and JSON Feed, plus HTML pages.

Glossary (one word per concept):
- content: the folder of source files (site.yaml, posts/*.md) and its parsed, validated value;
  its version is a digest of the files.
- entry: one article or post; section: a named group of entries; tag: a free-form label an entry
  carries (its slug names its pages and feeds); draft: an entry published nowhere; scheduled: an
  entry dated later than now, published at its time (``models.release``).
- image: an entry's picture; media: the content folder's image files, served content-hashed.
- document: one URL's bytes (a page, a feed, an asset); a representation is a document ready to
  serve (identity and gzip variants, ETags, headers).
- publication: every document of one content version; the publisher owns the live one and
  replaces it on edits.
- stamp: the Last-Modified a document's bytes get from the store (when they last changed).
- store: the durable state in FEEDSVC_STATE_DIR, shared by all workers.
- subscription feed: a feed readers subscribe to (the site's, a section's); archive document:
  an RFC 5005 page of older entries.
- ping: a WebSub publish notification to the hub; announced: what the hub was last told.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from . import views
from .config import DEFAULTS, config_from_env, site_overrides
from .fastpath import FastPath
from .publisher import Publisher, hot_set_key
from .store import Store, default_state_dir
from .warmstart import WarmStart, usable_hot_set
from .websub import HubNotifier


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app: configuration, content (refusing invalid content), views, fast path."""
    app = Flask(__name__, static_folder=None)  # assets are served hashed, from the Publication
    app.config.from_mapping(DEFAULTS)
    app.config.update(config_from_env())
    if test_config is not None:
        app.config.update(test_config)

    hub_url = app.config["HUB_URL"]
    store = Store(app.config["STATE_DIR"] or default_state_dir(app.config["CONTENT_DIR"]), clock=app.config["CLOCK"])
    notifier = HubNotifier(hub_url, store) if hub_url else None
    app.extensions["feedsvc.websub"] = notifier
    app.register_blueprint(views.bp)
    app.register_error_handler(404, views.not_found)
    app.register_error_handler(500, views.server_error)
    key = hot_set_key(app.config)
    flask_wsgi = app.wsgi_app

    def start() -> Callable:
        publisher = Publisher(
            app.config["CONTENT_DIR"],
            site_overrides(app.config),
            hub_url,
            store,
            notifier.on_new_version if notifier else None,
            clock=app.config["CLOCK"],
            watch_every=app.config["RELOAD_INTERVAL"] or None,
            checked_scan=app.config.get("CHECKED_SCAN"),
            hot_set_key=key,
        )
        app.extensions["feedsvc"] = publisher
        return FastPath(flask_wsgi, publisher) if app.config["FAST_PATH"] else flask_wsgi

    # `serve` restarted on a kept hot set: answer with it while the publisher starts (warmstart.py)
    hot = usable_hot_set(store, key, app.config["CLOCK"]) if app.config.get("WARM_START") == key else None
    if hot is None:
        app.wsgi_app = start()
    else:
        if notifier is not None:
            notifier.serves(hot.version, hot.topics)
        app.extensions["feedsvc.start"] = app.wsgi_app = WarmStart(hot, start, Path(app.config["CONTENT_DIR"]))
    return app
