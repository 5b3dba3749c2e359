"""The WSGI entry point for production servers: ``feedsvc.wsgi:app`` (configured by FEEDSVC_*)."""

import logging
import os

from . import create_app
from .publisher import CHECKED_SCAN_VARIABLE, WARM_START_VARIABLE, recent_handover

if not logging.getLogger().handlers:  # the server configured nothing: reloads and content problems go to stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it reports every file event at INFO
logging.raiseExceptions = False  # a full or closed stderr drops log lines; it never disturbs serving

# never the debugger in production, whatever FLASK_DEBUG says; `serve` tells its workers what its check just saw,
# or that they may answer from the hot set the last run kept while they start
flask_app = create_app(
    {
        "DEBUG": False,
        "CHECKED_SCAN": recent_handover(os.environ.get(CHECKED_SCAN_VARIABLE)),
        "WARM_START": recent_handover(os.environ.get(WARM_START_VARIABLE)),
    }
)
# The server calls the fast path (or the warm start before it) directly: Flask.__call__ would only forward to it.
app = flask_app.wsgi_app
