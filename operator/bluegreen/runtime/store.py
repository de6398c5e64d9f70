"""The operator's view of the cluster: what the watches delivered, and what it wrote itself.

Every reconcile plans from this view instead of reading each child afresh, so a pass costs
no request at all unless it writes. It stays safe because of how it is fed and used:

- Each kind is listed once, then watched from the listing's resourceVersion; a watch that
  expires (410 Gone) lists again and replaces what it held, so deletions missed meanwhile
  go too (:mod:`bluegreen.runtime.informer`).
- Every write the operator makes carries the resourceVersion it was planned from; a stale
  view gets a 409 and a fresh read of that one object, never a wrong write.
- A write's answer goes into the view at once (write-through): the next plan never sees an
  older state than the operator's own last write, whatever the watch has delivered yet.
  An event older than what is held (a lower resourceVersion) is dropped.
- Objects the watches cannot see (a child of the right name without the operator's label,
  someone else's) are learned by one read when a create of that name is refused, kept
  aside as *pinned*, and read again on each pass of their app until they go away or become
  the operator's.

Only what planning needs is kept: no managedFields, and of ReplicaSets and EndpointSlices
only the fields that name pods and their readiness.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from bluegreen.api.models import KIND
from bluegreen.core import names
from bluegreen.core.objects import Key, Obj

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# The children the operator watches (label-selected by its managed-by label), and the app.
CHILD_KINDS = (
    "Deployment",
    "Service",
    "Ingress",
    "HTTPRoute",
    "EndpointSlice",
    "ReplicaSet",
    "Job",
)
# Watched whole (no label selector: they are not the operator's): the Gateways the routes
# name as parents, so that a parent that does not exist is told apart from one whose
# gateway has not answered yet.
PARENT_KINDS = ("Gateway",)
WATCHED_KINDS = (*CHILD_KINDS, *PARENT_KINDS)
KINDS = (KIND, *WATCHED_KINDS)
# How long the resourceVersion of an object the operator deleted is remembered, so that a
# watch event from before the delete, arriving late, does not bring the object back.
TOMBSTONE_SECONDS = 300.0


def resource_version(obj: Obj) -> int | None:
    """The resourceVersion as a number. The API server's are etcd revisions: integers that
    grow with every write of a resource type, so the higher one is the newer state."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


def is_newer(candidate: Obj, held: Obj | None) -> bool:
    if held is None:
        return True
    new, old = resource_version(candidate), resource_version(held)
    return new is None or old is None or new >= old


REPLICASET_FIELDS = (
    "name",
    "namespace",
    "labels",
    "ownerReferences",
    "resourceVersion",
    "uid",
    "generation",
)
REPLICASET_STATUS = ("replicas", "readyReplicas", "availableReplicas", "observedGeneration")
SLICE_FIELDS = ("name", "namespace", "labels", "resourceVersion", "uid")


def slim(kind: str, obj: Obj) -> Obj:
    """What planning reads of an object: managedFields go (a PUT without them keeps the
    live ones); of ReplicaSets and EndpointSlices only what names pods and their state
    (a ReplicaSet's pod template, its largest part, goes)."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    if kind == "ReplicaSet":
        status = obj.get("status") or {}
        return {
            "metadata": {k: meta[k] for k in REPLICASET_FIELDS if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {k: status[k] for k in REPLICASET_STATUS if k in status},
        }
    if kind in PARENT_KINDS:
        return {"metadata": {k: meta[k] for k in SLICE_FIELDS if k in meta}}
    if kind == "EndpointSlice":
        endpoints = [
            {k: ep[k] for k in ("conditions", "targetRef") if k in ep}
            for ep in obj.get("endpoints") or []
        ]
        return {"metadata": {k: meta[k] for k in SLICE_FIELDS if k in meta}, "endpoints": endpoints}
    return {**obj, "metadata": meta}


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def is_watched(obj: Obj) -> bool:
    """Whether the watches see this object (they select the operator's label)."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(names.LABEL_MANAGED_BY) == names.MANAGER


class Store:
    """Thread-safe: watch threads write it, reconcile threads read it. Objects handed out
    are the stored ones: callers must not modify them (the planner builds new objects)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, dict[Key, Obj]] = {kind: {} for kind in KINDS}
        self._pinned: dict[str, dict[Key, Obj]] = {kind: {} for kind in CHILD_KINDS}
        self._tombstones: dict[tuple[str, Key], tuple[int, float]] = {}
        # EndpointSlices by (namespace, Service); ReplicaSets and check Jobs by (namespace, app).
        self._slices: dict[Key, set[str]] = {}
        self._replicasets: dict[Key, set[str]] = {}
        self._jobs: dict[Key, set[str]] = {}
        # Kinds the operator may not list or watch, by namespace ("" for all): the reason.
        self._refused: dict[tuple[str, str], str] = {}
        # Kinds the API server does not serve (404 on the listing: no CRD).
        self._unserved: set[str] = set()
        # (kind, namespace) listed at least once ("" for all namespaces).
        self._listed: set[tuple[str, str]] = set()

    # ---------------------------------------------------------------- reads

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            key = (namespace, name)
            found = self._objects[kind].get(key)
            if found is None and kind in self._pinned:
                found = self._pinned[kind].get(key)
            return found

    def endpoints_of_service(self, namespace: str, service: str) -> list[Obj]:
        """All endpoints of the Service's EndpointSlices."""
        slices = self._grouped("EndpointSlice", self._slices, namespace, service)
        return [ep for s in slices for ep in s.get("endpoints") or []]

    def replicasets_of(self, namespace: str, app: str) -> list[Obj]:
        return self._grouped("ReplicaSet", self._replicasets, namespace, app)

    def jobs_of(self, namespace: str, app: str) -> list[Obj]:
        """The app's check Jobs."""
        return self._grouped("Job", self._jobs, namespace, app)

    def pinned_of(
        self, namespace: str, children: Iterable[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        """Which of these (kind, name) children of one namespace are pinned."""
        with self._lock:
            return [(k, n) for k, n in children if (namespace, n) in self._pinned.get(k, {})]

    def refused(self, kind: str, namespace: str) -> str | None:
        """Why the operator cannot see this kind in this namespace, if it cannot."""
        with self._lock:
            return self._refused.get((kind, namespace)) or self._refused.get((kind, ""))

    def has_listed(self, kind: str, namespace: str) -> bool:
        """Whether this kind was listed in this namespace (or in all): only then does its
        absence from the store mean that an object does not exist."""
        with self._lock:
            listed = {(kind, namespace), (kind, "")} & self._listed
            return bool(listed) and kind not in self._unserved

    def is_served(self, kind: str) -> bool:
        """False when the API server said it has no such resource (its CRD is missing)."""
        with self._lock:
            return kind not in self._unserved

    # ---------------------------------------------------------------- writes

    def put(self, kind: str, obj: Obj) -> bool:
        """Hold this state of the object unless a newer one is held: a watch event, or the
        answer to the operator's own write. False when it was older (and dropped)."""
        key = key_of(obj)
        with self._lock:
            if not is_watched(obj) and kind in self._pinned:
                self._objects[kind].pop(key, None)
                self._pinned[kind][key] = slim(kind, obj)
                return True
            if not is_newer(obj, self._objects[kind].get(key)) or self._buried(kind, obj):
                return False
            self._objects[kind][key] = slim(kind, obj)
            if kind in self._pinned:
                self._pinned[kind].pop(key, None)
            self._index(kind, key, obj, add=True)
            return True

    def remove(self, kind: str, obj: Obj) -> None:
        """The object is gone (a DELETED event, or the operator deleted it, or a write was
        answered 404). Its resourceVersion is remembered for a while as a tombstone."""
        key = key_of(obj)
        with self._lock:
            held = self._objects[kind].get(key)
            if held is not None and not is_newer(obj, held):
                return  # a delete event of an older incarnation
            self._objects[kind].pop(key, None)
            if kind in self._pinned:
                self._pinned[kind].pop(key, None)
            rv = resource_version(obj)
            if rv is not None:
                self._tombstones[kind, key] = (rv, time.monotonic())
            self._index(kind, key, held or obj, add=False)
            self._prune_tombstones()

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop what is held under this name (a read found nothing there)."""
        with self._lock:
            key = (namespace, name)
            held = self._objects[kind].pop(key, None)
            if kind in self._pinned:
                self._pinned[kind].pop(key, None)
            if held is not None:
                self._index(kind, key, held, add=False)

    def replace(
        self, kind: str, namespace: str, items: list[Obj], list_version: int | None
    ) -> None:
        """A fresh listing of one kind (in one namespace, or "" for all): objects it does
        not hold and that are older than the listing were deleted meanwhile."""
        listed = {key_of(obj) for obj in items}
        with self._lock:
            self._listed.add((kind, namespace))
            held = self._objects[kind]
            stale = [
                key
                for key, obj in held.items()
                if (not namespace or key[0] == namespace)
                and key not in listed
                and (list_version is None or (resource_version(obj) or 0) <= list_version)
            ]
            for key in stale:
                self._index(kind, key, held.pop(key), add=False)
        for obj in items:
            self.put(kind, obj)

    def refuse(self, kind: str, namespace: str, reason: str | None) -> None:
        """Record (or, with None, clear) that this kind cannot be listed or watched."""
        with self._lock:
            if reason is None:
                self._refused.pop((kind, namespace), None)
            else:
                self._refused[kind, namespace] = reason

    def served(self, kind: str, served: bool) -> None:
        """Record whether the API server serves this kind at all."""
        with self._lock:
            if served:
                self._unserved.discard(kind)
            else:
                self._unserved.add(kind)

    # ---------------------------------------------------------------- internals

    def _grouped(
        self, kind: str, index: dict[Key, set[str]], namespace: str, group: str
    ) -> list[Obj]:
        """The objects of one kind that an index holds under (namespace, group)."""
        with self._lock:
            held = self._objects[kind]
            found = (held.get((namespace, n)) for n in index.get((namespace, group), ()))
            return [obj for obj in found if obj is not None]

    def _buried(self, kind: str, obj: Obj) -> bool:
        """An event from before the operator's own delete of the object."""
        tomb = self._tombstones.get((kind, key_of(obj)))
        rv = resource_version(obj)
        return tomb is not None and rv is not None and rv <= tomb[0]

    def _prune_tombstones(self) -> None:
        cutoff = time.monotonic() - TOMBSTONE_SECONDS
        for key in [k for k, (_, at) in self._tombstones.items() if at < cutoff]:
            del self._tombstones[key]

    def _index(self, kind: str, key: Key, obj: Obj, add: bool) -> None:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if kind == "EndpointSlice":
            index, group = self._slices, labels.get(SERVICE_NAME_LABEL)
        elif kind == "ReplicaSet":
            index, group = self._replicasets, labels.get(names.LABEL_APP)
        elif kind == "Job" and names.LABEL_CHECK in labels:
            index, group = self._jobs, labels.get(names.LABEL_APP)
        else:
            return
        if not group:
            return
        members = index.setdefault((key[0], group), set())
        if add:
            members.add(key[1])
        else:
            members.discard(key[1])
            if not members:
                del index[key[0], group]
