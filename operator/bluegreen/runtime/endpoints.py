"""The operator's own HTTP endpoints: ``/metrics``, readiness, and a standby's liveness.

They run in a thread of their own from the start of the process, before the leader lease
is taken, so a standby is scraped and probed like the leader. (Kopf serves the leader's
liveness endpoint itself; a standby runs no Kopf yet, so :func:`serve` answers for it.)

Readiness says whether this replica does its job: a standby is ready (it is healthy and
can take over; see deploy/README.md for why it must count as ready); a leader is ready
once every watch it runs has delivered its initial listing, so it reconciles from a full
picture of the cluster; a replica shutting down is not.
"""

from __future__ import annotations

import contextlib
import email.message
import http.server
import logging
import threading
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

# A request's headers (case-insensitive), as http.server gives them.
Headers = email.message.Message
# (status, content type, body) for one GET.
Answer = tuple[int, str, bytes]
Route = Callable[[Headers], Answer]  # the request's headers -> the answer
TEXT = "text/plain; charset=utf-8"


class Readiness:
    """What this replica is doing, for the readiness endpoint; any thread may ask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._role = "starting"
        self._watches: dict[str, bool] = {}  # watch -> listed once

    def standby(self, lease: str) -> None:
        with self._lock:
            self._role = f"standby: waiting for lease {lease}"

    def leading(self) -> None:
        with self._lock:
            self._role = "leading"

    def stopping(self) -> None:
        with self._lock:
            self._role = "stopping"

    def watch_started(self, watch: str) -> None:
        with self._lock:
            self._watches.setdefault(watch, False)

    def watch_listed(self, watch: str) -> None:
        with self._lock:
            self._watches[watch] = True

    def state(self) -> tuple[bool, str]:
        """Ready or not, and why, in a line."""
        with self._lock:
            role, watches = self._role, dict(self._watches)
        if role != "leading":
            return role.startswith("standby"), role
        if not watches:
            return False, "leading: the watches have not started yet"
        unlisted = sorted(w for w, listed in watches.items() if not listed)
        if unlisted:
            return False, f"leading: waiting for the initial listing of {', '.join(unlisted)}"
        return True, f"leading: {len(watches)} watches listed"

    def answer(self, _headers: Headers) -> Answer:
        ready, why = self.state()
        return (200 if ready else 503), TEXT, f"{why}\n".encode()


def alive(_headers: Headers) -> Answer:
    return 200, TEXT, b"alive\n"


def follow_kopf_listings(readiness: Readiness) -> None:
    """Tell ``readiness`` when each of Kopf's watches starts and ends its initial listing.

    Kopf keeps that to itself (it marks the end of a listing in its watch stream, for its
    indexes), so its stream function is wrapped: Kopf is pinned, and a unit test fails
    should the stream ever stop marking listings.
    """
    from kopf._cogs.clients import watching  # Kopf's internals, on purpose (see above)

    original = watching.infinite_watch
    if getattr(original, "_follows_listings", False):
        return

    def infinite_watch(**kwargs: Any) -> AsyncIterator[Any]:
        namespace = kwargs.get("namespace")
        watch = f"{kwargs['resource'].plural} in {namespace or 'all namespaces'}"
        readiness.watch_started(watch)
        return _listed(original(**kwargs), watch)

    async def _listed(stream: AsyncIterator[Any], watch: str) -> AsyncIterator[Any]:
        async for item in stream:
            if item is watching.Bookmark.LISTED:
                readiness.watch_listed(watch)
            yield item

    infinite_watch._follows_listings = True  # type: ignore[attr-defined]
    watching.infinite_watch = infinite_watch


# -------------------------------------------------------------------- the server


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``:PORT`` (all interfaces); ValueError names what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def url_address(url: str) -> tuple[tuple[str, int], str]:
    """``http://HOST:PORT/PATH`` as ((host, port), path)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.port:
        raise ValueError(f"{url!r} is not http://HOST:PORT/PATH")
    return (parts.hostname or "", parts.port), parts.path or "/"


class Server:
    """One HTTP server per address, each in a daemon thread, answering GET by path."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, int], dict[str, Route]] = {}
        self._servers: list[http.server.ThreadingHTTPServer] = []

    def route(self, address: tuple[str, int], path: str, answer: Route) -> None:
        self._routes.setdefault(address, {})[path] = answer

    def ports(self) -> set[int]:
        return {port for _, port in self._routes}

    def start(self) -> None:
        for (host, port), routes in self._routes.items():
            server = http.server.ThreadingHTTPServer((host, port), _handler(routes))
            server.daemon_threads = True
            self._servers.append(server)
            name = f"http-{host or '*'}:{port}"
            threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
            log.info("serving %s on %s:%d", ", ".join(sorted(routes)), host or "*", port)

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()


@contextlib.contextmanager
def serving(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _handler(routes: Mapping[str, Route]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            route = routes.get(urllib.parse.urlsplit(self.path).path)
            status, content_type, body = (
                route(self.headers) if route else (404, TEXT, b"not found\n")
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass  # probes and scrapes every few seconds would drown the log

    return Handler
