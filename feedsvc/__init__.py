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
  replaces it on edits (``live``).
- build identity: a digest of the code that makes bytes (``identity``); every cache is keyed by it.
- state: the state folder (FEEDSVC_STATE_DIR), a disposable accelerator shared by all workers
  (``state``); a store is the state as one namespace sees it; namespace: a content folder with the
  settings that change its bytes.
- stamp: the Last-Modified a document's bytes get from the state (when they last changed).
- kept version: a namespace's last good version, which a worker starting on a broken folder serves.
- hot set: the documents a version serves from memory, kept for the next start to answer at once.
- subscription feed: a feed readers subscribe to (the site's, a section's, a tag's); archive
  document: an RFC 5005 page of older entries.
- ping: a WebSub publish notification to the hub; told: what the hub accepted last.

Layout: ``source/`` reads the folder, ``models``/``feeds``/``pages``/``publication`` render,
``state/`` keeps what makes things faster, ``live/`` follows the folder, ``web/`` answers HTTP,
``startup`` starts a worker, ``urls`` names every path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from .config import DEFAULTS, config_from_env, namespace_settings, site_overrides
from .identity import build_identity
from .live.publisher import Publisher
from .problems import BodyUnavailableError
from .startup import Starting, stop_at_exit, usable_hot_set
from .state import Store, default_state_dir, namespace_of
from .web import views
from .web.fastpath import FastPath
from .websub import HubNotifier


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the app: configuration, the state, the publisher (or its start), views and the fast path."""
    app = Flask(__name__, static_folder=None)  # assets are served hashed, from the Publication
    app.config.from_mapping(DEFAULTS)
    app.config.update(config_from_env())
    if test_config is not None:
        app.config.update(test_config)
    config = app.config
    content_dir = config["CONTENT_DIR"]
    identity = config["BUILD_IDENTITY"] or build_identity()
    namespace = namespace_of(content_dir, namespace_settings(config))
    store = Store(config["STATE_DIR"] or default_state_dir(content_dir), namespace, clock=config["CLOCK"])
    notifier = HubNotifier(config["HUB_URL"], store) if config["HUB_URL"] else None
    app.extensions["feedsvc.state"] = store
    app.extensions["feedsvc.websub"] = notifier
    app.register_blueprint(views.bp)
    app.register_error_handler(404, views.not_found)
    app.register_error_handler(500, views.server_error)
    app.register_error_handler(BodyUnavailableError, views.unavailable)
    flask_wsgi = app.wsgi_app

    def start():
        publisher = Publisher(
            content_dir,
            site_overrides(config),
            config["HUB_URL"],
            store,
            notifier.queue_all if notifier is not None else None,
            clock=config["CLOCK"],
            watch_every=config["RELOAD_INTERVAL"] or None,
            identity=identity,
        )
        app.extensions["feedsvc"] = publisher
        return FastPath(flask_wsgi, publisher) if config["FAST_PATH"] else flask_wsgi

    if not config["START_IN_BACKGROUND"]:
        app.wsgi_app = start()
        return app
    # a worker of `serve`: it answers at once with what the state kept while the publisher starts (startup.py)
    hot = usable_hot_set(store, identity, config["CLOCK"])
    app.extensions["feedsvc.start"] = app.wsgi_app = Starting(hot, start, content_dir, store)
    stop_at_exit(lambda: app.extensions.get("feedsvc"))
    return app
