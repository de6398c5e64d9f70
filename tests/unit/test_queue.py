"""The per-app reconcile queue: coalescing, one pass per app at a time, timers, retries."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter

import pytest

from bluegreen.core.objects import Key
from bluegreen.runtime import queue as queue_module
from bluegreen.runtime.queue import ReconcileQueue

A: Key = ("shop", "a")
B: Key = ("shop", "b")


class Recorder:
    """A reconcile that takes a while, counts its passes and notes overlaps."""

    def __init__(self, seconds: float = 0.05, again: float | None = None) -> None:
        self.seconds, self.again = seconds, again
        self.passes: Counter[Key] = Counter()
        self.running: set[Key] = set()
        self.overlapped = False  # the same app twice at once
        self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(self, key: Key) -> float | None:
        with self.lock:
            self.overlapped |= key in self.running
            self.running.add(key)
            self.most_at_once = max(self.most_at_once, len(self.running))
            self.passes[key] += 1
        time.sleep(self.seconds)
        with self.lock:
            self.running.discard(key)
        return self.again


async def settle(q: ReconcileQueue, seconds: float = 0.0) -> None:
    await asyncio.sleep(seconds)
    await q.idle()


def test_a_burst_of_events_coalesces_into_one_more_pass() -> None:
    async def scenario() -> Recorder:
        rec = Recorder(seconds=0.3)
        q = ReconcileQueue(rec)
        for _ in range(20):
            q.trigger(A)
            await asyncio.sleep(0.001)
        await settle(q)
        return rec

    rec = asyncio.run(scenario())
    assert rec.passes[A] == 2  # the pass under way, then one with what is live then
    assert not rec.overlapped


@pytest.mark.parametrize("limit", [1, 2])
def test_apps_reconcile_in_parallel_up_to_the_limit(limit: int) -> None:
    async def scenario() -> Recorder:
        rec = Recorder(seconds=0.2)
        q = ReconcileQueue(rec, concurrency=limit)
        for key in (A, B, ("shop", "c")):
            q.trigger(key)
        await settle(q)
        return rec

    rec = asyncio.run(scenario())
    assert rec.most_at_once == limit
    assert sum(rec.passes.values()) == 3


def test_requeue_after_runs_the_app_again_later() -> None:
    async def scenario() -> Recorder:
        rec = Recorder(seconds=0, again=0.1)
        q = ReconcileQueue(rec)
        q.trigger(A)
        await settle(q, 0.5)
        q.forget(A)  # stops the timer chain
        return rec

    assert asyncio.run(scenario()).passes[A] >= 2


def test_an_earlier_timer_wins() -> None:
    async def scenario() -> Recorder:
        rec = Recorder(seconds=0)
        q = ReconcileQueue(rec)
        q.trigger_later(A, 0.05)
        q.trigger_later(A, 10)  # later: ignored
        await settle(q, 0.2)
        return rec

    assert asyncio.run(scenario()).passes[A] == 1


def test_a_failing_pass_is_retried_with_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "BACKOFF", (0.05,))
    calls: list[float] = []

    def flaky(key: Key) -> float | None:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ValueError("a bug, not an outage")
        return None

    async def scenario() -> None:
        q = ReconcileQueue(flaky)
        q.trigger(A)
        await settle(q, 0.4)

    asyncio.run(scenario())
    assert len(calls) == 3
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(calls))


# ---------------------------------------------------------------- fairness and priority


def test_namespaces_take_turns_so_a_burst_cannot_starve_another_team() -> None:
    async def scenario() -> list[Key]:
        order: list[Key] = []
        q = ReconcileQueue(lambda key: order.append(key), concurrency=1)
        for i in range(20):
            q.trigger(("flood", f"app-{i}"))
        q.trigger(("team", "release"))
        await settle(q)
        return order

    order = asyncio.run(scenario())
    assert len(order) == 21
    # The first flood app already had the one worker; the other team goes next.
    assert order.index(("team", "release")) == 1


def test_urgent_work_goes_before_bulk_work() -> None:
    async def scenario() -> list[Key]:
        order: list[Key] = []
        q = ReconcileQueue(lambda key: order.append(key), concurrency=1)
        for i in range(5):
            q.trigger(("shop", f"resync-{i}"), urgent=False)
        q.trigger(("shop", "changed"), urgent=True)
        await settle(q)
        return order

    order = asyncio.run(scenario())
    assert order.index(("shop", "changed")) == 1  # right after the pass already under way


def test_fair_queue_round_robin_and_promotion() -> None:
    fq = queue_module.FairQueue()
    for key in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "1"), ("c", "1")]:
        fq.push(key, urgent=False)
    fq.push(("a", "2"), urgent=False)  # already queued: stays once
    fq.push(("c", "1"), urgent=True)  # promoted
    fq.push(("c", "1"), urgent=False)  # urgency is never lowered
    popped = []
    while (item := fq.pop()) is not None:
        popped.append(item)
    assert popped == [
        (("c", "1"), True),
        (("a", "1"), False),
        (("b", "1"), False),
        (("a", "2"), False),
        (("a", "3"), False),
    ]
    assert len(fq) == 0


def test_a_busy_app_goes_back_in_line_instead_of_holding_its_worker() -> None:
    async def scenario() -> list[Key]:
        order: list[Key] = []

        def busy(key: Key) -> None:
            order.append(key)
            time.sleep(0.05)

        q = ReconcileQueue(busy, concurrency=1)
        q.trigger(A)
        await asyncio.sleep(0.01)
        q.trigger(("other", "b"))
        q.trigger(A)  # changed again during its pass
        await settle(q)
        return order

    assert asyncio.run(scenario()) == [A, ("other", "b"), A]


# ---------------------------------------------------------------- recovering from an outage


class Api:
    """An API server the test turns off and on: passes fail with a refused connection while
    it is down."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.succeeded: dict[Key, float] = {}
        self.attempts: Counter[Key] = Counter()

    def reconcile(self, key: Key) -> float | None:
        self.attempts[key] += 1
        if not self.up.is_set():
            raise ConnectionRefusedError("connection refused")
        self.succeeded.setdefault(key, time.monotonic())
        return None


def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scaled-down delays: backoff as before, canaries a few times faster than it."""
    monkeypatch.setattr(queue_module, "BACKOFF", (0.1, 0.2, 0.5, 1.0, 3.0, 6.0))
    monkeypatch.setattr(queue_module, "CANARY_DELAYS", (0.05, 0.1, 0.2), raising=False)


def test_apps_are_retried_within_moments_of_the_api_coming_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Down long enough for a per-app backoff to grow (2 s); once up, every app must be
    served within a second, not at the end of its backoff."""
    fast_retries(monkeypatch)
    api = Api()
    apps = [("shop", f"app-{i}") for i in range(5)]

    async def scenario() -> float:
        q = ReconcileQueue(api.reconcile, concurrency=2)
        for key in apps:
            q.trigger(key)
        await asyncio.sleep(2.0)
        api.up.set()
        back = time.monotonic()
        await settle(q, 1.5)
        return back

    back = asyncio.run(scenario())
    assert set(api.succeeded) == set(apps)
    assert max(api.succeeded.values()) - back < 1.0
    # While down, one canary probed at a time: no storm of retries from every app.
    assert sum(api.attempts.values()) < 2 * len(apps) + 2.0 / 0.2 + 2


def test_a_watch_event_retries_parked_apps_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queue_module, "CANARY_DELAYS", (60.0,))  # no canary in this test
    api = Api()

    async def scenario() -> tuple[int, int]:
        q = ReconcileQueue(api.reconcile)
        q.trigger(A)
        q.trigger(B)
        await settle(q, 0.1)
        parked = q.parked
        api.up.set()
        q.api_alive()
        await settle(q)
        return parked, q.parked

    assert asyncio.run(scenario()) == (2, 0)
    assert set(api.succeeded) == {A, B}


def test_other_failures_keep_their_backoff_when_the_api_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pass that fails for its own reason (a bug) is not retried by another's success."""
    monkeypatch.setattr(queue_module, "BACKOFF", (30.0,))
    calls: Counter[Key] = Counter()

    def buggy_a(key: Key) -> float | None:
        calls[key] += 1
        if key == A:
            raise TypeError("a bug in A's pass")
        return None

    async def scenario() -> None:
        q = ReconcileQueue(buggy_a)
        q.trigger(A)
        await settle(q, 0.05)
        q.trigger(B)
        q.api_alive()
        await settle(q, 0.2)
        q.forget(A)

    asyncio.run(scenario())
    assert calls == {A: 1, B: 1}


def test_an_app_failing_alone_backs_off_while_the_api_answers_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 5xx for one app only (say, a webhook on its children is down) is not an outage:
    the app backs off instead of being retried on every other app's success."""
    monkeypatch.setattr(queue_module, "BACKOFF", (30.0,))
    monkeypatch.setattr(queue_module, "CANARY_DELAYS", (0.01,))
    calls: Counter[Key] = Counter()

    def a_unavailable(key: Key) -> float | None:
        calls[key] += 1
        time.sleep(0.01)
        if key == A:
            raise ConnectionResetError("its webhook is down")
        return None

    async def scenario() -> int:
        q = ReconcileQueue(a_unavailable)
        q.trigger(B)
        await settle(q)
        q.trigger(A)
        for _ in range(20):
            q.trigger(B)
            await settle(q, 0.02)
        parked = q.parked
        q.forget(A)
        return parked

    assert asyncio.run(scenario()) == 0
    assert calls[A] == 1


def test_an_outage_is_logged_once_and_its_end_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fast_retries(monkeypatch)
    api = Api()

    async def scenario() -> None:
        q = ReconcileQueue(api.reconcile)
        q.trigger(A)  # alone: each canary takes it out of the parked ones for a moment
        await asyncio.sleep(0.6)  # several canaries fail meanwhile
        api.up.set()
        await settle(q, 0.5)

    with caplog.at_level("INFO", logger="bluegreen.runtime.queue"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1, messages
    assert sum("answers again" in m for m in messages) == 1, messages
    assert api.attempts[A] > 3  # the canaries did probe


def test_a_due_timer_goes_before_bulk_work() -> None:
    """A scale-down delay that ends during a resync of many apps is not served last."""

    async def scenario() -> list[Key]:
        order: list[Key] = []

        def slow(key: Key) -> None:
            order.append(key)
            time.sleep(0.05)

        q = ReconcileQueue(slow, concurrency=1)
        q.trigger_later(("shop", "scale-down"), 0.05)
        for i in range(20):
            q.trigger(("shop", f"resync-{i}"), urgent=False)
        await settle(q, 0.1)
        await settle(q)
        return order

    order = asyncio.run(scenario())
    assert len(order) == 21
    assert order.index(("shop", "scale-down")) < 6  # after the pass or two of its 50 ms


def test_drain_lets_the_pass_under_way_finish_and_starts_no_other() -> None:
    """At SIGTERM: the write under way completes; nothing new begins before the lease goes."""

    async def scenario() -> tuple[bool, Recorder, float]:
        rec = Recorder(seconds=0.3)
        q = ReconcileQueue(rec, concurrency=1)
        q.trigger(A)
        q.trigger(B)  # waits for the one worker
        await asyncio.sleep(0.05)
        started = time.monotonic()
        drained = await q.drain(timeout=5)
        took = time.monotonic() - started
        q.trigger(A)
        await asyncio.sleep(0.1)
        return drained, rec, took

    drained, rec, took = asyncio.run(scenario())
    assert drained
    assert took >= 0.2  # it waited for A's pass
    assert dict(rec.passes) == {A: 1}  # B never started, nor A again


def test_drain_gives_up_after_its_timeout() -> None:
    async def scenario() -> bool:
        q = ReconcileQueue(Recorder(seconds=1.0))
        q.trigger(A)
        await asyncio.sleep(0.05)
        return await q.drain(timeout=0.1)

    assert asyncio.run(scenario()) is False


def test_a_pass_knows_when_it_was_first_asked_for() -> None:
    """From the first ask since the app's last pass began: later asks while it waits do
    not move it, and the pass after one under way counts from the ask that came in then."""
    seen: list[queue_module.PassTiming | None] = []

    def reconcile(key: Key) -> None:
        seen.append(queue_module.pass_timing())
        time.sleep(0.05)

    async def scenario() -> tuple[float, float]:
        q = ReconcileQueue(reconcile)
        first = time.monotonic() - 1.0
        q.trigger(A, asked=first)
        q.trigger(A, asked=first + 0.5)  # waiting still: the first ask stands
        await asyncio.sleep(0.01)  # the pass is under way
        during = time.monotonic()
        q.trigger(A)
        await settle(q)
        return first, during

    first, during = asyncio.run(scenario())
    assert queue_module.pass_timing() is None  # not on a worker
    assert len(seen) == 2 and seen[0] is not None and seen[1] is not None
    assert seen[0].asked == first and seen[0].began >= first + 1.0
    assert during <= seen[1].asked <= seen[1].began
    assert seen[1].began >= seen[0].began + 0.05  # after the pass under way
