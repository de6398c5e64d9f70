"""A test driver for end-to-end tests: reads and writes objects as a user would.

Independent of the operator's own API module, so a bug there cannot hide itself.
Objects come back as plain dicts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

from kubehelpers import wait_for

Obj = dict[str, Any]

APP = ("bluegreen.dev/v1alpha1", "BlueGreenApp")
KINDS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "Ingress": "networking.k8s.io/v1",
    "EndpointSlice": "discovery.k8s.io/v1",
    "Pod": "v1",
    "Event": "v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "Lease": "coordination.k8s.io/v1",
    "Rollout": "argoproj.io/v1alpha1",  # Argo Rollouts', for the side-by-side benchmark
    "Job": "batch/v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "HTTPRoute": "gateway.networking.k8s.io/v1",  # with the Gateway API CRDs (hack/edge.sh)
    APP[1]: APP[0],
}


class Driver:
    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.dyn = DynamicClient(api)
        self._resources: dict[str, Any] = {}

    def resource(self, kind: str) -> Any:
        if kind not in self._resources:
            self._resources[kind] = self.dyn.resources.get(api_version=KINDS[kind], kind=kind)
        return self._resources[kind]

    # ------------------------------------------------------------------ generic

    def get(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        try:
            return dict(self.resource(kind).get(name=name, namespace=namespace).to_dict())
        except NotFoundError:
            return None

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[Obj]:
        found = self.resource(kind).get(namespace=namespace, label_selector=selector)
        return [dict(item.to_dict()) for item in found.items]

    def create(self, namespace: str, body: Obj) -> Obj:
        return dict(self.resource(body["kind"]).create(body=body, namespace=namespace).to_dict())

    def merge_patch(self, kind: str, namespace: str, name: str, patch: Obj) -> Obj:
        res = self.resource(kind).patch(
            name=name, namespace=namespace, body=patch, content_type="application/merge-patch+json"
        )
        return dict(res.to_dict())

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.resource(kind).delete(name=name, namespace=namespace)

    # ------------------------------------------------------------------ the app

    def crd_established(self) -> bool:
        crd = self.get("CustomResourceDefinition", None, "bluegreenapps.bluegreen.dev")
        conditions = ((crd or {}).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    def create_app(
        self, namespace: str, name: str, spec: Obj, labels: dict[str, str] | None = None
    ) -> Obj:
        body = {
            "apiVersion": APP[0],
            "kind": APP[1],
            "metadata": {"name": name, "labels": labels or {}},
            "spec": spec,
        }
        return self.create(namespace, body)

    def app(self, namespace: str, name: str) -> Obj:
        found = self.get(APP[1], namespace, name)
        assert found is not None, f"BlueGreenApp {namespace}/{name} is gone"
        return found

    def patch_spec(self, namespace: str, name: str, spec: Obj) -> Obj:
        return self.merge_patch(APP[1], namespace, name, {"spec": spec})

    def wait_app(self, namespace: str, name: str, timeout: float = 60, **expected: Any) -> Obj:
        """Wait until the app's status has these values (and describes its latest generation)."""

        def matches() -> Obj | None:
            app = self.app(namespace, name)
            status = app.get("status") or {}
            current = status.get("observedGeneration") == app["metadata"]["generation"]
            if current and all(status.get(k) == v for k, v in expected.items()):
                return app
            return None

        what = f"BlueGreenApp {name} to have status {expected}"
        return wait_for(matches, timeout=timeout, what=what)

    def events(self, namespace: str, name: str, reason: str | None = None) -> list[Obj]:
        found = [
            e
            for e in self.list("Event", namespace)
            if e["involvedObject"].get("kind") == APP[1] and e["involvedObject"]["name"] == name
        ]
        return [e for e in found if reason is None or e["reason"] == reason]

    # ------------------------------------------------------------------ children

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self.get("Deployment", namespace, name)

    def selector_color(self, namespace: str, service: str) -> str | None:
        svc = self.get("Service", namespace, service)
        return None if svc is None else svc["spec"]["selector"].get("bluegreen.dev/color")

    def pods(self, namespace: str, selector: str) -> list[Obj]:
        return [
            p
            for p in self.list("Pod", namespace, selector)
            if not p["metadata"].get("deletionTimestamp")
        ]

    def ready_endpoint_pods(self, namespace: str, service: str) -> set[str]:
        slices = self.list("EndpointSlice", namespace, f"kubernetes.io/service-name={service}")
        return {
            ep["targetRef"]["name"]
            for s in slices
            for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready", True) is not False and ep.get("targetRef")
        }

    def wait_replicas(self, namespace: str, name: str, replicas: int, timeout: float = 60) -> Obj:
        def scaled() -> Obj | None:
            dep = self.deployment(namespace, name)
            if dep is None:
                return None
            status = dep.get("status") or {}
            if dep["spec"]["replicas"] == replicas and (status.get("replicas") or 0) == replicas:
                return dep
            return None

        return wait_for(scaled, timeout=timeout, what=f"{name} at {replicas} replicas")


def pause(seconds: float) -> None:
    """Give the operator a moment in which it could (wrongly) act."""
    time.sleep(seconds)


class SelectorHistory:
    """Watches one Service and records each selector color it takes, in order: how a test
    proves that prod switched exactly once and never flapped."""

    def __init__(self, driver: Driver, namespace: str, service: str) -> None:
        self.driver, self.namespace, self.service = driver, namespace, service
        self.colors: list[str | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SelectorHistory:
        svc = self.driver.get("Service", self.namespace, self.service)
        assert svc is not None, f"Service {self.service} does not exist"
        self._record(svc)
        self._version = svc["metadata"]["resourceVersion"]
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _record(self, svc: Obj) -> None:
        color = (svc.get("spec") or {}).get("selector", {}).get("bluegreen.dev/color")
        if not self.colors or self.colors[-1] != color:
            self.colors.append(color)

    def _run(self) -> None:
        resource = self.driver.resource("Service")
        while not self._stop.is_set():
            stream = resource.watch(
                namespace=self.namespace,
                field_selector=f"metadata.name={self.service}",
                resource_version=self._version,
                timeout=1,
            )
            for event in stream:
                obj = event["raw_object"]
                self._version = obj["metadata"]["resourceVersion"]
                self._record(obj)


@contextlib.contextmanager
def refusing_selector(
    api: kubernetes.client.ApiClient, namespace: str, service: str, color: str
) -> Iterator[str]:
    """An admission policy that refuses, in one namespace only, any update making ``service``
    select ``color``: a switch the API server turns down, as a stricter cluster might.
    Yields the refusal message."""
    admission = kubernetes.client.AdmissionregistrationV1Api(api)
    name = f"refuse-{namespace}"[:63]
    message = f"test policy: Service {service} may not select {color}"
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": namespace}
                    },
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["UPDATE"],
                            "resources": ["services"],
                        }
                    ],
                },
                "validations": [
                    {
                        "expression": f"object.metadata.name != '{service}' || "
                        f"object.spec.selector['bluegreen.dev/color'] != '{color}'",
                        "message": message,
                    }
                ],
            },
        }
    )
    try:
        admission.create_validating_admission_policy_binding(
            {
                "metadata": {"name": name},
                "spec": {"policyName": name, "validationActions": ["Deny"]},
            }
        )
        # Admission policies take effect once the API server's informer has them.
        time.sleep(2)
        yield message
    finally:
        for remove in (
            admission.delete_validating_admission_policy_binding,
            admission.delete_validating_admission_policy,
        ):
            try:
                remove(name)
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:
                    raise
