"""The WSGI entry point for production servers: ``feedsvc.wsgi:app`` (configured by FEEDSVC_*)."""

from . import create_app

app = create_app()
