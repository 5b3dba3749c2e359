"""The WSGI entry point for production servers: ``feedsvc.wsgi:app`` (configured by FEEDSVC_*)."""

from . import create_app

flask_app = create_app({"DEBUG": False})  # never the debugger in production, whatever FLASK_DEBUG says
# The server calls the fast path directly: Flask.__call__ would only forward to it.
app = flask_app.wsgi_app
