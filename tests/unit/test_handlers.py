"""What a watch event asks of the queue: which app, and whether it is urgent (a user's
change) or bulk work; and which failures mean the API server is out of reach."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3

from bluegreen.core.objects import Key
from bluegreen.kube.errors import ApiError
from bluegreen.runtime.handlers import Runtime, is_api_outage

NS = "shop"


class Triggers:
    """Stands in for the queue: records what was asked of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Key, bool]] = []
        self.forgotten: list[Key] = []

    def trigger(self, key: Key, urgent: bool = True, asked: float | None = None) -> None:
        self.calls.append((key, urgent))

    def forget(self, key: Key) -> None:
        self.forgotten.append(key)


def runtime() -> tuple[Runtime, Triggers]:
    rt = Runtime(kube=None)  # type: ignore[arg-type]  # the queue is replaced: no requests
    triggers = Triggers()
    rt.queue = triggers  # type: ignore[assignment]
    return rt, triggers


def app_event(type_: str | None, name: str = "web", generation: int = 1, **status: Any) -> Any:
    meta = {"namespace": NS, "name": name, "generation": generation}
    return {"type": type_, "object": {"metadata": meta, "status": status}}


HEALTHY_1 = {"phase": "Healthy", "observedGeneration": 1}


def test_app_events_urgent_only_for_a_new_generation() -> None:
    rt, triggers = runtime()
    rt.app_event(app_event(None))  # the initial listing
    rt.app_event(app_event("MODIFIED", **HEALTHY_1))  # our own status write
    rt.app_event(app_event("MODIFIED", generation=2, **HEALTHY_1))  # the user's change
    rt.app_event(app_event("ADDED", name="new"))  # a new app
    assert triggers.calls == [
        ((NS, "web"), False),
        ((NS, "web"), False),
        ((NS, "web"), True),
        ((NS, "new"), True),
    ]


def test_a_deleted_app_is_forgotten() -> None:
    rt, triggers = runtime()
    rt.app_event(app_event("ADDED"))
    rt.app_event(app_event("DELETED"))
    assert triggers.forgotten == [(NS, "web")]
    rt.child_event("MODIFIED", (NS, "web"))
    assert len(triggers.calls) == 1  # its children no longer wake it
    assert rt.store.get("BlueGreenApp", NS, "web") is None


@pytest.mark.parametrize(
    ("status", "child_event", "urgent"),
    [
        pytest.param(
            {"phase": "Progressing", "observedGeneration": 1}, "MODIFIED", True, id="mid-release"
        ),
        pytest.param(
            {"phase": "Healthy", "observedGeneration": 0}, "MODIFIED", True, id="not-yet-observed"
        ),
        pytest.param(HEALTHY_1, "MODIFIED", False, id="settled"),
        pytest.param(HEALTHY_1, "DELETED", True, id="settled-child-deleted"),
    ],
)
def test_child_events_are_urgent_for_an_app_mid_release_or_a_deleted_child(
    status: dict[str, Any], child_event: str, urgent: bool
) -> None:
    rt, triggers = runtime()
    rt.app_event(app_event(None, **status))
    rt.child_event(child_event, (NS, "web"))
    assert triggers.calls[-1] == ((NS, "web"), urgent)


def test_a_listing_that_replaced_the_store_wakes_the_apps_of_its_namespace_as_bulk() -> None:
    rt, triggers = runtime()
    rt.app_event(app_event(None, name="a"))
    rt.app_event({"type": None, "object": {"metadata": {"namespace": "other", "name": "b"}}})
    triggers.calls.clear()
    rt.wake_all(NS)
    assert triggers.calls == [((NS, "a"), False)]
    rt.wake_all("")
    assert sorted(triggers.calls[1:]) == [(("other", "b"), False), ((NS, "a"), False)]


def test_children_of_unknown_apps_wake_nothing() -> None:
    rt, triggers = runtime()
    rt.child_event("DELETED", (NS, "stranger"))
    assert triggers.calls == []


def test_app_events_feed_the_store() -> None:
    rt, _ = runtime()
    rt.app_event(app_event("ADDED", generation=1))
    rt.app_event(app_event("MODIFIED", generation=2))
    held = rt.store.get("BlueGreenApp", NS, "web")
    assert held is not None
    assert held["metadata"]["generation"] == 2


@pytest.mark.parametrize(
    ("err", "outage"),
    [
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError("timed out"), True),
        (urllib3.exceptions.MaxRetryError(None, "/api", "refused"), True),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError("connection reset"), True),
        (ApiError(503, "Service Unavailable", "etcd down"), True),
        (ApiError(429, "Too Many Requests", "storage is (re)initializing"), True),
        (ApiError(409, "Conflict", "changed"), False),
        (ApiError(422, "Invalid", "bad"), False),
        (ApiError(403, "Forbidden", "no"), False),
        (TypeError("a bug"), False),
    ],
)
def test_which_failures_are_an_api_outage(err: BaseException, outage: bool) -> None:
    assert is_api_outage(err) is outage


def test_a_check_result_wakes_its_app_on_the_event_loop() -> None:
    """The check runner reports from its own threads; the queue lives on the loop."""
    import asyncio
    import threading

    async def scenario() -> list[tuple[Key, bool]]:
        rt, triggers = runtime()
        rt.loop = asyncio.get_running_loop()
        thread = threading.Thread(target=rt._check_changed, args=((NS, "web"),))
        thread.start()
        thread.join()
        await asyncio.sleep(0.05)
        return triggers.calls

    assert asyncio.run(scenario()) == [((NS, "web"), True)]


def test_forgetting_an_app_stops_its_checks() -> None:
    from bluegreen.api.models import HttpCheck
    from bluegreen.core.gates import Probe, RunKey, Verdict
    from bluegreen.runtime.checker import Checker

    rt, _ = runtime()
    # No request leaves the test: the runner's transport answers by itself.
    rt.checker = Checker(send=lambda probe, via: Verdict(True, "HTTP 200"))
    probe = Probe(RunKey("smoke", "prod", "r2", 0), NS, "web", 80, None, HttpCheck())
    rt.checker.want((NS, "web"), [probe])
    assert rt.checker.tallies((NS, "web"))
    rt.forget((NS, "web"))
    assert rt.checker.tallies((NS, "web")) == {}
