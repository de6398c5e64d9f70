"""The per-app reconcile queue: coalescing, one pass per app at a time, timers, retries."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter

import pytest

from bluegreen import queue as queue_module
from bluegreen.queue import Key, ReconcileQueue

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
            raise ConnectionError("API server unreachable")
        return None

    async def scenario() -> None:
        q = ReconcileQueue(flaky)
        q.trigger(A)
        await settle(q, 0.4)

    asyncio.run(scenario())
    assert len(calls) == 3
    assert all(b - a >= 0.04 for a, b in itertools.pairwise(calls))
