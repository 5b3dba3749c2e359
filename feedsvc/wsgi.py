"""The WSGI entry point for production servers: ``feedsvc.wsgi:app`` (configured by FEEDSVC_*)."""

import logging

from . import create_app

if not logging.getLogger().handlers:  # the server configured nothing: reloads and content problems go to stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it reports every file event at INFO
logging.raiseExceptions = False  # a full or closed stderr drops log lines; it never disturbs serving

# never the debugger in production, whatever FLASK_DEBUG says; the publisher starts in the background, so a
# worker answers at once with what the state kept, whenever it starts (startup.py)
flask_app = create_app({"DEBUG": False, "START_IN_BACKGROUND": True})
# The server calls the fast path (or the start before it) directly: Flask.__call__ would only forward to it.
app = flask_app.wsgi_app
