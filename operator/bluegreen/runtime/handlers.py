"""Thin Kopf handlers: watch events feed the store and wake the app's reconcile.

Kopf is used for what it is good at (watching the apps, re-listing, liveness, the start
and the end) and nothing else: no change-detecting handlers, so it keeps no bookkeeping on
the BlueGreenApp (no annotations, no finalizers) for GitOps tools to see as drift.
The children are listed once and watched by :mod:`bluegreen.runtime.informer` into the same
:class:`~bluegreen.store.Store`, before any app is reconciled; their events wake their app
through its ``bluegreen.dev/app`` label. The reconcile itself runs in
:mod:`bluegreen.runtime.reconciler`, from the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import kopf
import urllib3

from bluegreen.api.models import GROUP, KIND, PLURAL, VERSION
from bluegreen.core import names
from bluegreen.core.objects import Key
from bluegreen.kube.client import Kube, plural_of
from bluegreen.kube.errors import Outage
from bluegreen.runtime import endpoints, reconciler
from bluegreen.runtime.checker import Checker
from bluegreen.runtime.informer import Informer, wait_synced
from bluegreen.runtime.notifier import Notifier
from bluegreen.runtime.queue import ReconcileQueue
from bluegreen.runtime.store import CHILD_KINDS, PARENT_KINDS, Store

log = logging.getLogger(__name__)

OURS = f"{names.LABEL_MANAGED_BY}={names.MANAGER}"
# A slow safety net for anything a watch could have missed; normal work is event-driven.
RESYNC_SECONDS = float(os.environ.get("BLUEGREEN_RESYNC_SECONDS", "300"))
# At a clean shutdown, how long the Events of the last passes may take to be posted.
EVENTS_SECONDS = 5.0
CONCURRENCY = int(os.environ.get("BLUEGREEN_CONCURRENCY", "8"))


# Watches end every WATCH_SECONDS (the API server closes them, after a bookmark; Kopf
# resumes from the last resourceVersion at the cost of one request); one silent for longer
# than WATCH_DEAD_SECONDS sits on a dead connection and is replaced. That bounds how long a
# change goes unseen after a network fault ends. Whole seconds: the API server wants an int.
WATCH_SECONDS = int(os.environ.get("BLUEGREEN_WATCH_SECONDS", "5"))
WATCH_DEAD_SECONDS = WATCH_SECONDS + 3.0
CONNECT_SECONDS = 5.0
# Kopf's own listings (at start, after a 410): a whole namespace's apps or children in one
# response may take a while; Kopf's default (300 s) would keep a dead connection that long.
LIST_SECONDS = 60.0
KOPF_RETRY_DELAYS = (1.0, 2.0, 3.0)
# At SIGTERM, passes under way finish their writes before the lease is released; a pass
# takes milliseconds, a request at most REQUEST_SECONDS (5 s): well within the pod's 30 s.
SHUTDOWN_SECONDS = 10.0


def is_api_outage(err: BaseException) -> bool:
    """The API server could not be reached or could not serve (overloaded, restarting):
    nothing is wrong with the app, retry as soon as it answers again."""
    return isinstance(err, Outage | OSError | urllib3.exceptions.HTTPError)


def _readiness_hook(
    readiness: endpoints.Readiness | None, kind: str, namespace: str
) -> Callable[[], None]:
    """Tell the readiness endpoint when one watch of children has listed (it is not ready
    before every watch has, nor while one cannot list)."""
    if readiness is None:
        return lambda: None
    watch = f"{plural_of(kind)} in {namespace or 'all namespaces'}"
    readiness.watch_started(watch)
    return lambda: readiness.watch_listed(watch)


class Runtime:
    """What the handlers share: the API facade, the store, the queue and the apps seen."""

    def __init__(
        self,
        kube: Kube,
        namespaces: list[str] | None = None,
        readiness: endpoints.Readiness | None = None,
        checks_via_node_port: str | None = None,
        notifications_namespace: str | None = None,
    ) -> None:
        self.kube = kube
        self.store = Store()
        self.queue = ReconcileQueue(
            self._reconcile, concurrency=CONCURRENCY, is_outage=is_api_outage
        )
        self.checker = Checker(
            checks_via_node_port, on_change=self._check_changed, read_secret=self._secret
        )
        self.notifier = Notifier(kube, notifications_namespace)
        self.apps: set[Key] = set()
        self.generations: dict[Key, int] = {}
        self.settled: set[Key] = set()  # Healthy at their latest generation, when last seen
        self.informers = [
            Informer(
                kube,
                self.store,
                kind,
                namespace,
                "" if kind in PARENT_KINDS else OURS,
                on_event=self._from_watch_thread,
                watch_seconds=WATCH_SECONDS,
                on_answer=self._answered_from_watch_thread,
                on_relisted=self._relisted_from_watch_thread,
                on_listed=_readiness_hook(readiness, kind, namespace),
            )
            for kind in (*CHILD_KINDS, *PARENT_KINDS)
            for namespace in namespaces or [""]
        ]
        self.loop: asyncio.AbstractEventLoop | None = None

    def _reconcile(self, key: Key) -> float | None:
        outcome = reconciler.reconcile(
            self.kube, self.store, *key, checker=self.checker, notifier=self.notifier
        )
        return outcome.requeue_after

    def _secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Prometheus check's Secret, for the runner (on its thread)."""
        return self.kube.secret_data(namespace, name)

    def _check_changed(self, key: Key) -> None:
        """A check's result changed (on a runner thread): wake the app on the loop."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.queue.trigger, key)

    async def start_watching_children(self) -> None:
        """List every child kind into the store before any app is reconciled: a plan from
        a half-filled store would try to create what exists."""
        self.loop = asyncio.get_running_loop()
        for informer in self.informers:
            informer.start()
        await self.loop.run_in_executor(None, wait_synced, self.informers)

    def stop_watching_children(self) -> None:
        for informer in self.informers:
            informer.stop()

    def _from_watch_thread(self, kind: str, type_: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if kind in PARENT_KINDS:
            # A Gateway came or went: any app's route may name it (from any namespace).
            if type_ in ("ADDED", "DELETED") and self.loop is not None:
                self.loop.call_soon_threadsafe(self.wake_all, "")
            return
        app = (meta.get("labels") or {}).get(names.LABEL_APP)
        if app and self.loop is not None:
            key = (str(meta.get("namespace") or ""), str(app))
            # Stamped here: the hop to the loop counts in the wait for the pass.
            self.loop.call_soon_threadsafe(self.child_event, type_, key, time.monotonic())

    def _relisted_from_watch_thread(self, namespace: str) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.wake_all, namespace)

    def wake_all(self, namespace: str) -> None:
        """Every app (of one namespace, or "" all) looks again: bulk work."""
        for key in sorted(self.apps):
            if not namespace or key[0] == namespace:
                self.queue.trigger(key, urgent=False)

    def _answered_from_watch_thread(self) -> None:
        if self.loop is not None and self.queue.parked:
            self.loop.call_soon_threadsafe(self.queue.api_alive)

    async def resync_forever(self) -> None:
        """Plan every app again now and then, from the store (no request): for what no
        event announces, such as a scale-down delay that ran out while a timer was lost."""
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            self.wake_all("")

    def app_event(self, event: kopf.RawEvent) -> None:
        """Queue the app: a change of its spec (a new generation) is urgent, the initial
        listing and our own status writes are bulk work."""
        body: dict[str, Any] = {**event["object"], "kind": KIND}
        meta: dict[str, Any] = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        if event["type"] == "DELETED":
            self.store.remove(KIND, body)
            self.forget(key)
            return
        self.store.put(KIND, body)
        generation = int(meta.get("generation") or 0)
        changed = self.generations.get(key) != generation
        self.apps.add(key)
        self.generations[key] = generation
        status: dict[str, Any] = body.get("status") or {}
        if status.get("phase") == "Healthy" and status.get("observedGeneration") == generation:
            self.settled.add(key)
        else:
            self.settled.discard(key)
        self.queue.trigger(key, urgent=changed and event["type"] is not None)

    def child_event(self, type_: str, key: Key, asked: float | None = None) -> None:
        """Wake the child's app: urgently when the app is mid-release or the child is gone.
        ``asked``: when the event came in on its watch thread (``time.monotonic()``)."""
        if key not in self.apps:
            return
        urgent = type_ == "DELETED" or key not in self.settled
        self.queue.trigger(key, urgent=urgent, asked=asked)

    def forget(self, key: Key) -> None:
        self.apps.discard(key)
        self.generations.pop(key, None)
        self.settled.discard(key)
        self.queue.forget(key)
        self.checker.forget(key)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.watching.server_timeout = WATCH_SECONDS
    settings.watching.inactivity_timeout = WATCH_DEAD_SECONDS
    settings.watching.client_timeout = WATCH_DEAD_SECONDS + WATCH_SECONDS
    settings.watching.connect_timeout = CONNECT_SECONDS
    settings.networking.connect_timeout = CONNECT_SECONDS
    settings.networking.request_timeout = LIST_SECONDS
    # Kopf sleeps between retries of a failed listing (up to 21 s by default) and does not
    # wake when the API server is back: keep those sleeps short.
    settings.networking.error_backoffs = KOPF_RETRY_DELAYS
    # No CRD watching: it needs cluster-wide rights the namespaced install does not have.
    settings.scanning.disabled = True
    # The operator posts its own Events; Kopf's would be about its own internals.
    settings.posting.enabled = False
    memo.kube.post_events_in_background()
    readiness = memo.get("readiness")
    if readiness is not None:
        # Kopf starts watching the apps only after this handler; not ready before it listed.
        for namespace in memo.namespaces or [""]:
            readiness.watch_started(f"{PLURAL} in {namespace or 'all namespaces'}")
    runtime = Runtime(
        memo.kube,
        list(memo.namespaces),
        readiness,
        memo.get("checks_via_node_port"),
        memo.get("notifications_namespace"),
    )
    memo.runtime = runtime
    # Kopf watches the apps only once this returns: their first passes find the store full.
    await runtime.start_watching_children()
    memo.resync = asyncio.get_running_loop().create_task(runtime.resync_forever())


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    memo.resync.cancel()
    await memo.runtime.queue.drain(timeout=SHUTDOWN_SECONDS)
    # The passes' Events too, while this replica still leads (then __main__ releases the lease).
    await asyncio.get_running_loop().run_in_executor(None, memo.kube.flush_events, EVENTS_SECONDS)
    memo.runtime.stop_watching_children()
    memo.runtime.checker.stop_all()
    memo.runtime.notifier.stop_all()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def app_changed(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    runtime.queue.api_alive()
    runtime.app_event(event)
