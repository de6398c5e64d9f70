"""``kubectl bluegreen dashboard``: a live web view of the apps, served on 127.0.0.1.

Three watches (the apps, their Deployments, the Events on apps) fill a :class:`Follower`,
with the user's own kubeconfig: RBAC and admission apply exactly as to kubectl, and
nothing is installed in the cluster. Each change bumps a version; every open page holds
one server-sent-events stream and gets the whole page model again after each change (a
burst coalesced), so the browser never polls and neither does the server: each watch
holds one request open, and lists again only when it ends or expired.

When a watch fails (the API server is gone, a connection reset), the page model says
``connected: false`` with the error at once, the data stays on screen marked as stale, and
the watch lists again every few seconds until the API server answers.

The server is the standard library's (one thread per request). It answers only on
127.0.0.1, only to a Host of 127.0.0.1 or localhost (no DNS rebinding), and only to a
browser that came through the URL printed at start: its random token becomes a
SameSite=Strict cookie, so neither another local user without the URL nor another site
(cross-site requests carry no such cookie) can read the apps or act as you.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from importlib import resources
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from bluegreen.core.clock import format_time
from bluegreen.core.objects import Obj
from bluegreen.plugin import actions, board
from bluegreen.plugin.client import FOLLOWED, PluginClient, WatchExpired
from bluegreen.plugin.view import PluginError, dig

DEFAULT_PORT = 3110
HOST = "127.0.0.1"
COOKIE = "bluegreen-dashboard"  # and the port: browsers share cookies across ports
WATCH_SECONDS = 60  # each watch request; then it resumes from where it was
RETRY_SECONDS = (1.0, 2.0, 3.0)  # after a failure: the first retries, then every 3 s
KEEPALIVE_SECONDS = 15.0  # a comment on each idle stream: the browser sees a dead server
COALESCE_SECONDS = 0.05  # a burst of watch events goes out as one update
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
}


# --- What the watches hold -------------------------------------------------------------------


@dataclass
class Follower:
    """What the watches delivered, by kind and (namespace, name), and whether each is
    connected. Every change bumps ``version`` and wakes the streams waiting for it."""

    namespace: str | None
    objects: dict[str, dict[board.Key, Obj]] = field(
        default_factory=lambda: {kind: {} for kind in FOLLOWED}
    )
    errors: dict[str, str] = field(default_factory=dict)
    listed: set[str] = field(default_factory=set)
    since: str | None = None  # when the connection was lost
    version: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def replace(self, kind: str, items: list[Obj]) -> None:
        with self.changed:
            self.objects[kind] = {board.key_of(item): item for item in items}
            self.listed.add(kind)
            self.errors.pop(kind, None)
            if not self.errors:
                self.since = None
            self._bump()

    def apply(self, kind: str, type_: str, obj: Obj) -> None:
        with self.changed:
            if type_ == "DELETED":
                self.objects[kind].pop(board.key_of(obj), None)
            else:
                self.objects[kind][board.key_of(obj)] = obj
            self._bump()

    def lost(self, kind: str, error: str, now: datetime) -> None:
        with self.changed:
            if self.errors.get(kind) == error:
                return
            self.errors[kind] = error
            self.since = self.since or format_time(now)
            self._bump()

    def _bump(self) -> None:
        self.version += 1
        self.changed.notify_all()

    def wait_newer(self, version: int, timeout: float) -> int:
        with self.changed:
            self.changed.wait_for(lambda: self.version != version, timeout=timeout)
            return self.version

    def model(self, now: datetime) -> Obj:
        """The page's model: the apps' cards and the connection to the API server."""
        with self.changed:
            apps = list(self.objects["apps"].values())
            deployments = dict(self.objects["deployments"])
            events = list(self.objects["events"].values())
            errors = dict(self.errors)
            listed = set(self.listed)
            since = self.since
        return {
            "namespace": self.namespace,
            "now": format_time(now),
            "connected": not errors and listed >= set(FOLLOWED),
            "loading": not errors and not listed >= set(FOLLOWED),
            "error": next(iter(errors.values()), None),
            "disconnectedSince": since,
            "apps": board.page(apps, deployments, events, now=now),
        }


def follow(kube: PluginClient, follower: Follower, kind: str, stop: threading.Event) -> None:
    """List, then watch from the list's resourceVersion, resuming after each watch ends;
    list again after a 410; after any failure, say so and list again a little later."""
    failures = 0
    while not stop.is_set():
        try:
            items, version = kube.list_followed(kind, follower.namespace)
            follower.replace(kind, items)
            failures = 0
            while not stop.is_set():
                for type_, obj in kube.watch_followed(
                    kind, follower.namespace, version, seconds=WATCH_SECONDS
                ):
                    version = str(dig(obj, "metadata", "resourceVersion") or version)
                    if type_ != "BOOKMARK":
                        follower.apply(kind, type_, obj)
        except WatchExpired:
            continue
        except PluginError as error:
            follower.lost(kind, str(error), datetime.now(UTC))
            stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
            failures += 1


# --- The web server --------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    kube: PluginClient
    follower: Follower
    token: str
    port: int
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


class Handler(http.server.BaseHTTPRequestHandler):
    site: Site  # set on the subclass serve() makes
    protocol_version = "HTTP/1.1"
    server_version = "kubectl-bluegreen-dashboard"

    def do_GET(self) -> None:
        if not self._allowed_host():
            return
        url = urlsplit(self.path)
        token = parse_qs(url.query).get("token", [""])[0]
        if url.path == "/" and secrets.compare_digest(token, self.site.token):
            # The URL's token becomes the cookie; the address bar drops it.
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header(
                "Set-Cookie",
                f"{self._cookie()}={self.site.token}; HttpOnly; SameSite=Strict; Path=/",
            )
            self.send_header("Location", "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self._signed_in():
            return
        if url.path in STATIC:
            self._static(*STATIC[url.path])
        elif url.path == "/api/state":
            self._json(HTTPStatus.OK, self.site.follower.model(self.site.clock()))
        elif url.path == "/api/stream":
            self._stream()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

    def do_POST(self) -> None:
        """``/api/apps/<namespace>/<name>/<promote|rollback|retry>`` with ``{"force": bool}``."""
        if not self._allowed_host() or not self._signed_in():
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self._own_origins():
            self._json(HTTPStatus.FORBIDDEN, {"error": f"requests from {origin} are refused"})
            return
        if self.headers.get_content_type() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send application/json"})
            return
        parts = urlsplit(self.path).path.strip("/").split("/")
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            body = None
        if len(parts) != 5 or parts[:2] != ["api", "apps"] or not isinstance(body, dict):
            self._json(HTTPStatus.NOT_FOUND, {"error": "POST /api/apps/NAMESPACE/NAME/ACTION"})
            return
        status, answer = act(self.site, parts[2], parts[3], parts[4], force=body.get("force"))
        self._json(status, answer)

    # --- parts ---

    def _cookie(self) -> str:
        return f"{COOKIE}-{self.site.port}"

    def _own_origins(self) -> set[str]:
        return {f"http://{host}:{self.site.port}" for host in (HOST, "localhost")}

    def _allowed_host(self) -> bool:
        host = self.headers.get("Host", "")
        if host in {f"{name}:{self.site.port}" for name in (HOST, "localhost")}:
            return True
        self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": f"not served to host {host!r}"})
        return False

    def _signed_in(self) -> bool:
        cookies = self.headers.get("Cookie", "")
        for cookie in cookies.split(";"):
            name, _, value = cookie.strip().partition("=")
            if name == self._cookie() and secrets.compare_digest(value, self.site.token):
                return True
        self._json(
            HTTPStatus.UNAUTHORIZED,
            {"error": "open the URL that kubectl bluegreen dashboard printed (with its token)"},
        )
        return False

    def _static(self, name: str, content_type: str) -> None:
        data = resources.files("bluegreen.plugin").joinpath("static", name).read_bytes()
        self.send_response(HTTPStatus.OK)
        self._common_headers(content_type, len(data))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, status: HTTPStatus, answer: Obj) -> None:
        data = json.dumps(answer).encode()
        self.send_response(status)
        self._common_headers("application/json", len(data))
        self.end_headers()
        self.wfile.write(data)

    def _common_headers(self, content_type: str, length: int) -> None:
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        # Everything is served from here: no other origin is ever contacted.
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        )

    def _stream(self) -> None:
        """Server-sent events: the whole model now, then after every change; a comment
        when idle, so a browser notices a dead server and a server a gone browser."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        follower = self.site.follower
        try:
            self.wfile.write(b"retry: 2000\n\n")
            while True:
                version = follower.version  # read first: a change meanwhile is sent again
                data = json.dumps(follower.model(self.site.clock()), separators=(",", ":"))
                self.wfile.write(f"event: state\ndata: {data}\n\n".encode())
                self.wfile.flush()
                while follower.wait_newer(version, KEEPALIVE_SECONDS) == version:
                    self.wfile.write(b": keepalive\n\n")
                    self.wfile.flush()
                time.sleep(COALESCE_SECONDS)
        except (BrokenPipeError, ConnectionResetError):
            return

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the terminal shows the URL and errors, not every request."""


def act(
    site: Site, namespace: str, name: str, action: str, *, force: object
) -> tuple[HTTPStatus, Obj]:
    """Run one action for the page: what it did, or who refused and why."""
    if site.follower.namespace not in (None, namespace):
        return HTTPStatus.NOT_FOUND, {"error": f"namespace {namespace} is not on this dashboard"}
    run = {"promote": actions.promote, "rollback": actions.rollback, "retry": actions.retry}
    if action not in run:
        return HTTPStatus.NOT_FOUND, {"error": f"no action {action}: {', '.join(run)}"}
    try:
        done = run[action](site.kube, namespace, name, force=force is True)
    except actions.Refused as refusal:
        return HTTPStatus.CONFLICT, {"error": str(refusal), "refusedBy": "plugin"}
    except PluginError as error:
        return HTTPStatus.BAD_GATEWAY, {"error": str(error), "refusedBy": "api"}
    return HTTPStatus.OK, {"message": done.message, "warning": done.warning}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # open streams do not hold up Ctrl-C
    allow_reuse_address = True


def start(kube: PluginClient, namespace: str | None, *, port: int) -> tuple[Server, Site]:
    """The server (bound, not yet serving) and the watches, running in threads."""
    try:
        server = Server((HOST, port), Handler)
    except OSError as error:
        raise PluginError(f"cannot listen on {HOST}:{port}: {error.strerror}") from None
    follower = Follower(namespace)
    stop = threading.Event()
    for kind in FOLLOWED:
        threading.Thread(target=follow, args=(kube, follower, kind, stop), daemon=True).start()
    site = Site(kube, follower, secrets.token_urlsafe(24), server.server_address[1])
    server.RequestHandlerClass = type("SiteHandler", (Handler,), {"site": site})
    return server, site


def serve(
    kube: PluginClient, namespace: str | None, *, port: int, open_browser: bool, out: TextIO
) -> int:
    """Serve until Ctrl-C (then 0)."""
    server, site = start(kube, namespace, port=port)
    url = f"http://{HOST}:{site.port}/?token={site.token}"
    where = "all namespaces" if namespace is None else f'namespace "{namespace}"'
    print(f"Dashboard of {where} at {url}", file=out)
    print("It acts with your kubeconfig's identity. Ctrl-C stops it.", file=out, flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
