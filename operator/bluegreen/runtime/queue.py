"""A per-app reconcile queue: fair, prioritised, coalescing, quick to recover.

- Coalescing: many watch events (a Deployment's status moves several times during a
  rollout) for an app being reconciled mark it dirty; it runs once more after the current
  pass, with what is live then. One pass per app at a time.
- Bounded: at most ``concurrency`` passes run at once, each in a worker thread.
- Prioritised and fair: apps waiting for a worker are taken urgent first (a user's change,
  a child event of an app mid-release, a due timer), bulk after (resyncs, initial
  listings); within each class namespaces take turns, so a burst of a thousand apps in one
  namespace delays another namespace's release by at most one pass per worker.
- Quick to recover: a pass that fails because the API server is unreachable parks its app
  instead of backing off for up to a minute. While apps are parked one of them is tried
  again every few seconds (a canary); as soon as any request succeeds again (a pass, or a
  watch event: :meth:`ReconcileQueue.api_alive`) every parked app is retried at once.
  Other failures (a bug, a refused request) back off per app, up to a minute.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bluegreen.core.objects import Key

log = logging.getLogger(__name__)


# What the process plugs in (metrics: runtime.metrics registers both): told of every new
# queue, and of every app a queue forgets. The queue itself knows nothing of metrics.
_new_queue_hooks: list[Callable[[ReconcileQueue], None]] = []
_forget_hooks: list[Callable[[Key], None]] = []


def on_new_queue(hook: Callable[[ReconcileQueue], None]) -> None:
    """Call ``hook`` with every queue made from now on."""
    _new_queue_hooks.append(hook)


def on_forget(hook: Callable[[Key], None]) -> None:
    """Call ``hook`` with every app a queue forgets from now on (the app is gone)."""
    _forget_hooks.append(hook)


# The pass each worker thread runs: when it was first asked for and when the worker took it.
_this_pass = threading.local()


@dataclass(frozen=True)
class PassTiming:
    """Of the pass under way on this thread, in ``time.monotonic()`` seconds: ``asked``,
    when the first event, timer or check result that asked for it came in (the earliest
    since the app's previous pass began); ``began``, when a worker took it."""

    asked: float
    began: float


def pass_timing() -> PassTiming | None:
    """The timing of the pass this thread runs; None outside a queue's worker."""
    timing: PassTiming | None = getattr(_this_pass, "timing", None)
    return timing


# Retry delays after an unexpected error (a bug, a refused request): short first, then capped.
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# While the API server is unreachable, one parked app probes it after each of these delays
# (the last repeats): its end is noticed within seconds, at the cost of one pass each time.
CANARY_DELAYS = (0.5, 1.0, 2.0)
# An "unreachable" failure within this long of an answer from the API server is the app's
# own (a webhook of its children down, say): it backs off like any other failure.
ANSWERED_RECENTLY = 1.0


class _Lane:
    """Keys of one priority class, by namespace, FIFO within a namespace."""

    def __init__(self) -> None:
        self._by_namespace: dict[str, dict[Key, None]] = {}

    def __contains__(self, key: Key) -> bool:
        return key in self._by_namespace.get(key[0], {})

    def __len__(self) -> int:
        # list() copies the values in one step: the metrics thread may ask while the
        # event loop changes the lanes.
        return sum(map(len, list(self._by_namespace.values())))

    def push(self, key: Key) -> None:
        self._by_namespace.setdefault(key[0], {})[key] = None

    def pop(self, turn: Callable[[str], float]) -> Key | None:
        """The first key of the namespace whose turn comes first."""
        if not self._by_namespace:
            return None
        namespace = min(self._by_namespace, key=turn)
        keys = self._by_namespace[namespace]
        key = next(iter(keys))
        self.discard(key)
        return key

    def discard(self, key: Key) -> None:
        keys = self._by_namespace.get(key[0])
        if keys is not None and key in keys:
            del keys[key]
            if not keys:
                del self._by_namespace[key[0]]


class FairQueue:
    """Apps waiting for a worker: urgent before bulk; in each class the namespace served
    longest ago goes first (round-robin), so no namespace's burst starves another's."""

    def __init__(self) -> None:
        self._urgent = _Lane()
        self._bulk = _Lane()
        self._served: dict[str, int] = {}  # namespace -> tick of its last pop
        self._tick = 0

    def __contains__(self, key: Key) -> bool:
        return key in self._urgent or key in self._bulk

    def __len__(self) -> int:
        return len(self._urgent) + len(self._bulk)

    def push(self, key: Key, urgent: bool) -> None:
        """Queue the app once; urgency only ever raises its place."""
        if key in self._urgent:
            return
        if urgent:
            self._bulk.discard(key)
            self._urgent.push(key)
        elif key not in self._bulk:
            self._bulk.push(key)

    def pop(self) -> tuple[Key, bool] | None:
        """The next app and whether it was urgent; None when none waits."""
        for lane, urgent in ((self._urgent, True), (self._bulk, False)):
            key = lane.pop(self._turn)
            if key is not None:
                self._tick += 1
                self._served[key[0]] = self._tick
                return key, urgent
        return None

    def discard(self, key: Key) -> None:
        self._urgent.discard(key)
        self._bulk.discard(key)

    def _turn(self, namespace: str) -> float:
        # A namespace not served yet goes right before the one served last.
        return self._served.get(namespace, self._tick - 0.5)


@dataclass
class _Outage:
    """Apps whose last pass could not reach the API server, and the canary probing it."""

    parked: dict[Key, bool]  # key -> urgent
    canary: asyncio.TimerHandle | None = None
    probes: int = 0
    since: float | None = None  # loop time it began; None: no outage
    last_answer: float = float("-inf")  # loop time of the last request that got through


class ReconcileQueue:
    def __init__(
        self,
        reconcile: Callable[[Key], float | None],
        concurrency: int = 8,
        is_outage: Callable[[BaseException], bool] = lambda err: isinstance(err, OSError),
    ) -> None:
        """``reconcile`` runs in a worker thread and returns when to run again (seconds).
        ``is_outage`` tells a failure to reach the API server from any other error."""
        self._reconcile = reconcile
        self._is_outage = is_outage
        self._concurrency = concurrency
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="reconcile"
        )
        self._waiting = FairQueue()
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._urgency: dict[Key, bool] = {}  # of the pass under way
        self._dirty: dict[Key, bool] = {}  # triggered during its pass -> urgent
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._failures: dict[Key, int] = {}
        self._asked: dict[Key, float] = {}  # monotonic: the first ask since its last pass began
        self._outage = _Outage(parked={})
        self._draining = False
        for hook in _new_queue_hooks:
            hook(self)

    # ---------------------------------------------------------------- what callers do

    def trigger(self, key: Key, urgent: bool = True, asked: float | None = None) -> None:
        """Reconcile the app as soon as a worker is free (or once more right after the pass
        under way). ``urgent``: a user-driven change, served before bulk work. ``asked``:
        when (``time.monotonic()``) the cause came in, if before now (a watch event that
        hopped from its thread)."""
        self._asked.setdefault(key, time.monotonic() if asked is None else asked)
        self._outage.parked.pop(key, None)
        if key in self._running:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            return
        self._waiting.push(key, urgent)
        self._dispatch()

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
        """The app is gone: drop everything queued or scheduled for it."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)
        self._asked.pop(key, None)
        self._waiting.discard(key)
        self._dirty.pop(key, None)
        self._outage.parked.pop(key, None)
        for hook in _forget_hooks:
            hook(key)

    def api_alive(self) -> None:
        """Something came back from the API server (a watch event): retry parked apps now."""
        self._outage.last_answer = asyncio.get_running_loop().time()
        if self._outage.since is not None:
            self._recovered()

    @property
    def parked(self) -> int:
        """Apps waiting for the API server to answer again."""
        return len(self._outage.parked)

    def depth(self) -> tuple[int, int, int]:
        """Apps waiting for a worker, being reconciled, parked (any thread may ask)."""
        return len(self._waiting), len(self._running), len(self._outage.parked)

    async def drain(self, timeout: float) -> bool:
        """At shutdown: start no pass any more, and wait up to ``timeout`` seconds for
        the passes under way to finish their writes. True when none is left running."""
        self._draining = True
        running = list(self._running.values())
        if running:
            log.info("waiting for %d reconciles under way to finish", len(running))
            await asyncio.wait(running, timeout=timeout)
        return not self._running

    async def idle(self) -> None:
        """Wait until no reconcile runs or waits for a worker (tests, a clean shutdown)."""
        while self._running or self._waiting:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
            await asyncio.sleep(0)

    # ---------------------------------------------------------------- scheduling

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.trigger(key, urgent=True)  # due work of an app mid-release, or a retry

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while len(self._running) < self._concurrency and not self._draining:
            popped = self._waiting.pop()
            if popped is None:
                return
            key, self._urgency[key] = popped
            self._running[key] = loop.create_task(self._run(key))

    async def _run(self, key: Key) -> None:
        try:
            again = await self._pass(key)
            if again is not None:
                self.trigger_later(key, again)
        finally:
            # No await from here on: a trigger cannot slip in between.
            del self._running[key]
            del self._urgency[key]
            urgent = self._dirty.pop(key, None)
            if urgent is not None:
                # Back in line rather than straight on: a busy app does not hold a worker.
                self._outage.parked.pop(key, None)
                self._waiting.push(key, urgent)
            self._dispatch()

    async def _pass(self, key: Key) -> float | None:
        loop = asyncio.get_running_loop()
        asked = self._asked.pop(key, None)
        try:
            again = await loop.run_in_executor(self._executor, self._timed, key, asked)
        except Exception as err:
            return self._failed(key, err)
        self._failures.pop(key, None)
        self.api_alive()
        return again

    def _timed(self, key: Key, asked: float | None) -> float | None:
        """The pass, on its worker thread, which knows when it was asked for."""
        began = time.monotonic()
        _this_pass.timing = PassTiming(began if asked is None else asked, began)
        try:
            return self._reconcile(key)
        finally:
            _this_pass.timing = None

    # ---------------------------------------------------------------- failures

    def _failed(self, key: Key, err: Exception) -> float | None:
        since_answer = asyncio.get_running_loop().time() - self._outage.last_answer
        if self._is_outage(err) and since_answer > ANSWERED_RECENTLY:
            self._park(key, err)
            return None
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
        log.error("reconcile of %s/%s failed; retrying in %ss", *key, delay, exc_info=err)
        return delay

    def _park(self, key: Key, err: Exception) -> None:
        loop = asyncio.get_running_loop()
        outage = self._outage
        if outage.since is None:
            outage.since = loop.time()
            log.warning("the API server is unreachable (%s: %s); waiting for it", *_describe(err))
        outage.parked[key] = self._urgency[key]
        if outage.canary is None:
            delay = CANARY_DELAYS[min(outage.probes, len(CANARY_DELAYS) - 1)]
            outage.probes += 1
            outage.canary = loop.call_later(delay, self._probe)

    def _probe(self) -> None:
        """Try one parked app: its pass succeeding ends the outage for all."""
        self._outage.canary = None
        if self._outage.parked:
            key = next(iter(self._outage.parked))
            self.trigger(key, urgent=self._outage.parked[key])

    def _recovered(self) -> None:
        outage = self._outage
        parked, outage.parked = outage.parked, {}
        if outage.canary is not None:
            outage.canary.cancel()
        outage.canary, outage.probes = None, 0
        down = asyncio.get_running_loop().time() - (outage.since or 0.0)
        outage.since = None
        log.info("the API server answers again after %.1fs; retrying %d apps", down, len(parked))
        for key, urgent in parked.items():
            self.trigger(key, urgent)


def _describe(err: BaseException) -> tuple[str, str]:
    return type(err).__name__, str(err)[:200]
