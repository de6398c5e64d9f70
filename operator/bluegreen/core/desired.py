"""Pure builders of the children a BlueGreenApp owns, as plain dicts."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bluegreen.api.models import (
    GROUP,
    KIND,
    VERSION,
    BlueGreenAppSpec,
    Color,
    GatewaySpec,
    IngressSpec,
    JobCheck,
)
from bluegreen.core import names
from bluegreen.core.objects import Obj


@dataclass(frozen=True)
class Owner:
    """The BlueGreenApp that owns the children."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> Obj:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def _metadata(owner: Owner, name: str, labels: dict[str, str], **extra: Any) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels,
        "ownerReferences": [owner.reference()],
    }
    meta.update({k: v for k, v in extra.items() if v})
    return meta


def deployment(owner: Owner, color: Color, template: Obj, revision: str, replicas: int) -> Obj:
    """The Deployment of one color, running one revision of the user's pod template.

    The selector is the app and the color only (it is immutable), so a new revision rolls
    out within the color. Our labels win over the user's on the pods, because the Services
    select by them.
    """
    labels = {
        **names.app_labels(owner.name),
        names.LABEL_COLOR: color,
        names.LABEL_REVISION: revision,
    }
    pod_template = copy.deepcopy(template)
    pod_meta = pod_template.setdefault("metadata", {}) or {}
    pod_template["metadata"] = pod_meta
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    annotations = {names.ANNOTATION_POD_TEMPLATE: json.dumps(template, sort_keys=True)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            owner, names.deployment_name(owner.name, color), labels, annotations=annotations
        ),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": names.selector(owner.name, color)},
            "template": pod_template,
        },
    }


def service(
    owner: Owner,
    role: names.ServiceRole,
    spec: BlueGreenAppSpec,
    color: Color,
    annotations: dict[str, str] | None = None,
) -> Obj:
    """The prod or preview Service, selecting one color of the app."""
    ports = [_service_port(p.model_dump(exclude_none=True), role) for p in spec.service.ports]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            owner,
            names.service_name(owner.name, role),
            names.app_labels(owner.name),
            annotations=annotations,
        ),
        "spec": {
            "type": spec.service.type,
            "selector": names.selector(owner.name, color),
            "ports": ports,
        },
    }


def _service_port(port: Obj, role: names.ServiceRole) -> Obj:
    # Written out as the API server would default it, so comparing with what is live
    # finds no difference where there is none.
    port.setdefault("targetPort", port["port"])
    if role == "preview":
        port.pop("nodePort", None)  # two Services cannot share a node port
    return port


def prod_annotations(switch_record: Mapping[str, str], live_template: Obj | None) -> dict[str, str]:
    """What the prod Service records: the last switch, and the template prod serves
    (when known: nothing served before the first rollout)."""
    if live_template is None:
        return dict(switch_record)
    return {
        **switch_record,
        names.ANNOTATION_LIVE_TEMPLATE: json.dumps(live_template, sort_keys=True),
    }


def ingress(owner: Owner, role: names.ServiceRole, spec: BlueGreenAppSpec) -> Obj:
    """The prod or preview Ingress, routing its host to the matching Service's first port."""
    assert spec.ingress is not None
    ing: IngressSpec = spec.ingress
    host = ing.host if role == "prod" else ing.previewHost
    first = spec.service.ports[0]
    port = {"name": first.name} if first.name else {"number": first.port}
    rule = {
        "host": host,
        "http": {
            "paths": [
                {
                    "path": ing.path,
                    "pathType": "Prefix",
                    "backend": {
                        "service": {"name": names.service_name(owner.name, role), "port": port}
                    },
                }
            ]
        },
    }
    body: Obj = {"rules": [rule]}
    if ing.className:
        body["ingressClassName"] = ing.className
    if ing.tls:
        body["tls"] = [t.model_dump(exclude_none=True) for t in ing.tls]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(
            owner,
            names.ingress_name(owner.name, role),
            names.app_labels(owner.name),
            annotations=dict(ing.annotations),
        ),
        "spec": body,
    }


GATEWAY_GROUP = "gateway.networking.k8s.io"
HTTPROUTE_API_VERSION = f"{GATEWAY_GROUP}/v1"


def http_route(owner: Owner, role: names.ServiceRole, spec: BlueGreenAppSpec) -> Obj:
    """The prod or preview HTTPRoute: its hostnames and path to the matching Service's first
    port. With ``previewHeader``, the prod route sends requests carrying the header to the
    preview Service first (a header match outranks none for the same path in the Gateway
    API's precedence; listed first as well)."""
    assert spec.gateway is not None
    gateway: GatewaySpec = spec.gateway
    port = spec.service.ports[0].port
    path = {"type": "PathPrefix", "value": gateway.path}

    def rule(to: names.ServiceRole, headers: list[Obj] | None = None) -> Obj:
        match: Obj = {"path": path}
        if headers:
            match["headers"] = headers
        backend = {"name": names.service_name(owner.name, to), "port": port}
        return {"matches": [match], "backendRefs": [backend]}

    rules = [rule(role)]
    if role == "prod" and gateway.previewHeader is not None:
        header = {
            "type": "Exact",
            "name": gateway.previewHeader.name,
            "value": gateway.previewHeader.value,
        }
        rules.insert(0, rule("preview", [header]))
    hostnames = gateway.hostnames if role == "prod" else gateway.previewHostnames
    return {
        "apiVersion": HTTPROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": _metadata(
            owner, names.route_name(owner.name, role), names.app_labels(owner.name)
        ),
        "spec": {
            "parentRefs": [parent_ref(p.model_dump(exclude_none=True)) for p in gateway.parentRefs],
            "hostnames": list(hostnames),
            "rules": rules,
        },
    }


def parent_ref(ref: Obj) -> Obj:
    """A parentRef as the API server defaults it (group and kind of a Gateway), so that a
    route read back compares equal and a parent's status entry can be matched to it."""
    return {"group": GATEWAY_GROUP, "kind": "Gateway", **ref}


def route_roles(spec: BlueGreenAppSpec) -> tuple[names.ServiceRole, ...]:
    """The routes ``spec.gateway`` asks for: prod, and preview when it names hostnames."""
    if spec.gateway is None:
        return ()
    return ("prod", "preview") if spec.gateway.previewHostnames else ("prod",)


def http_routes(owner: Owner, spec: BlueGreenAppSpec) -> list[Obj]:
    return [http_route(owner, role, spec) for role in route_roles(spec)]


def applied_hash(obj: Obj) -> str:
    """Hash of a desired object, ignoring the stamps that :func:`stamped` adds."""
    meta = dict(obj.get("metadata", {}))
    stamps = (names.ANNOTATION_APPLIED, names.ANNOTATION_MANAGED)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in stamps}
    meta["annotations"] = annotations
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def stamped(obj: Obj) -> Obj:
    """The object with its applied-hash annotation set."""
    out = copy.deepcopy(obj)
    annotations = out["metadata"].setdefault("annotations", {})
    annotations[names.ANNOTATION_MANAGED] = ",".join(sorted(annotations))
    annotations[names.ANNOTATION_APPLIED] = applied_hash(obj)
    return out


def for_update(want: Obj, live: Obj) -> Obj:
    """The full object to PUT so that live becomes ``want`` without losing what others own.

    A PUT carrying live's resourceVersion fails (409) if the object changed since it was
    read, so the operator never overwrites an object that someone replaced meanwhile.
    Kept from live: what the API server allocated (a Service's clusterIP, defaults) and
    labels and annotations others set. Annotations the operator set before and no longer
    wants (say, one removed from ``spec.ingress.annotations``) are removed: the keys it
    manages are listed in an annotation of their own.
    """
    meta = {k: v for k, v in live["metadata"].items() if k != "managedFields"}
    want_meta = want["metadata"]
    previously_ours = set(
        (meta.get("annotations") or {}).get(names.ANNOTATION_MANAGED, "").split(",")
    )
    kept = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in previously_ours}
    annotations = {**kept, **(want_meta.get("annotations") or {})}
    others = [
        ref
        for ref in meta.get("ownerReferences") or []
        if ref.get("uid") not in {r["uid"] for r in want_meta["ownerReferences"]}
    ]
    meta.update(
        labels={**(meta.get("labels") or {}), **want_meta["labels"]},
        annotations=annotations,
        ownerReferences=others + want_meta["ownerReferences"],
    )
    return {
        "apiVersion": want["apiVersion"],
        "kind": want["kind"],
        "metadata": meta,
        "spec": {**(live.get("spec") or {}), **want["spec"]},
    }


def check_job(
    owner: Owner,
    check: str,
    job: JobCheck,
    run: tuple[str, str, int],
    preview_port: int,
) -> Obj:
    """The Job of one Job check run (``run``: its name, revision and retry). Its containers
    learn the preview Service's address from the environment; it never restarts a pod
    (``backoffLimit`` retries with a new one)."""
    name, revision, retry = run
    preview = names.service_name(owner.name, "preview")
    env = [
        {"name": "PREVIEW_SERVICE", "value": preview},
        {"name": "PREVIEW_URL", "value": f"http://{preview}.{owner.namespace}.svc:{preview_port}"},
        {"name": "REVISION", "value": revision},
    ]
    template = copy.deepcopy(job.template)
    pod_meta = template.get("metadata") or {}
    template["metadata"] = pod_meta
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), names.LABEL_CHECK: check}
    pod_spec = template["spec"]
    pod_spec["restartPolicy"] = "Never"
    for container in pod_spec["containers"]:
        theirs = [e for e in container.get("env") or [] if e.get("name") not in _JOB_ENV]
        container["env"] = theirs + env
    labels = {
        **names.app_labels(owner.name),
        names.LABEL_CHECK: check,
        names.LABEL_REVISION: revision,
        names.LABEL_CHECK_RETRY: str(retry),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(owner, name, labels),
        "spec": {
            "backoffLimit": job.backoffLimit,
            "activeDeadlineSeconds": job.activeDeadlineSeconds,
            "template": template,
        },
    }


_JOB_ENV = frozenset({"PREVIEW_SERVICE", "PREVIEW_URL", "REVISION"})
