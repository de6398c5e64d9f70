"""A per-app reconcile queue: event bursts coalesce, one reconcile per app at a time.

Many watch events (a Deployment's status moves several times during a rollout) may arrive
for one app while it is being reconciled; they mark it dirty and it runs once more after
the current pass, with what is live then. Different apps reconcile in parallel, bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
T = TypeVar("T")

# Retry delays after an unexpected error (API unreachable, 5xx): short first, then capped.
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class ReconcileQueue:
    def __init__(
        self,
        reconcile: Callable[[Key], float | None],
        concurrency: int = 8,
    ) -> None:
        """``reconcile`` runs in a worker thread and returns when to run again (seconds)."""
        self._reconcile = reconcile
        self._limit = asyncio.Semaphore(concurrency)
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._dirty: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}

    def trigger(self, key: Key) -> None:
        """Reconcile the app now, or once more right after the pass under way."""
        if key in self._running:
            self._dirty.add(key)
            return
        self._running[key] = asyncio.get_running_loop().create_task(self._run(key))

    def trigger_later(self, key: Key, delay: float) -> None:
        """Reconcile after ``delay`` seconds; an earlier pending timer wins."""
        loop = asyncio.get_running_loop()
        when = loop.time() + max(delay, 0.0)
        pending = self._timers.get(key)
        if pending is not None and not pending.cancelled() and pending.when() <= when:
            return
        if pending is not None:
            pending.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def forget(self, key: Key) -> None:
        """The app is gone: drop its timer and failure count."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.trigger(key)

    async def _run(self, key: Key) -> None:
        try:
            while True:
                self._dirty.discard(key)
                async with self._limit:
                    again = await self._pass(key)
                if again is not None:
                    self.trigger_later(key, again)
                if key not in self._dirty:
                    break
        finally:
            # No await between the dirty check and this: a trigger cannot slip in between.
            del self._running[key]

    async def _pass(self, key: Key) -> float | None:
        try:
            again = await asyncio.to_thread(self._reconcile, key)
        except Exception:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
            log.exception("reconcile of %s/%s failed; retrying in %ss", *key, delay)
            return delay
        self._failures.pop(key, None)
        return again

    async def idle(self) -> None:
        """Wait until no reconcile runs (for tests and a clean shutdown)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
