"""A local HTTP receiver on 127.0.0.1 (a real socket): it records every request it is
sent, and can answer slowly, fail, or hang, like the destinations notifications go to."""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

NS, NAME = "shop", "web"
APP = {
    "apiVersion": "bluegreen.dev/v1alpha1",
    "kind": "BlueGreenApp",
    "metadata": {"name": NAME, "namespace": NS, "uid": "uid-1"},
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.status = 200
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(
                        Received(self.path, dict(self.headers), json.loads(raw or b"null"))
                    )
                time.sleep(receiver.delay)
                try:
                    self.send_response(receiver.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up (its timeout) or died meanwhile

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self, path: str | None = None) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received if path is None or r.path == path]


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


class Api:
    """The ConfigMap, the Secret and the app, by name; merge patches of its status."""

    def __init__(self, destinations: list[dict[str, Any]], secret: dict[str, str]) -> None:
        self.objects: dict[tuple[str, str, str], Any] = {
            ("ConfigMap", NS, "bluegreen-notifications"): {
                "data": {"destinations.yaml": yaml.safe_dump(destinations)}
            },
            ("Secret", NS, "bluegreen-notifications"): {
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
            },
        }
        self.status: dict[str, Any] = {}
        self.events: list[tuple[str, str, str]] = []

    def get(self, kind: str, namespace: str, name: str) -> Any:
        return copy.deepcopy(self.objects.get((kind, namespace, name)))

    def patch_app_status(self, namespace: str, name: str, patch: Any) -> Any:
        assert (namespace, name) == (NS, NAME)
        self.status = merge(self.status, patch)
        return {"status": self.status}

    def post_event(self, app: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def delivery(self, nid: str, dest: str) -> dict[str, Any]:
        return dict(
            self.status.get("notifications", {}).get(nid, {}).get("deliveries", {}).get(dest) or {}
        )
