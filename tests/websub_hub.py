"""Run flask-websub's hub (listed in the W3C WebSub implementation reports) on loopback, for tests/test_websub_hub.py.

python tests/websub_hub.py PORT DATABASE

Celery runs its tasks eagerly (in the request), so a publish ping is answered once the hub has
fetched the topic and delivered it to every subscriber.
"""

from __future__ import annotations

import sys

import requests.utils
from celery import Celery
from flask import Flask
from flask_websub.hub import Hub, SQLite3HubStorage

# flask-websub forwards the topic's Content-Encoding and Content-Length with the decoded body:
# fetch topics uncompressed so deliveries are well-formed HTTP.
requests.utils.DEFAULT_ACCEPT_ENCODING = "identity"


def main() -> None:
    port, database = int(sys.argv[1]), sys.argv[2]
    app = Flask("websub-hub")
    app.config["PUBLISH_SUPPORTED"] = True  # accept hub.mode=publish pings
    celery = Celery("websub-hub", broker="memory://", backend="cache+memory://")
    celery.conf.task_always_eager = True
    hub = Hub(SQLite3HubStorage(database), celery, PUBLISH_SUPPORTED=True, REQUEST_TIMEOUT=10)
    app.register_blueprint(hub.build_blueprint(url_prefix="/hub"))
    app.run(host="127.0.0.1", port=port, threaded=True)


if __name__ == "__main__":
    main()
