"""The operator's Prometheus metrics: every definition and every rule of them, here.

Other modules call one function each at the point where something happens (a request to
the API server, a reconcile, a plan, a write, a status); this module turns that into
metrics. Nothing here reads the cluster.

Label cardinality is bounded by design: no metric carries an app's namespace or name.
Per-app facts are aggregated (apps by phase) or folded into histograms (switch latencies);
the per-app bookkeeping behind them is one small entry per app, dropped when the app goes.

Each :class:`Metrics` has its own registry (not prometheus_client's global one), so tests
create as many as they like; the process uses one, :func:`current`.
"""

from __future__ import annotations

import functools
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

import prometheus_client
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from bluegreen.api.models import BlueGreenAppStatus, Phase
from bluegreen.core import reasons
from bluegreen.core.objects import Key
from bluegreen.core.planner import App, Plan
from bluegreen.kube import client
from bluegreen.kube.errors import ApiError, NotLeading, Outage
from bluegreen.runtime import queue as reconcile_queue

P = ParamSpec("P")
R = TypeVar("R")

# The `_created` series (a timestamp per counter and histogram) double the scrape for
# nothing Prometheus uses here.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

PHASES: tuple[Phase, ...] = ("Healthy", "Progressing", "Paused", "Degraded")
# Degraded reasons that mean the pass itself failed (a write or read was refused, the spec
# cannot be served). ChildConflict and RolloutFailed are the app's state, not the pass's.
REPORTED_ERRORS = frozenset({reasons.INVALID_SPEC, reasons.FORBIDDEN, reasons.CHILD_REJECTED})

RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
READY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# The pass that switches: thread hops, a pass of Python, one request.
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
SWITCH_STAGES = ("queued", "planned", "written")
# A release includes its rollout and, without promote, the wait for someone to promote it.
CHANGE_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0)


class QueueDepth(Protocol):
    def depth(self) -> tuple[int, int, int]:
        """(waiting, running, parked)"""
        ...


@dataclass
class _Release:
    """The revision an app is being released to, and when this process first saw it
    (planned) and first saw it due (rolled out at full size with promote)."""

    revision: str
    changed_at: float
    due_at: float | None = None


class _Collector(Collector):
    """Values computed at scrape time from the operator's own state."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = weakref.ref(metrics)

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics()
        if metrics is None:
            return
        apps = GaugeMetricFamily(
            "bluegreen_apps",
            "BlueGreenApps by status.phase, as the last pass of each on this replica found it",
            labels=["phase"],
        )
        for phase, count in metrics.apps_by_phase().items():
            apps.add_metric([phase], count)
        yield apps
        queue = GaugeMetricFamily(
            "bluegreen_queue_apps",
            "Apps in the reconcile queue: waiting for a worker, being reconciled, parked "
            "while the API server cannot be reached",
            labels=["state"],
        )
        states = ("waiting", "running", "parked")
        for state, count in zip(states, metrics.queue_depth(), strict=True):
            queue.add_metric([state], count)
        yield queue


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self._clock = clock
        self._lock = threading.Lock()
        self._phases: dict[Key, Phase] = {}
        self._releases: dict[Key, _Release] = {}
        self._queue: Callable[[], QueueDepth | None] = lambda: None
        r = self.registry
        self.leader = prometheus_client.Gauge(
            "bluegreen_leader",
            "1 while this replica leads (or runs without leader election), 0 on standby",
            registry=r,
        )
        self.switches = prometheus_client.Counter(
            "bluegreen_switches", "Prod Service selector switches written", registry=r
        )
        self.switch_after_due = prometheus_client.Histogram(
            "bluegreen_switch_after_ready_seconds",
            "From the first plan that found the new revision rolled out at the size prod "
            "needs with promote true, to the switch write acknowledged",
            buckets=READY_BUCKETS,
            registry=r,
        )
        self.switch_after_change = prometheus_client.Histogram(
            "bluegreen_switch_after_change_seconds",
            "From the first plan for a new revision (the template change) to the switch "
            "write acknowledged; includes the rollout and any wait for promote",
            buckets=CHANGE_BUCKETS,
            registry=r,
        )
        self.switch_stages = prometheus_client.Histogram(
            "bluegreen_switch_stage_seconds",
            "Where the pass that switched spent its time: queued, from the watch event, timer "
            "or check result that asked for the pass to a worker taking it; planned, from "
            "then to the switch request (reading, planning, the writes before it); written, "
            "the switch request to the API server's answer",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.reconcile_duration = prometheus_client.Histogram(
            "bluegreen_reconcile_duration_seconds",
            "Duration of one reconcile pass of one app, failed ones included",
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = prometheus_client.Counter(
            "bluegreen_reconcile_errors",
            "Reconcile passes that failed, by reason",
            ["reason"],
            registry=r,
        )
        self.api_requests = prometheus_client.Counter(
            "bluegreen_api_requests",
            "Requests of the operator to the API server (its child watches as WATCH; not "
            "Kopf's watch of the apps), by HTTP method and status code (<error>: no answer)",
            ["verb", "code"],
            registry=r,
        )
        self.api_duration = prometheus_client.Histogram(
            "bluegreen_api_request_duration_seconds",
            "Time to the API server's answer, by HTTP method",
            ["verb"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.notifications = prometheus_client.Counter(
            "bluegreen_notifications",
            "Notifications by destination kind and outcome (sent, failed: retries ran out, "
            "uncertain: a replica stopped mid-request)",
            ["kind", "outcome"],
            registry=r,
        )
        self.notification_requests = prometheus_client.Counter(
            "bluegreen_notification_requests",
            "Requests to notification destinations by kind and result (ok, error)",
            ["kind", "result"],
            registry=r,
        )
        r.register(_Collector(self))
        prometheus_client.ProcessCollector(registry=r)

    # ---------------------------------------------------------------- exposition

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape's body and content type (OpenMetrics when the scraper asks for it)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    # ---------------------------------------------------------------- scrape-time state

    def apps_by_phase(self) -> dict[Phase, int]:
        with self._lock:
            phases = list(self._phases.values())
        return {phase: phases.count(phase) for phase in PHASES}

    def queue_depth(self) -> tuple[int, int, int]:
        queue = self._queue()
        return queue.depth() if queue is not None else (0, 0, 0)

    def track_queue(self, queue: QueueDepth) -> None:
        self._queue = weakref.ref(queue)

    def track_leader(self, is_leading: Callable[[], bool]) -> None:
        self.leader.set_function(lambda: 1.0 if is_leading() else 0.0)

    # ---------------------------------------------------------------- events

    def api_answered(self, verb: str, code: str, seconds: float) -> None:
        self.api_requests.labels(verb, code).inc()
        self.api_duration.labels(verb).observe(seconds)

    def reconciled(self, seconds: float, error: BaseException | None) -> None:
        self.reconcile_duration.observe(seconds)
        if error is not None:
            self.reconcile_errors.labels(error_reason(error)).inc()

    def planned(self, key: Key, plan: Plan) -> None:
        """Start the clocks of a release: the first plan for a revision, and the first
        plan that finds it due."""
        now = self._clock()
        revision = plan.status.preview_revision
        if plan.switch.planned:
            revision = plan.status.active_revision
        with self._lock:
            if revision is None:
                self._releases.pop(key, None)  # nothing waits (or the preview was abandoned)
                return
            release = self._releases.get(key)
            if release is None or release.revision != revision:
                release = self._releases[key] = _Release(revision, now)
            if plan.switch.due and release.due_at is None:
                release.due_at = now

    def switched(self, key: Key, stages: tuple[float, float, float] | None = None) -> None:
        """The switch write, acknowledged by the API server: it stops the clocks.
        ``stages``: the seconds its pass was queued, planned and written."""
        now = self._clock()
        self.switches.inc()
        if stages is not None:
            for stage, seconds in zip(SWITCH_STAGES, stages, strict=True):
                self.switch_stages.labels(stage).observe(seconds)
        with self._lock:
            release = self._releases.pop(key, None)
        if release is None:
            return  # the release began before this replica led: its start is unknown
        self.switch_after_change.observe(now - release.changed_at)
        if release.due_at is not None:
            self.switch_after_due.observe(now - release.due_at)

    def status_computed(self, key: Key, phase: Phase | None, degraded_reason: str | None) -> None:
        with self._lock:
            if phase is not None:
                self._phases[key] = phase
        if degraded_reason in REPORTED_ERRORS:
            self.reconcile_errors.labels(degraded_reason).inc()

    def app_gone(self, key: Key) -> None:
        with self._lock:
            self._phases.pop(key, None)
            self._releases.pop(key, None)


def error_reason(err: BaseException) -> str:
    """A fixed word for what made a pass fail (a bounded label)."""
    if isinstance(err, NotLeading):
        return "NotLeading"
    if isinstance(err, ApiError):
        return "ApiUnavailable" if isinstance(err, Outage) else "ApiError"
    if isinstance(err, OSError) or type(err).__module__.startswith("urllib3"):
        return "ApiUnreachable"
    return "Unexpected"


# -------------------------------------------------------------------- the process's metrics

_current = Metrics()


def current() -> Metrics:
    return _current


def _count_answer(verb: str, code: str, seconds: float) -> None:
    _current.api_answered(verb, code, seconds)


def _forget_key(key: Key) -> None:
    _current.app_gone(key)


def track_queue(queue: QueueDepth) -> None:
    _current.track_queue(queue)


# Every request of every client is counted, every queue's depth tracked and every app a
# queue forgets dropped, whichever Metrics is current then.
client.on_answer(_count_answer)
reconcile_queue.on_new_queue(track_queue)
reconcile_queue.on_forget(_forget_key)


def use(metrics: Metrics) -> Metrics:
    """Make ``metrics`` the one the hooks report to; returns the previous one."""
    global _current
    previous, _current = _current, metrics
    return previous


# -------------------------------------------------------------------- hooks for other modules


def timed_reconcile(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate the reconcile of one app: its duration, and why it failed when it raised."""

    @functools.wraps(fn)
    def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            error = err
            raise
        finally:
            _current.reconciled(time.perf_counter() - started, error)

    return timed


def observe_plan(app: App, plan: Plan) -> None:
    _current.planned((app.owner.namespace, app.owner.name), plan)


def observe_switch(namespace: str, name: str, sent: float | None = None) -> None:
    """The switch was written; ``sent``: when (``time.monotonic()``) its request went out."""
    timing = reconcile_queue.pass_timing()
    stages = None
    if sent is not None and timing is not None:
        answered = time.monotonic()
        stages = (timing.began - timing.asked, sent - timing.began, answered - sent)
    _current.switched((namespace, name), stages)


def observe_status(body: dict[str, Any], new: BlueGreenAppStatus) -> None:
    """The status a pass computed (written or not: it may be unchanged)."""
    meta = body["metadata"]
    degraded = next((c for c in new.conditions if c.type == "Degraded"), None)
    reason = degraded.reason if degraded is not None and degraded.status == "True" else None
    _current.status_computed((meta["namespace"], meta["name"]), new.phase, reason)


def forget_app(namespace: str, name: str) -> None:
    _current.app_gone((namespace, name))


def observe_notification(kind: str, outcome: str) -> None:
    _current.notifications.labels(kind, outcome).inc()


def observe_notification_request(kind: str, result: str) -> None:
    _current.notification_requests.labels(kind, result).inc()
