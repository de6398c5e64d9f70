"""The check runner against real HTTP servers on 127.0.0.1: what it answers, that it
stops when a run is over or unwanted, and that a hanging server never holds up the
caller (a reconcile)."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from bluegreen.api.models import HttpCheck, PrometheusCheck
from bluegreen.core.gates import Probe, Query, RunKey
from bluegreen.runtime import checker
from bluegreen.runtime.checker import Checker

from kubehelpers import wait_for

APP = ("shop", "demo")


def reply(
    handler: http.server.BaseHTTPRequestHandler, code: int, body: bytes, kind: str = ""
) -> None:
    handler.send_response(code)
    if kind:
        handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 500 if self.path.startswith("/broken") else 200
        body = b"v2 ok\n" if code == 200 else b"oops\n"
        reply(self, code, body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def silent() -> Iterator[int]:
    """A server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield int(sock.getsockname()[1])
    sock.close()


def probe(node_port: int | None, path: str = "/", stage: str = "preview", **http: Any) -> Probe:
    settings = {"intervalSeconds": 1, "successThreshold": 2, "failureThreshold": 2, **http}
    key = RunKey("smoke", stage, "r2", 0)  # type: ignore[arg-type]
    return Probe(key, "shop", "demo-preview", 80, node_port, HttpCheck(path=path, **settings))


class Wakes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, key: tuple[str, str]) -> None:
        self.calls.append(key)


def test_a_passing_check_passes_wakes_its_app_and_stops(server: int) -> None:
    wakes = Wakes()
    runner = Checker("127.0.0.1", on_change=wakes)
    p = probe(server, bodyContains="v2")
    runner.want(APP, [p])
    tally = wait_for(
        lambda: (t := runner.tallies(APP)[p.key]).state == "Passed" and t,
        timeout=10,
        what="the check to pass",
    )
    assert (tally.successes, tally.message) == (2, "HTTP 200: v2 ok")
    assert wakes.calls == [APP, APP]  # one per answer that changed the status
    assert runner.running == 0


def test_a_500_fails_the_check_with_its_answer(server: int) -> None:
    runner = Checker("127.0.0.1")
    p = probe(server, path="/broken")
    runner.want(APP, [p])
    tally = wait_for(
        lambda: (t := runner.tallies(APP)[p.key]).state == "Failed" and t, timeout=10, what="fail"
    )
    assert tally.message == "HTTP 500: oops (expected 200)"


def test_a_silent_server_times_out_and_never_holds_up_the_caller(silent: int) -> None:
    runner = Checker("127.0.0.1")
    p = probe(silent, timeoutSeconds=1, failureThreshold=1)
    began = time.monotonic()
    runner.want(APP, [p])
    tallies = runner.tallies(APP)
    assert time.monotonic() - began < 0.5  # the reconcile goes on at once
    assert tallies[p.key].state == "Pending"
    tally = wait_for(
        lambda: (t := runner.tallies(APP)[p.key]).state == "Failed" and t, timeout=10, what="fail"
    )
    assert tally.message == f"no answer within 1s from 127.0.0.1:{silent}"


def test_a_run_no_plan_wants_is_dropped(server: int) -> None:
    calls: list[Probe] = []

    def counting(p: Probe, via: str | None) -> checker.Verdict:
        calls.append(p)
        return checker.Verdict(True, "HTTP 200")

    runner = Checker("127.0.0.1", send=counting)
    p = probe(server, stage="prod")  # prod runs never pass: they probe until dropped
    runner.want(APP, [p])
    wait_for(lambda: len(calls) >= 2, timeout=10, what="two probes")
    runner.want(APP, [])
    assert runner.tallies(APP) == {}
    seen = len(calls)
    time.sleep(1.5)
    assert len(calls) <= seen + 1  # at most one already in flight


def test_in_cluster_the_service_dns_name_is_used() -> None:
    assert checker.address(probe(None), None) == ("demo-preview.shop.svc", 80)
    assert checker.address(probe(31000), "127.0.0.1") == ("127.0.0.1", 31000)


def test_without_a_node_port_the_answer_says_why() -> None:
    answer = checker.send(probe(None), "127.0.0.1")
    assert not answer.ok and "has no node port" in answer.text


def test_a_refused_connection_is_a_failed_answer() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])  # bound, not listening: refused
        answer = checker.send(probe(port), "127.0.0.1")
    assert not answer.ok and "ConnectionRefusedError" in answer.text


# ------------------------------------------------------------------ Prometheus checks


class FakePrometheus(http.server.BaseHTTPRequestHandler):
    """Answers /api/v1/query with the vector its server's ``value`` says; records what it
    was asked."""

    def do_GET(self) -> None:
        server: Any = self.server
        server.asked.append((self.path, self.headers.get("Authorization")))
        result = [{"metric": {"pod": "a"}, "value": [1, server.value]}] if server.value else []
        body = json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        ).encode()
        reply(self, 200, body, "application/json")

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[Any]:
    srv: Any = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    srv.asked, srv.value = [], "0.01"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def query_probe(port: int, stage: str = "preview", **fields: Any) -> Probe:
    settings = {"intervalSeconds": 1, "successThreshold": 2, "failureThreshold": 2, **fields}
    check = PrometheusCheck(
        address=f"http://127.0.0.1:{port}/prom/", query="q", condition="< 0.05", **settings
    )
    key = RunKey("errors", stage, "r2", 0)  # type: ignore[arg-type]
    return Probe(key, "shop", "demo-preview", 0, None, None, Query(check, 'rate(x{c="g"}[1m])'))


def test_a_query_goes_to_the_query_api_with_its_timeout_and_passes(prometheus: Any) -> None:
    runner = Checker()
    p = query_probe(prometheus.server_address[1], timeoutSeconds=3)
    runner.want(APP, [p])
    tally = wait_for(
        lambda: (t := runner.tallies(APP)[p.key]).state == "Passed" and t, timeout=10, what="pass"
    )
    assert (tally.successes, tally.value, tally.message) == (2, "0.01", "0.01 < 0.05")
    path, auth = prometheus.asked[0]
    assert path == "/prom/api/v1/query?" + urlencode(
        {"query": 'rate(x{c="g"}[1m])', "timeout": "3s"}
    )
    assert auth is None  # no Secret named: none read, no credentials sent


def test_a_bad_value_fails_and_no_data_never_passes(prometheus: Any) -> None:
    prometheus.value = "0.2"
    runner = Checker()
    p = query_probe(prometheus.server_address[1])
    runner.want(APP, [p])
    tally = wait_for(
        lambda: (t := runner.tallies(APP)[p.key]).state == "Failed" and t, timeout=10, what="fail"
    )
    assert (tally.failures, tally.value, tally.message) == (2, "0.2", "0.2 is not < 0.05")
    prometheus.value = None
    waits = query_probe(prometheus.server_address[1], noData="Wait")
    runner.want(("shop", "other"), [waits])
    time.sleep(3.5)
    tally = runner.tallies(("shop", "other"))[waits.key]
    assert (tally.state, tally.successes, tally.failures) == ("Running", 0, 0)
    assert tally.message == "no data: the query returned no series (waiting)"


def test_credentials_come_from_the_named_secret_read_for_each_query(prometheus: Any) -> None:
    reads: list[tuple[str, str]] = []

    def read(namespace: str, name: str) -> dict[str, str]:
        reads.append((namespace, name))
        return {"token": "s3cret"}

    runner = Checker(read_secret=read)
    p = query_probe(prometheus.server_address[1], auth={"secretName": "prom-token"})
    runner.want(APP, [p])
    wait_for(lambda: runner.tallies(APP)[p.key].state == "Passed", timeout=10, what="pass")
    assert reads == [("shop", "prom-token")] * 2
    assert {auth for _, auth in prometheus.asked} == {"Bearer s3cret"}


def test_an_unreadable_secret_is_the_checks_error_and_nothing_is_sent(prometheus: Any) -> None:
    def forbidden(namespace: str, name: str) -> dict[str, str]:
        raise PermissionError(f"secrets {name!r} is forbidden")

    p = query_probe(prometheus.server_address[1], auth={"secretName": "prom-token"})
    answer = checker.query(p, forbidden)
    assert (answer.ok, answer.counted) == (False, True)
    assert answer.text == "no credentials: PermissionError: secrets 'prom-token' is forbidden"
    assert prometheus.asked == []


def test_an_unreachable_or_silent_prometheus_never_passes(silent: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        refused = int(sock.getsockname()[1])
        answer = checker.query(query_probe(refused), None)
        assert (answer.ok, answer.counted) == (False, True)
        assert "ConnectionRefusedError" in answer.text
        waiting = checker.query(query_probe(refused, onError="Wait"), None)
        assert (waiting.ok, waiting.counted) == (False, False)
    began = time.monotonic()
    answer = checker.query(query_probe(silent, timeoutSeconds=1), None)
    assert time.monotonic() - began < 2.5
    assert answer == checker.Verdict(False, f"no answer within 1s from http://127.0.0.1:{silent}")
