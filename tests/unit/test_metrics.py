"""The operator's metrics, through the real reconcile pass against the in-memory API of
test_reconciler (only the transport is faked), and read back from the exposition a
scraper gets. Each test has a Metrics of its own (its own registry)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bluegreen.kube import client
from bluegreen.kube.errors import ApiError, NotLeading
from bluegreen.runtime import metrics, reconciler
from bluegreen.runtime.queue import ReconcileQueue

from builders import T1, T2, deployment
from fakes import (
    APP_PATH,
    DEPLOYMENTS,
    NAME,
    NS,
    SERVICES,
    FakeApi,
    app_body,
    clock,
    preview_ready_for_switch,
    transport_error,
)

SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> FakeClock:
    return FakeClock()


@pytest.fixture
def m(ticks: FakeClock) -> Iterator[metrics.Metrics]:
    """A Metrics of its own, the one the hooks report to during the test."""
    mine = metrics.Metrics(clock=ticks)
    previous = metrics.use(mine)
    yield mine
    metrics.use(previous)


def samples(m: metrics.Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and labels (the `le` of buckets too)."""
    body, _ = m.exposition()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(m: metrics.Metrics, name: str, **labels: str) -> float:
    return samples(m).get((name, tuple(sorted(labels.items()))), 0.0)


# ------------------------------------------------------------------ a release, pass by pass


def rolling_out(api: FakeApi) -> None:
    """green has the new template, none of its pods ready yet; no endpoints."""
    api.put_object(f"{DEPLOYMENTS}/{NAME}-green", deployment("green", T2, 3, ready=0))
    api.lists[SLICES] = []


def test_a_release_moves_the_switch_counter_and_both_latencies(
    m: metrics.Metrics, ticks: FakeClock
) -> None:
    api = preview_ready_for_switch()
    endpoints = api.lists[SLICES]
    green = api.objects[f"{DEPLOYMENTS}/{NAME}-green"]
    rolling_out(api)

    reconciler.reconcile(
        api, api.caught_up(), NS, NAME, clock
    )  # t=1000: the new revision is first planned
    ticks.now += 7.0
    api.put_object(f"{DEPLOYMENTS}/{NAME}-green", green)  # rolled out; endpoints not yet
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)  # t=1007: due (WaitingForEndpoints)
    assert value(m, "bluegreen_switches_total") == 0
    ticks.now += 0.3
    api.lists[SLICES] = endpoints
    outcome = reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)  # t=1007.3: switched

    assert [a.reason for a in outcome.done] == ["Switched"]
    assert value(m, "bluegreen_switches_total") == 1
    assert value(m, "bluegreen_switch_after_change_seconds_count") == 1
    assert value(m, "bluegreen_switch_after_change_seconds_sum") == pytest.approx(7.3)
    assert value(m, "bluegreen_switch_after_ready_seconds_count") == 1
    assert value(m, "bluegreen_switch_after_ready_seconds_sum") == pytest.approx(0.3)
    assert value(m, "bluegreen_switch_after_ready_seconds_bucket", le="0.25") == 0
    assert value(m, "bluegreen_switch_after_ready_seconds_bucket", le="0.5") == 1
    assert value(m, "bluegreen_reconcile_duration_seconds_count") == 3
    assert value(m, "bluegreen_apps", phase="Healthy") == 1
    assert value(m, "bluegreen_apps", phase="Progressing") == 0


def test_a_switch_ready_at_the_first_look_is_due_and_switched_in_one_pass(
    m: metrics.Metrics,
) -> None:
    api = preview_ready_for_switch()
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)
    assert value(m, "bluegreen_switch_after_ready_seconds_count") == 1
    assert value(m, "bluegreen_switch_after_ready_seconds_sum") == 0  # the same instant


def test_a_new_template_before_the_switch_restarts_the_release_clock(
    m: metrics.Metrics, ticks: FakeClock
) -> None:
    api = preview_ready_for_switch()
    green = api.objects[f"{DEPLOYMENTS}/{NAME}-green"]
    rolling_out(api)
    api.objects[APP_PATH]["spec"]["template"] = T1 | {"metadata": {"labels": {"v": "x"}}}
    reconciler.reconcile(
        api, api.caught_up(), NS, NAME, clock
    )  # t=1000: another revision, first planned
    ticks.now += 60.0
    api.objects[APP_PATH]["spec"]["template"] = T2
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)  # t=1060: T2, first planned
    ticks.now += 2.0
    api.put_object(f"{DEPLOYMENTS}/{NAME}-green", green)
    api.lists[SLICES] = preview_ready_for_switch().lists[SLICES]
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)

    assert value(m, "bluegreen_switch_after_change_seconds_sum") == pytest.approx(2.0)


def test_a_switch_whose_release_began_before_this_replica_led_only_counts(
    m: metrics.Metrics,
) -> None:
    """The start of that release is not known here: no made-up latency."""
    api = preview_ready_for_switch()
    metrics.current().switched((NS, NAME))
    assert value(m, "bluegreen_switches_total") == 1
    assert value(m, "bluegreen_switch_after_change_seconds_count") == 0
    reconciler.reconcile(
        api, api.caught_up(), NS, NAME, clock
    )  # planned and switched in one pass: counted
    assert value(m, "bluegreen_switches_total") == 2


def test_a_refused_switch_is_no_switch_and_an_error(m: metrics.Metrics) -> None:
    api = preview_ready_for_switch()
    api.fail("PUT", f"{SERVICES}/{NAME}", lambda: ApiError(403, "Forbidden", "no update"))
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)
    assert value(m, "bluegreen_switches_total") == 0
    assert value(m, "bluegreen_switch_after_ready_seconds_count") == 0
    assert value(m, "bluegreen_reconcile_errors_total", reason="ChildRejected") == 1
    assert value(m, "bluegreen_apps", phase="Degraded") == 1


# ------------------------------------------------------------------ passes that fail


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        pytest.param(transport_error, "ApiUnreachable", id="transport"),
        pytest.param(lambda: OSError("connection reset"), "ApiUnreachable", id="OSError"),
        pytest.param(lambda: ApiError(503, "Unavailable", "etcd"), "ApiUnavailable", id="503"),
        pytest.param(lambda: ApiError(429, "TooMany", "slow down"), "ApiUnavailable", id="429"),
        pytest.param(lambda: ApiError(401, "Unauthorized", "token expired"), "ApiError", id="401"),
        pytest.param(lambda: NotLeading("PUT"), "NotLeading", id="fenced"),
    ],
)
def test_a_pass_that_raises_is_timed_and_counted_by_reason(
    m: metrics.Metrics, error: Any, reason: str
) -> None:
    api = preview_ready_for_switch()
    api.fail("PUT", f"{SERVICES}/{NAME}", error)
    with pytest.raises(type(error())):
        reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)
    assert value(m, "bluegreen_reconcile_errors_total", reason=reason) == 1
    assert value(m, "bluegreen_reconcile_duration_seconds_count") == 1
    assert value(m, "bluegreen_switches_total") == 0


def test_a_bug_is_an_unexpected_error(m: metrics.Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> None:
        raise KeyError("spec")

    monkeypatch.setattr(reconciler, "act", broken)
    with pytest.raises(KeyError):
        api = preview_ready_for_switch()
        reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)
    assert value(m, "bluegreen_reconcile_errors_total", reason="Unexpected") == 1


def test_an_invalid_spec_is_a_reported_error(m: metrics.Metrics) -> None:
    api = FakeApi()
    api.put_object(APP_PATH, app_body(T1, replicas=-1))
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)
    assert value(m, "bluegreen_reconcile_errors_total", reason="InvalidSpec") == 1
    assert value(m, "bluegreen_apps", phase="Degraded") == 1


# ------------------------------------------------------------------ apps, labels, queue, leader


def test_apps_by_phase_follow_each_apps_last_pass_and_forget_deleted_apps(
    m: metrics.Metrics,
) -> None:
    api = preview_ready_for_switch()
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)  # Healthy (switched)
    other = FakeApi()
    other.put_object(APP_PATH, app_body(T1))
    reconciler.reconcile(
        other, other.caught_up(), "shop", "other", clock
    )  # a second app, 404: never seen
    assert value(m, "bluegreen_apps", phase="Healthy") == 1
    m.status_computed(("shop", "b"), "Progressing", None)
    assert value(m, "bluegreen_apps", phase="Progressing") == 1
    del api.objects[APP_PATH]
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)  # deleted
    assert value(m, "bluegreen_apps", phase="Healthy") == 0
    assert value(m, "bluegreen_apps", phase="Progressing") == 1


def test_no_series_names_an_app(m: metrics.Metrics) -> None:
    """Bounded cardinality: a thousand apps add no series."""
    before = len(samples(m))
    for i in range(1000):
        m.status_computed(("team-" + str(i), f"app-{i}"), "Healthy", None)
    body, _ = m.exposition()
    assert len(samples(m)) == before
    assert b"app-1" not in body and b"team-" not in body


def test_api_requests_are_counted_by_verb_and_code(m: metrics.Metrics) -> None:
    class Response:
        status = 201

    def refused() -> Response:
        raise ConnectionRefusedError("no API server")

    assert isinstance(client.timed_call("POST", Response), Response)
    with pytest.raises(ConnectionRefusedError):
        client.timed_call("GET", refused)
    assert value(m, "bluegreen_api_requests_total", verb="POST", code="201") == 1
    assert value(m, "bluegreen_api_requests_total", verb="GET", code="<error>") == 1
    assert value(m, "bluegreen_api_request_duration_seconds_count", verb="POST") == 1


def test_queue_depth_is_read_from_the_queue(m: metrics.Metrics) -> None:
    """Three apps, one worker busy: one running, two waiting."""
    release = threading.Event()

    async def scenario() -> dict[str, float]:
        q = ReconcileQueue(lambda key: release.wait(5) and None, concurrency=1)
        for app in ("a", "b", "c"):
            q.trigger(("shop", app))
        await asyncio.sleep(0.05)
        seen = {s: value(m, "bluegreen_queue_apps", state=s) for s in ("waiting", "running")}
        release.set()
        await q.idle()
        return seen

    assert asyncio.run(scenario()) == {"waiting": 2, "running": 1}
    assert value(m, "bluegreen_queue_apps", state="running") == 0


def test_the_leader_gauge_asks_the_elector_at_each_scrape(m: metrics.Metrics) -> None:
    leading = False
    m.track_leader(lambda: leading)
    assert value(m, "bluegreen_leader") == 0
    leading = True
    assert value(m, "bluegreen_leader") == 1


def test_each_metrics_has_its_own_registry() -> None:
    a, b = metrics.Metrics(), metrics.Metrics()
    a.switches.inc()
    assert value(a, "bluegreen_switches_total") == 1
    assert value(b, "bluegreen_switches_total") == 0


def test_a_scraper_asking_for_openmetrics_gets_it(m: metrics.Metrics) -> None:
    body, content_type = m.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_an_app_the_queue_forgets_leaves_the_gauge(m: metrics.Metrics) -> None:
    """A deleted app gets no pass: its DELETED event makes the queue forget it."""
    m.status_computed(("shop", "gone"), "Healthy", None)
    ReconcileQueue(lambda key: None).forget(("shop", "gone"))
    assert value(m, "bluegreen_apps", phase="Healthy") == 0


def test_the_switching_pass_shows_where_its_time_went(m: metrics.Metrics) -> None:
    """Queued from the event that asked for the pass, planned up to the switch request,
    written up to the answer: the stages of "preview ready → switched"."""
    api = preview_ready_for_switch()
    store = api.caught_up()

    async def scenario() -> None:
        q = ReconcileQueue(lambda key: reconciler.reconcile(api, store, *key, clock=clock))
        q.trigger((NS, NAME), asked=time.monotonic() - 0.2)  # the event came in 200 ms ago
        await asyncio.sleep(0)
        await q.idle()

    asyncio.run(scenario())
    assert value(m, "bluegreen_switches_total") == 1
    for stage in metrics.SWITCH_STAGES:
        assert value(m, "bluegreen_switch_stage_seconds_count", stage=stage) == 1
    assert value(m, "bluegreen_switch_stage_seconds_sum", stage="queued") >= 0.2
    assert 0 < value(m, "bluegreen_switch_stage_seconds_sum", stage="planned") < 0.2
    assert 0 < value(m, "bluegreen_switch_stage_seconds_sum", stage="written") < 0.2


def test_a_switch_outside_a_queue_counts_but_has_no_stages(m: metrics.Metrics) -> None:
    api = preview_ready_for_switch()
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock)
    assert value(m, "bluegreen_switches_total") == 1
    assert value(m, "bluegreen_switch_stage_seconds_count", stage="queued") == 0
