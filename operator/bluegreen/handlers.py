"""Thin Kopf handlers: watch events only wake the app's reconcile.

Kopf is used for what it is good at (watching, re-listing, liveness) and nothing else:
no change-detecting handlers, so it keeps no bookkeeping on the BlueGreenApp (no
annotations, no finalizers) for GitOps tools to see as drift. The reconcile itself runs
in :mod:`bluegreen.reconciler`; children wake it through their ``bluegreen.dev/app`` label.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf
import urllib3

from bluegreen import names, reconciler
from bluegreen.checker import Checker
from bluegreen.kube import ApiError, Kube
from bluegreen.models import GROUP, PLURAL, VERSION
from bluegreen.queue import Key, ReconcileQueue

log = logging.getLogger(__name__)

OURS = f"{names.LABEL_MANAGED_BY}={names.MANAGER}"
# A slow safety net for anything a watch could have missed; normal work is event-driven.
RESYNC_SECONDS = float(os.environ.get("BLUEGREEN_RESYNC_SECONDS", "300"))
CONCURRENCY = int(os.environ.get("BLUEGREEN_CONCURRENCY", "8"))

# The children whose events wake their app, selected by the API server by our label.
CHILDREN = (
    ("apps", "v1", "deployments"),
    ("discovery.k8s.io", "v1", "endpointslices"),
    ("", "v1", "services"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("batch", "v1", "jobs"),  # check Jobs
)

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


def is_api_outage(err: BaseException) -> bool:
    """The API server could not be reached or could not serve (overloaded, restarting):
    nothing is wrong with the app, retry as soon as it answers again."""
    if isinstance(err, ApiError):
        return err.status == 429 or err.status >= 500
    return isinstance(err, OSError | urllib3.exceptions.HTTPError)


class Runtime:
    """What the handlers share: the API facade, the queue and the apps seen so far."""

    def __init__(self, kube: Kube, checks_via_node_port: str | None = None) -> None:
        self.kube = kube
        self.queue = ReconcileQueue(
            self._reconcile, concurrency=CONCURRENCY, is_outage=is_api_outage
        )
        self.checker = Checker(checks_via_node_port, on_change=self._check_changed)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.apps: set[Key] = set()
        self.generations: dict[Key, int] = {}
        self.settled: set[Key] = set()  # Healthy at their latest generation, when last seen

    def _reconcile(self, key: Key) -> float | None:
        return reconciler.reconcile(self.kube, *key, checker=self.checker).requeue_after

    def _check_changed(self, key: Key) -> None:
        """A check's result changed (on a runner thread): wake the app on the loop."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.queue.trigger, key)

    async def resync_forever(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            for key in sorted(self.apps):
                self.queue.trigger(key, urgent=False)

    def app_event(self, event: kopf.RawEvent) -> None:
        """Queue the app: a change of its spec (a new generation) is urgent, the initial
        listing and our own status writes are bulk work."""
        body: dict[str, Any] = dict(event["object"])
        meta: dict[str, Any] = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        if event["type"] == "DELETED":
            self.forget(key)
            return
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

    def child_event(self, event: kopf.RawEvent, namespace: str | None, app: str | None) -> None:
        """Wake the child's app: urgently when the app is mid-release or the child is gone."""
        key = (namespace or "", app or "")
        if key not in self.apps:
            return
        urgent = event["type"] == "DELETED" or (
            event["type"] is not None and key not in self.settled
        )
        self.queue.trigger(key, urgent=urgent)

    def forget(self, key: Key) -> None:
        self.apps.discard(key)
        self.generations.pop(key, None)
        self.settled.discard(key)
        self.queue.forget(key)
        self.checker.forget(key)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Watch only our children, filtered by the API server, not every Deployment around.
    for group, version, plural in CHILDREN:
        settings.watching.label_selectors[group, version, plural] = OURS
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
    runtime = Runtime(memo.kube, memo.get("checks_via_node_port"))
    runtime.loop = asyncio.get_running_loop()
    memo.runtime = runtime
    memo.resync = asyncio.get_running_loop().create_task(runtime.resync_forever())


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    memo.resync.cancel()
    memo.runtime.checker.stop_all()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def app_changed(event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    runtime.queue.api_alive()
    runtime.app_event(event)


def _on_child_event(group: str, version: str, plural: str) -> None:
    @kopf.on.event(
        group,
        version,
        plural,
        id=f"{plural}_changed",
        labels={names.LABEL_MANAGED_BY: names.MANAGER},
    )
    async def child_changed(
        event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any
    ) -> None:
        runtime: Runtime = memo.runtime
        runtime.queue.api_alive()
        runtime.child_event(event, namespace, labels.get(names.LABEL_APP))


for _child in CHILDREN:
    _on_child_event(*_child)
