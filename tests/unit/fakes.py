"""Fakes shared by the unit tests: an in-memory API server behind the operator's own client
(only the transport, ``Kube._send``, is faked), and the passes and readings made on it."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import urllib3

from bluegreen.api.models import KIND
from bluegreen.core import names
from bluegreen.core.objects import Obj
from bluegreen.kube.client import Kube
from bluegreen.kube.errors import ApiError
from bluegreen.runtime import reconciler
from bluegreen.runtime.store import Store

from builders import NOW, T1, T2, deployment, replicaset, service, spec
from builders import endpoints as endpoint_list

NS, NAME, UID = "shop", "demo", "uid-1"


APP_PATH = f"/apis/bluegreen.dev/v1alpha1/namespaces/{NS}/bluegreenapps/{NAME}"


SERVICES = f"/api/v1/namespaces/{NS}/services"


DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"


EVENTS = f"/api/v1/namespaces/{NS}/events"


SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices"


REPLICASETS = f"/apis/apps/v1/namespaces/{NS}/replicasets"


KIND_OF_COLLECTION = {
    f"/apis/bluegreen.dev/v1alpha1/namespaces/{NS}/bluegreenapps": KIND,
    SERVICES: "Service",
    DEPLOYMENTS: "Deployment",
    f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses": "Ingress",
    f"/apis/batch/v1/namespaces/{NS}/jobs": "Job",
}


class FakeApi(Kube):
    """An in-memory API server: objects by path, resourceVersions, 404 and 409 as the real
    one answers them, and faults injected per (method, path prefix)."""

    def __init__(self) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.objects: dict[str, Obj] = {}
        self.lists: dict[str, list[Obj]] = {}
        self.faults: dict[tuple[str, str], Callable[[], Exception]] = {}
        self.log: list[tuple[str, str]] = []
        self.status_patches: list[Obj] = []
        self.events: list[Obj] = []
        self._rv = 100
        self.store = Store()

    def caught_up(self) -> Store:
        """The store as the watches leave it once they delivered everything there is."""
        self.store = Store()
        for path, obj in self.objects.items():
            kind = KIND_OF_COLLECTION[path.rsplit("/", 1)[0]]
            self.store.put(kind, copy.deepcopy({**obj, "kind": kind}))
        for path, items in self.lists.items():
            kind = "EndpointSlice" if path == SLICES else "ReplicaSet"
            for item in copy.deepcopy(items):
                item["metadata"]["namespace"] = NS
                self.store.put(kind, item)
        return self.store

    def fail(self, method: str, path: str, error: Callable[[], Exception]) -> None:
        self.faults[method, path] = error

    def put_object(self, path: str, obj: Obj) -> None:
        self._rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self.objects[path] = obj

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        self.requests[method] += 1
        self.log.append((method, path))
        for (f_method, f_path), error in self.faults.items():
            if method == f_method and path.startswith(f_path):
                raise error()
        if method == "GET" and query:
            return {"items": self.lists.get(path, [])}
        if method == "GET":
            if path not in self.objects:
                raise ApiError(404, "NotFound", f"{path} not found")
            return copy.deepcopy(self.objects[path])
        if method == "POST":
            if path == EVENTS:
                self.events.append(body)
                return {}
            target = f"{path}/{body['metadata']['name']}"
            if target in self.objects:
                raise ApiError(409, "AlreadyExists", f"{target} already exists")
            self.put_object(target, body)
            return copy.deepcopy(self.objects[target])
        if method == "PUT":
            live = self.objects.get(path)
            if live is None:
                raise ApiError(404, "NotFound", f"{path} not found")
            if body["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", "the object has been modified")
            self.put_object(path, body)
            return copy.deepcopy(self.objects[path])
        if method == "PATCH":
            self.status_patches.append(body["status"])
            app = self.objects[APP_PATH]
            written = {k: v for k, v in body["status"].items() if v is not None}
            self.put_object(APP_PATH, {**app, "status": written})
            return copy.deepcopy(self.objects[APP_PATH])
        raise AssertionError(f"unexpected {method} {path}")

    def writes_to(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.log if m == method and p == path)

    @property
    def app_status(self) -> Obj:
        return dict(self.objects[APP_PATH].get("status") or {})


def app_body(tpl: Obj, **fields: Any) -> Obj:
    return {
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": KIND,
        "metadata": {"name": NAME, "namespace": NS, "uid": UID, "generation": 2},
        "spec": {"replicas": 3, "template": tpl, "service": {"ports": [{"port": 80}]}, **fields},
    }


def preview_ready_for_switch() -> FakeApi:
    """v1 live on blue, v2 fully ready on green behind the preview, promote: true."""
    api = FakeApi()
    api.put_object(APP_PATH, app_body(T2, promote=True))
    s = spec(T2)
    blue, green = deployment("blue", T1, 3), deployment("green", T2, 3)
    api.put_object(f"{DEPLOYMENTS}/{NAME}-blue", blue)
    api.put_object(f"{DEPLOYMENTS}/{NAME}-green", green)
    api.put_object(f"{SERVICES}/{NAME}", service("prod", "blue", s))
    api.put_object(f"{SERVICES}/{NAME}-preview", service("preview", "green", s))
    api.lists[SLICES] = [endpoint_slice(f"{NAME}-preview", endpoint_list(f"{NAME}-green", 3))]
    api.lists[REPLICASETS] = [replicaset(blue), replicaset(green)]
    return api


def endpoint_slice(service: str, endpoints: list[Obj]) -> Obj:
    labels = {**names.app_labels(NAME), "kubernetes.io/service-name": service}
    meta = {"name": f"{service}-abcde", "namespace": NS, "labels": labels}
    return {"metadata": meta, "endpoints": endpoints}


def reconcile(api: FakeApi, when: Callable[[], datetime] | None = None) -> reconciler.Outcome:
    """One pass, from the store as the watches leave it once caught up."""
    return reconciler.reconcile(api, api.caught_up(), NS, NAME, when or clock)


def reconcile_again(api: FakeApi) -> reconciler.Outcome:
    """The next pass from the store as the last pass left it, before any watch event."""
    return reconciler.reconcile(api, api.store, NS, NAME, clock)


def clock() -> datetime:
    return NOW


def prod_color(api: FakeApi) -> str:
    return str(api.objects[f"{SERVICES}/{NAME}"]["spec"]["selector"][names.LABEL_COLOR])


def conditions(api: FakeApi) -> dict[str, Obj]:
    return {c["type"]: c for c in api.app_status.get("conditions", [])}


def transport_error() -> Exception:
    return urllib3.exceptions.MaxRetryError(None, "/", reason="connection refused")  # type: ignore[arg-type]
