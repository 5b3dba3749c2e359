"""The WSGI entry point for production servers: ``feedsvc.wsgi:app`` (configured by FEEDSVC_*)."""

import logging

from . import create_app

if not logging.getLogger().handlers:  # the server configured nothing: reloads and content problems go to stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it reports every file event at INFO
logging.raiseExceptions = False  # a full or closed stderr drops log lines; it never disturbs serving

flask_app = create_app({"DEBUG": False})  # never the debugger in production, whatever FLASK_DEBUG says
# The server calls the fast path directly: Flask.__call__ would only forward to it.
app = flask_app.wsgi_app
