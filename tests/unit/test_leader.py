"""Leader election's rules on an in-memory API and a hand-moved clock: who leads when, and
that a leader stops writing before anyone else may start."""

from __future__ import annotations

import pytest

from bluegreen.kube.client import Kube
from bluegreen.kube.errors import ApiError, NotLeading
from bluegreen.runtime.leader import LeaderElector, LeaseSettings

from fakes import FakeApi

LEASE = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/bluegreen-operator"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(api: FakeApi, clock: Clock, identity: str) -> LeaderElector:
    settings = LeaseSettings(
        namespace="ops",
        name="bluegreen-operator",
        identity=identity,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
    )
    return LeaderElector(api, settings, clock)


def holder(api: FakeApi) -> str | None:
    return api.objects[LEASE]["spec"].get("holderIdentity")  # type: ignore[no-any-return]


def test_the_first_candidate_takes_a_missing_lease_and_the_second_waits() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    assert a.try_acquire_or_renew() and a.is_leading()
    assert not b.try_acquire_or_renew() and not b.is_leading()
    assert holder(api) == "a"


def test_a_renewing_leader_keeps_the_lease_however_long() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.try_acquire_or_renew()
    for _ in range(20):
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert holder(api) == "a"


def test_a_leader_that_cannot_renew_stops_before_another_may_start() -> None:
    """Paused (SIGSTOP) or cut off: its leading ends at the renew deadline (10 s), the
    others may take over only after the lease duration (15 s) of seeing no renewal."""
    api, clock = FakeApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()  # b sees a's lease now
    clock.now += 10
    assert not a.is_leading()  # fenced: no write from here on
    assert not b.try_acquire_or_renew()
    clock.now += 4.9
    assert not b.try_acquire_or_renew()
    clock.now += 0.2
    assert b.try_acquire_or_renew() and b.is_leading()
    assert holder(api) == "b"
    assert api.objects[LEASE]["spec"]["leaseTransitions"] == 1
    # The paused one comes back: the lease is b's, recently renewed; a stays out.
    assert not a.try_acquire_or_renew() and not a.is_leading()


def test_a_released_lease_is_taken_at_the_next_try() -> None:
    api, clock = FakeApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    a.release()
    assert not a.is_leading()
    clock.now += 2
    assert b.try_acquire_or_renew()
    assert holder(api) == "b"


def test_a_candidate_that_loses_the_race_for_the_lease_does_not_lead() -> None:
    """Every lease write is conditional on what was read: of two candidates writing at
    once, the API server refuses the second (409), which then does not lead."""
    api, clock = FakeApi(), Clock()
    a, b = elector(api, clock, "a"), elector(api, clock, "b")
    a.try_acquire_or_renew()
    a.release()
    read = api.objects[LEASE]
    assert b._taken(read)["metadata"]["resourceVersion"] == read["metadata"]["resourceVersion"]
    api.fail("PUT", LEASE, lambda: ApiError(409, "Conflict", "the object has been modified"))
    assert not b.try_acquire_or_renew()
    assert not b.is_leading()


def test_a_fenced_facade_refuses_writes_but_reads() -> None:
    api = FakeApi()
    leading = False
    fenced: Kube = api.fenced(lambda: leading)
    with pytest.raises(NotLeading):
        fenced.delete("Ingress", "shop", "demo")
    assert fenced.get("Service", "shop", "demo") is None


@pytest.mark.parametrize(
    "durations",
    [(15, 15, 2), (15, 10, 10), (10, 15, 2), (15, 10, 0)],
    ids=["deadline-not-below-duration", "retry-not-below-deadline", "inverted", "zero-retry"],
)
def test_settings_that_cannot_fence_are_refused(durations: tuple[float, float, float]) -> None:
    lease, deadline, retry = durations
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseSettings("ops", "x", "a", lease, deadline, retry)


def test_the_election_loop_reports_when_it_last_tried() -> None:
    api, clock = FakeApi(), Clock()
    a = elector(api, clock, "a")
    assert not a.tried_within(60)  # never tried
    a.try_acquire_or_renew()
    clock.now += 5
    assert a.tried_within(5)
    assert not a.tried_within(4.9)
