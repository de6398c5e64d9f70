"""Readiness, the endpoints' HTTP server, and the hook that sees Kopf's listings end."""

from __future__ import annotations

import asyncio
import inspect
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from kopf._cogs.clients import watching
from kopf._core.reactor import queueing

from bluegreen import __main__ as main
from bluegreen.runtime import endpoints, handlers
from bluegreen.runtime.leader import LeaseSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read().decode()


# ------------------------------------------------------------------ readiness


def test_a_standby_is_ready_and_says_it_stands_by() -> None:
    r = endpoints.Readiness()
    assert r.state()[0] is False  # starting: not ready before it knows its role
    r.standby("bluegreen-system/bluegreen-operator")
    assert r.state() == (True, "standby: waiting for lease bluegreen-system/bluegreen-operator")


def test_a_leader_is_ready_once_every_watch_has_listed() -> None:
    r = endpoints.Readiness()
    r.leading()
    assert r.state() == (False, "leading: the watches have not started yet")
    r.watch_started("deployments in shop")
    r.watch_started("services in shop")
    r.watch_listed("deployments in shop")
    assert r.state() == (False, "leading: waiting for the initial listing of services in shop")
    r.watch_listed("services in shop")
    assert r.state() == (True, "leading: 2 watches listed")
    r.watch_started("services in shop")  # a watch resumed later: listed once is enough
    assert r.state()[0] is True


def test_a_replica_stopping_is_not_ready() -> None:
    r = endpoints.Readiness()
    r.leading()
    r.watch_started("x")
    r.watch_listed("x")
    r.stopping()
    assert r.state() == (False, "stopping")


# ------------------------------------------------------------------ Kopf's listings


@pytest.fixture
def kopf_stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Kopf's stream function replaced by one that yields what the test lists."""
    items: list[Any] = []

    async def stream(**_: Any) -> AsyncIterator[Any]:
        for item in items:
            yield item

    monkeypatch.setattr(watching, "infinite_watch", stream)
    yield items


class Resource:
    plural = "deployments"


def test_the_end_of_a_kopf_listing_makes_the_leader_ready(kopf_stream: list[Any]) -> None:
    event = {"type": None, "object": {}}
    kopf_stream += [event, watching.Bookmark.LISTED, {"type": "ADDED", "object": {}}]
    r = endpoints.Readiness()
    r.leading()
    endpoints.follow_kopf_listings(r)
    endpoints.follow_kopf_listings(r)  # idempotent: wrapped once

    async def consume() -> list[Any]:
        stream = watching.infinite_watch(resource=Resource(), namespace="shop")
        assert r.state() == (
            False,
            "leading: waiting for the initial listing of deployments in shop",
        )
        return [item async for item in stream]

    assert asyncio.run(consume()) == kopf_stream  # passed through untouched
    assert r.state() == (True, "leading: 1 watches listed")


def test_kopf_still_marks_the_end_of_its_listings_where_we_look() -> None:
    """Kopf is pinned; should an upgrade move this, readiness would never come: fail here."""
    assert queueing.watching is watching
    assert "watching.infinite_watch(" in inspect.getsource(queueing.watcher)
    assert "raw_event is watching.Bookmark.LISTED" in inspect.getsource(queueing.watcher)
    assert "yield Bookmark.LISTED" in inspect.getsource(watching)


# ------------------------------------------------------------------ the server


def test_the_server_answers_each_route_and_404_elsewhere() -> None:
    port = free_port()
    r = endpoints.Readiness()
    r.standby("ns/lease")
    server = endpoints.Server()
    server.route(("127.0.0.1", port), "/readyz", r.answer)
    server.route(("127.0.0.1", port), "/healthz", endpoints.alive)
    with endpoints.serving(server):
        assert get(f"http://127.0.0.1:{port}/readyz") == (
            200,
            "standby: waiting for lease ns/lease\n",
        )
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, "alive\n")
        assert get(f"http://127.0.0.1:{port}/other")[0] == 404
        r.leading()
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 503


def test_metrics_and_readiness_share_one_server_when_they_share_an_address() -> None:
    port = free_port()
    args = main.parse_args(
        [f"--metrics-address=127.0.0.1:{port}", f"--readiness=http://127.0.0.1:{port}/readyz"]
    )
    r = endpoints.Readiness()
    r.standby("ns/lease")
    with endpoints.serving(main.http_server(args, r)):
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and "bluegreen_leader" in body
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200


@pytest.mark.parametrize(
    "argv",
    [
        ["--metrics-address=0.0.0.0:8080", "--liveness=http://0.0.0.0:8080/healthz"],
        ["--readiness=http://0.0.0.0:8080/r", "--liveness=http://0.0.0.0:8080/healthz"],
        ["--metrics-address=8081"],
        ["--metrics-address=host:http"],
        ["--readiness=0.0.0.0:8081"],
    ],
)
def test_bad_or_clashing_addresses_are_refused(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        main.http_server(main.parse_args(argv), endpoints.Readiness())


def test_no_flag_no_server() -> None:
    assert main.http_server(main.parse_args([]), endpoints.Readiness()).ports() == set()


class StuckElector:
    """An elector whose last round began ``ago`` seconds back."""

    def __init__(self, ago: float) -> None:
        self.settings = LeaseSettings("ns", "lease", "me")
        self.ago = ago

    def tried_within(self, seconds: float) -> bool:
        return self.ago <= seconds


@pytest.mark.parametrize(("ago", "status"), [(1.0, 200), (20.9, 200), (21.1, 503)])
def test_a_standby_is_alive_while_its_election_loop_keeps_trying(ago: float, status: int) -> None:
    """Three rounds of the retry period (2 s) plus the request timeout (5 s): 21 s."""
    port = free_port()
    server = main.standby_liveness(f"http://127.0.0.1:{port}/healthz", StuckElector(ago))  # type: ignore[arg-type]
    with endpoints.serving(server):
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == status


@pytest.mark.parametrize(
    ("kind", "watch"),
    [("Ingress", "ingresses in shop"), ("EndpointSlice", "endpointslices in shop")],
)
def test_each_child_watch_is_named_by_its_resource(kind: str, watch: str) -> None:
    """The name readiness gives when that watch has not listed yet."""
    r = endpoints.Readiness()
    r.leading()
    handlers._readiness_hook(r, kind, "shop")
    assert r.state() == (False, f"leading: waiting for the initial listing of {watch}")
