"""The reconcile pass against an in-memory API: what a refused, conflicting or failing
request does to the rest of the pass and to the status it writes, and how the pass uses
the store the watches feed (no request unless it writes; a stale view is corrected by one
read, never by a wrong write).

Only the transport is faked (``Kube._send``): everything above it, the Event
best-effort policy included, is the operator's own code. Kubernetes behaviour itself is
proven on the real control plane in tests/e2e.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3

from bluegreen.__main__ import make_room_for_deep_objects
from bluegreen.api.models import KIND
from bluegreen.core import names, planner, status
from bluegreen.core.gates import Probe, RunKey, Tally
from bluegreen.core.revision import revision_of
from bluegreen.kube.errors import ApiError
from bluegreen.runtime import reconciler
from bluegreen.runtime.checker import Checker
from bluegreen.runtime.store import Store

from builders import NOW, T1, T2
from fakes import (
    APP_PATH,
    DEPLOYMENTS,
    EVENTS,
    NAME,
    NS,
    SERVICES,
    FakeApi,
    app_body,
    clock,
    conditions,
    preview_ready_for_switch,
    prod_color,
    reconcile,
    reconcile_again,
    transport_error,
)

Obj = dict[str, Any]


# ------------------------------------------------------------------ Events are best-effort


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(transport_error, id="urllib3 MaxRetryError"),
        pytest.param(lambda: ApiError(500, "InternalError", "etcd timeout"), id="5xx"),
        pytest.param(lambda: ApiError(403, "Forbidden", "no events"), id="403"),
        pytest.param(lambda: OSError("connection reset"), id="OSError"),
    ],
)
def test_a_failing_event_never_stops_the_pass_after_a_switch(
    error: Callable[[], Exception],
) -> None:
    api = preview_ready_for_switch()
    api.fail("POST", EVENTS, error)
    outcome = reconcile(api)
    assert prod_color(api) == "green"
    assert [a.reason for a in outcome.done] == ["Switched"]
    assert (api.app_status["activeColor"], api.app_status["phase"]) == ("green", "Healthy")


# ------------------------------------------------------------------ refused and failed writes


def test_a_switch_refused_for_missing_rights_is_not_reported_as_done() -> None:
    api = preview_ready_for_switch()
    api.fail("PUT", f"{SERVICES}/{NAME}", lambda: ApiError(403, "Forbidden", "no update"))
    outcome = reconcile(api)
    assert prod_color(api) == "blue"
    assert api.app_status["activeColor"] == "blue"
    assert api.app_status["previewColor"] == "green"
    assert api.app_status["phase"] == "Degraded"
    assert conditions(api)["Degraded"]["reason"] == "ChildRejected"
    assert outcome.requeue_after == reconciler.RETRY_AFTER_FORBIDDEN


def test_a_switch_that_lost_a_race_is_retried_soon_and_not_reported() -> None:
    api = preview_ready_for_switch()
    api.fail("PUT", f"{SERVICES}/{NAME}", lambda: ApiError(409, "Conflict", "modified"))
    outcome = reconcile(api)
    assert outcome.requeue_after == reconciler.RETRY_AFTER_CONFLICT
    assert outcome.failures == []
    assert api.app_status["activeColor"] == "blue"
    assert api.app_status["phase"] == "Progressing"


def test_an_invalid_child_is_reported_and_the_rest_of_the_plan_goes_on() -> None:
    api = FakeApi()
    api.put_object(APP_PATH, app_body(T1))
    api.fail("POST", DEPLOYMENTS, lambda: ApiError(422, "Invalid", "containerPort: Invalid"))
    outcome = reconcile(api)
    assert f"{SERVICES}/{NAME}" in api.objects  # the Services were still created
    assert "containerPort" in outcome.failures[0]
    assert api.app_status["phase"] == "Degraded"
    assert conditions(api)["Degraded"]["reason"] == "ChildRejected"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(lambda: ApiError(503, "ServiceUnavailable", "etcd"), id="5xx"),
        pytest.param(transport_error, id="transport"),
    ],
)
def test_a_write_failing_for_the_cluster_raises_for_a_retry(
    error: Callable[[], Exception],
) -> None:
    """Not the spec's fault: the queue retries with a backoff; status is left alone."""
    api = preview_ready_for_switch()
    api.fail("PUT", f"{SERVICES}/{NAME}", error)
    with pytest.raises(Exception) as raised:
        reconcile(api)
    assert raised.type is type(error())
    assert api.status_patches == []


def test_a_read_failing_for_the_cluster_raises_for_a_retry() -> None:
    """The one read a pass may make (a stale object, after a refused write) fails."""
    api = preview_ready_for_switch()
    api.fail("PUT", f"{SERVICES}/{NAME}", lambda: ApiError(409, "Conflict", "modified"))
    api.fail("GET", SERVICES, transport_error)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        reconcile(api)
    assert api.status_patches == []


# ------------------------------------------------------------------ passes that stop early


def test_a_forbidden_read_is_degraded_with_availability_unknown() -> None:
    """A kind the operator may not list or watch: the store knows why."""
    api = preview_ready_for_switch()
    api.objects[APP_PATH]["status"] = {"activeColor": "blue", "activeRevision": "r1"}
    store = api.caught_up()
    store.refuse("Deployment", NS, "deployments is forbidden: cannot list deployments")
    outcome = reconciler.reconcile(api, store, NS, NAME, clock)
    assert "cannot list deployments" in api.app_status["message"]
    assert outcome.requeue_after == reconciler.RETRY_AFTER_FORBIDDEN
    assert api.app_status["phase"] == "Degraded"
    assert api.app_status["activeColor"] == "blue"  # kept, not guessed
    assert conditions(api)["Available"]["status"] == "Unknown"
    assert conditions(api)["Degraded"]["reason"] == "Forbidden"


ROUTES = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes"
GATEWAY = {"parentRefs": [{"name": "edge"}], "hostnames": ["shop.example.com"]}


def test_routes_in_a_cluster_without_the_gateway_api_degrade_the_app_and_nothing_else() -> None:
    """No HTTPRoute resource (the informer's listing was 404): the switch still happens, no
    route is written, and the app says what to install."""
    api = preview_ready_for_switch()
    api.put_object(APP_PATH, app_body(T2, promote=True, gateway=GATEWAY))
    store = api.caught_up()
    store.served("HTTPRoute", False)

    reconciler.reconcile(api, store, NS, NAME, clock)

    assert prod_color(api) == "green"
    assert not [p for m, p in api.log if p.startswith(ROUTES)]
    assert conditions(api)["Degraded"]["reason"] == "GatewayAPIMissing"
    assert "sigs.k8s.io/gateway-api" in api.app_status["message"]
    assert conditions(api)["Available"]["status"] == "True"


def test_routes_the_operator_may_not_watch_are_a_forbidden_read_for_apps_with_routes() -> None:
    api = preview_ready_for_switch()
    api.put_object(APP_PATH, app_body(T2, promote=True, gateway=GATEWAY))
    store = api.caught_up()
    store.refuse("HTTPRoute", NS, "httproutes is forbidden")

    reconciler.reconcile(api, store, NS, NAME, clock)

    assert conditions(api)["Degraded"]["reason"] == "Forbidden"
    assert "httproutes is forbidden" in api.app_status["message"]


def test_an_app_without_routes_ignores_a_refused_or_absent_httproute_kind() -> None:
    api = preview_ready_for_switch()
    store = api.caught_up()
    store.refuse("HTTPRoute", NS, "httproutes is forbidden")
    store.served("HTTPRoute", False)

    reconciler.reconcile(api, store, NS, NAME, clock)

    assert prod_color(api) == "green"
    assert api.app_status["phase"] == "Healthy"


def deeply_nested(depth: int) -> Obj:
    nested: Obj = {"leaf": 1}
    for _ in range(depth):
        nested = {"n": nested}
    return nested


@pytest.fixture
def room_for_deep_objects() -> Iterator[None]:
    """The interpreter as the operator's entry point sets it up."""
    limit, stack = sys.getrecursionlimit(), threading.stack_size()
    make_room_for_deep_objects()
    yield
    sys.setrecursionlimit(limit)
    threading.stack_size(stack)


@pytest.mark.usefixtures("room_for_deep_objects")
@pytest.mark.parametrize(
    "spec_change, expected",
    [
        pytest.param(
            {"template": {**T1, "metadata": {"labels": "app=web"}}},
            "metadata.labels must be a map of strings",
            id="labels given as a string",
        ),
        pytest.param(
            {"template": {**T1, "metadata": {"annotations": deeply_nested(1500)}}},
            "nests deeper than 64 levels",
            id="nested 1,500 levels deep",
        ),
        pytest.param(
            {"scaleDownDelaySeconds": 300_000_000_000},
            "scaleDownDelaySeconds",
            id="delay beyond any clock",
        ),
        pytest.param({"replicas": 2**31}, "replicas", id="replicas beyond int32"),
    ],
)
def test_a_spec_the_schema_would_refuse_is_reported_never_raised(
    spec_change: Obj, expected: str
) -> None:
    """Objects stored under an older CRD reach the operator unchecked: each is reported on
    its own app, with availability unknown, and nothing is written but the status."""
    api = FakeApi()
    api.put_object(APP_PATH, {**app_body(T1), "spec": {**app_body(T1)["spec"], **spec_change}})
    outcome = reconcile(api)
    assert outcome.failures and expected in outcome.failures[0]
    assert api.app_status["phase"] == "Degraded"
    assert conditions(api)["Degraded"]["reason"] == "InvalidSpec"
    assert conditions(api)["Available"]["status"] == "Unknown"
    assert api.writes_to("PATCH", f"{APP_PATH}/status") == 1
    assert api.writes == 2  # the status and one Warning Event
    assert api.writes_to("POST", EVENTS) == 1


def test_a_planner_failure_is_reported_on_its_app(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any) -> planner.Plan:
        raise TypeError("unhashable type: 'dict'")

    monkeypatch.setattr(planner, "plan", broken)
    api = preview_ready_for_switch()
    outcome = reconcile(api)
    assert outcome.requeue_after == reconciler.RETRY_AFTER_PLAN_FAILURE
    assert api.app_status["phase"] == "Degraded"
    assert "TypeError: unhashable type" in api.app_status["message"]
    assert prod_color(api) == "blue"


def test_a_repeated_problem_posts_one_warning_not_one_per_pass() -> None:
    api = FakeApi()
    api.put_object(APP_PATH, app_body({**T1, "metadata": {"labels": "app=web"}}))
    for _ in range(3):
        reconcile(api)
    assert api.writes_to("POST", EVENTS) == 1
    assert api.writes_to("PATCH", f"{APP_PATH}/status") == 1


def test_status_written_is_valid_json_and_round_trips() -> None:
    api = preview_ready_for_switch()
    reconcile(api, lambda: datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    patch = api.status_patches[-1]
    assert json.loads(json.dumps(patch)) == patch
    assert patch["lastSwitchTime"] == "2026-11-26T12:00:00Z"
    assert patch["previousRevision"] is not None


@pytest.mark.parametrize("delay, warned", [(0, True), (4, True), (5, False), (30, False)])
def test_a_switch_with_a_delay_below_kube_proxys_lag_is_warned_about(
    delay: int, warned: bool
) -> None:
    api = preview_ready_for_switch()
    api.objects[APP_PATH]["spec"]["scaleDownDelaySeconds"] = delay
    reconcile(api)
    assert prod_color(api) == "green"
    reasons = [e["reason"] for e in api.events]
    assert ("ShortScaleDownDelay" in reasons) is warned


# ------------------------------------------------------------------ planning from the store


def test_a_pass_with_nothing_to_write_sends_no_request() -> None:
    api = preview_ready_for_switch()
    reconcile(api)  # the switch
    reconcile(api)  # the status of the settled app
    api.log.clear()
    outcome = reconcile(api)
    assert outcome.done == []
    assert api.log == []


def test_the_next_pass_plans_from_the_operators_own_writes_before_any_watch_event() -> None:
    """Write-through: the answer of the switch is in the store, so a pass right after it
    (no watch event yet) does not switch again (a stale view would PUT again, be refused
    and read the Service afresh)."""
    api = preview_ready_for_switch()
    reconcile(api)
    outcome = reconcile_again(api)
    assert outcome.done == []
    assert api.writes_to("PUT", f"{SERVICES}/{NAME}") == 1
    assert api.requests["GET"] == 0
    held = api.store.get("Service", NS, NAME)
    assert held is not None and held["spec"]["selector"][names.LABEL_COLOR] == "green"


def test_a_stale_view_is_refused_read_afresh_and_planned_again() -> None:
    """Someone changed the prod Service after the store last heard of it: the conditional
    PUT is refused, one read brings the store up to date, and the next pass (at once)
    switches from the fresh state."""
    api = preview_ready_for_switch()
    store = api.caught_up()
    prod_path = f"{SERVICES}/{NAME}"
    edited = copy.deepcopy(api.objects[prod_path])
    edited["metadata"].setdefault("annotations", {})["team"] = "payments"
    api.put_object(prod_path, edited)  # the watch has not delivered this yet

    outcome = reconciler.reconcile(api, store, NS, NAME, clock)
    assert outcome.requeue_after == reconciler.RETRY_AFTER_CONFLICT == 0.0
    assert prod_color(api) == "blue"
    assert api.writes_to("GET", prod_path) == 1

    outcome = reconcile_again(api)
    assert [a.reason for a in outcome.done] == ["Switched"]
    live = api.objects[prod_path]
    assert live["metadata"]["annotations"]["team"] == "payments"  # kept, not overwritten


def test_someone_elses_object_is_learned_by_one_read_and_read_again_each_pass() -> None:
    """A Service of the prod name without the operator's label: the watches never show it.
    The refused create reads it; from then on each pass reads it again (until it goes)
    instead of trying to create it."""
    api = FakeApi()
    api.put_object(APP_PATH, app_body(T1))
    foreign = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": NS}}
    api.put_object(f"{SERVICES}/{NAME}", foreign)
    api.store.put(KIND, {**api.objects[APP_PATH], "kind": KIND})  # the watches see the app only

    reconcile_again(api)
    assert api.writes_to("POST", SERVICES) == 2  # prod (refused) and preview
    assert api.store.get("Service", NS, NAME) is not None

    api.log.clear()
    outcome = reconcile_again(api)
    # No watch event tells of its deletion: the app looks again soon, not at the resync.
    assert outcome.requeue_after == reconciler.RECHECK_CONFLICT
    assert api.writes_to("POST", SERVICES) == 0
    assert api.writes_to("GET", f"{SERVICES}/{NAME}") == 1
    assert "Service" in api.app_status["message"]  # the conflict is reported

    del api.objects[f"{SERVICES}/{NAME}"]  # its owner removes it
    reconcile_again(api)  # the read finds it gone ...
    healed = reconcile_again(api)  # ... and the operator creates its own
    assert healed.requeue_after is None, healed  # no conflict: no rechecks
    assert api.objects[f"{SERVICES}/{NAME}"]["metadata"]["labels"][names.LABEL_MANAGED_BY] == (
        names.MANAGER
    )


def test_an_app_the_store_outlived_gets_no_children() -> None:
    """The store still holds an app that is gone (a watch that had to list again missed
    its deletion): before creating anything, one read checks it still exists."""
    api = FakeApi()
    store = Store()
    store.put(KIND, {**app_body(T1), "kind": KIND})
    outcome = reconciler.reconcile(api, store, NS, NAME, clock)
    assert outcome.done == []
    assert api.writes == 0
    assert store.get(KIND, NS, NAME) is None


def test_planning_leaves_the_stored_objects_as_they_were() -> None:
    """Stored objects are shared by every pass: the planner must build, never modify."""
    api = preview_ready_for_switch()
    store = api.caught_up()
    before = {
        kind: copy.deepcopy(store.get(kind, NS, name))
        for kind, name in reconciler.children_of(NAME)
    }
    body = store.get(KIND, NS, NAME)
    assert body is not None
    app = reconciler.parse_app(body, status.recorded(body.get("status")))
    planner.plan(app, reconciler.children_from_store(store, app), NOW)
    after = {kind: store.get(kind, NS, name) for kind, name in reconciler.children_of(NAME)}
    assert after == before


def test_events_posted_in_background_keep_their_order_and_do_not_hold_the_pass() -> None:
    api = preview_ready_for_switch()
    api.objects[APP_PATH]["spec"]["scaleDownDelaySeconds"] = 0  # two Events: switch, warning
    posted: list[str] = []
    gate = threading.Event()
    original = api._send

    def slow_events(method: str, path: str, **kwargs: Any) -> Obj:
        if path == EVENTS:
            gate.wait(10)
            posted.append(kwargs["body"]["reason"])
        return original(method, path, **kwargs)

    api._send = slow_events  # type: ignore[method-assign]
    api.post_events_in_background()
    reconcile(api)  # returns although no Event could be posted yet
    assert prod_color(api) == "green"
    assert posted == []
    assert not api.flush_events(timeout=0.1)  # a shutdown waits for them, within bounds
    gate.set()
    assert api.flush_events(timeout=5)
    assert posted == ["Switched", "ShortScaleDownDelay"]


# ------------------------------------------------------------------ gates


class RecordingChecker(Checker):
    """The check runner without threads: records what each pass asks it to probe."""

    def __init__(self, tallies: dict[RunKey, Tally] | None = None) -> None:
        super().__init__()
        self.fixed = tallies or {}
        self.wanted: list[list[RunKey]] = []

    def tallies(self, app: tuple[str, str]) -> dict[RunKey, Tally]:
        return dict(self.fixed)

    def want(self, app: tuple[str, str], probes: Sequence[Probe]) -> None:
        self.wanted.append([p.key for p in probes])


SMOKE_CHECK = {"name": "smoke", "http": {"path": "/api"}}


def test_a_pass_hands_the_due_checks_to_the_runner_and_does_not_switch_yet() -> None:
    api = preview_ready_for_switch()
    api.put_object(APP_PATH, app_body(T2, promote=True, checks=[SMOKE_CHECK]))
    runner = RecordingChecker()
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock, checker=runner)
    assert runner.wanted == [[RunKey("smoke", "preview", revision_of(T2), 0)]]
    assert prod_color(api) == "blue"
    assert api.app_status["checks"][0]["state"] == "Running"


def test_a_pass_reads_the_runners_results_and_switches_once_they_passed() -> None:
    api = preview_ready_for_switch()
    api.put_object(APP_PATH, app_body(T2, promote=True, checks=[SMOKE_CHECK]))
    passed = {RunKey("smoke", "preview", revision_of(T2), 0): Tally("Passed", 3, 0, "HTTP 200")}
    runner = RecordingChecker(passed)
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock, checker=runner)
    assert prod_color(api) == "green"
    assert runner.wanted == [[]]


def test_check_jobs_come_from_the_store_and_are_never_listed_per_pass() -> None:
    api = preview_ready_for_switch()
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock, checker=RecordingChecker())
    assert not [p for _, p in api.log if "/jobs" in p]
    job_check = {"name": "db", "job": {"template": {"spec": {"containers": [{"name": "t"}]}}}}
    api = preview_ready_for_switch()
    api.put_object(APP_PATH, app_body(T2, promote=True, checks=[job_check]))
    reconciler.reconcile(api, api.caught_up(), NS, NAME, clock, checker=RecordingChecker())
    assert not [p for m, p in api.log if m == "GET" and "/jobs" in p]
    assert [p for m, p in api.log if m == "POST" and "/jobs" in p]  # its Job is created
    assert prod_color(api) == "blue"
