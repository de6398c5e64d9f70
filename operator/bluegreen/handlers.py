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

from bluegreen import names, reconciler
from bluegreen.kube import Kube
from bluegreen.models import GROUP, PLURAL, VERSION
from bluegreen.queue import Key, ReconcileQueue

log = logging.getLogger(__name__)

OURS = f"{names.LABEL_MANAGED_BY}={names.MANAGER}"
# A slow safety net for anything a watch could have missed; normal work is event-driven.
RESYNC_SECONDS = float(os.environ.get("BLUEGREEN_RESYNC_SECONDS", "300"))
CONCURRENCY = int(os.environ.get("BLUEGREEN_CONCURRENCY", "8"))


class Runtime:
    """What the handlers share: the API facade, the queue and the apps seen so far."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.queue = ReconcileQueue(self._reconcile, concurrency=CONCURRENCY)
        self.apps: set[Key] = set()

    def _reconcile(self, key: Key) -> float | None:
        return reconciler.reconcile(self.kube, *key).requeue_after

    async def resync_forever(self) -> None:
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            for key in sorted(self.apps):
                self.queue.trigger(key)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Watch only our children, filtered by the API server, not every Deployment around.
    for group, plural in (("apps", "deployments"), ("discovery.k8s.io", "endpointslices")):
        settings.watching.label_selectors[group, plural] = OURS
    # No CRD watching: it needs cluster-wide rights the namespaced install does not have.
    settings.scanning.disabled = True
    # The operator posts its own Events; Kopf's would be about its own internals.
    settings.posting.enabled = False
    runtime = Runtime(memo.kube)
    memo.runtime = runtime
    memo.resync = asyncio.get_running_loop().create_task(runtime.resync_forever())


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    memo.resync.cancel()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def app_changed(
    event: kopf.RawEvent, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    runtime: Runtime = memo.runtime
    key = (namespace or "", name)
    if event["type"] == "DELETED":
        runtime.apps.discard(key)
        runtime.queue.forget(key)
        return
    runtime.apps.add(key)
    runtime.queue.trigger(key)


@kopf.on.event("apps", "v1", "deployments", labels={names.LABEL_MANAGED_BY: names.MANAGER})
async def deployment_changed(
    namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any
) -> None:
    _wake_owner(memo.runtime, namespace, labels)


@kopf.on.event(
    "discovery.k8s.io", "v1", "endpointslices", labels={names.LABEL_MANAGED_BY: names.MANAGER}
)
async def endpoints_changed(
    namespace: str | None, labels: kopf.Labels, memo: Any, **_: Any
) -> None:
    _wake_owner(memo.runtime, namespace, labels)


def _wake_owner(runtime: Runtime, namespace: str | None, labels: kopf.Labels) -> None:
    app = labels.get(names.LABEL_APP)
    if app and namespace and (namespace, app) in runtime.apps:
        runtime.queue.trigger((namespace, app))
