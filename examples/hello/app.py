"""hello: the example app for BlueGreenApp. It says which version (and which pod) answered.

Run locally with `VERSION=dev python app.py`; the image runs it under gunicorn.
"""

from __future__ import annotations

import os
import socket

from flask import Flask

app = Flask(__name__)

# Read once: a pod's version never changes, a new version is a new pod.
VERSION = os.environ.get("VERSION", "dev")
POD = socket.gethostname()


@app.get("/")
def hello() -> str:
    return f"Hello from version {VERSION} (pod {POD})\n"


@app.get("/healthz")
def healthz() -> str:
    """The readiness probe: ready as soon as the process serves requests."""
    return "ok\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "5000")))
