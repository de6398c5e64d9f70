"""Builders of the planner's inputs and readers of its plans, shared by the unit tests:
an app, the live children as the API server shows them, the observed states of a release."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bluegreen.api.models import BlueGreenAppSpec, BlueGreenAppStatus, Color, NotificationRecord
from bluegreen.core import desired, names, status
from bluegreen.core.clock import format_time
from bluegreen.core.desired import Owner
from bluegreen.core.gates import RunKey
from bluegreen.core.objects import Obj
from bluegreen.core.planner import App, Observed, Plan
from bluegreen.core.revision import revision_of

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


OWNER = Owner(name="demo", namespace="shop", uid="uid-1")


STRANGER = Owner(name="demo", namespace="shop", uid="uid-of-another-app")


def template(image: str) -> Obj:
    return {
        "metadata": {"labels": {"tier": "web"}},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


T1, T2, T3 = template("hello:1"), template("hello:2"), template("hello:3")


R1, R2, R3 = revision_of(T1), revision_of(T2), revision_of(T3)


def spec(tpl: Obj = T1, **fields: Any) -> BlueGreenAppSpec:
    return BlueGreenAppSpec.model_validate(
        {"replicas": 3, "template": tpl, "service": {"ports": [{"port": 80}]}, **fields}
    )


def app(tpl: Obj = T1, **fields: Any) -> App:
    return App(owner=OWNER, generation=1, spec=spec(tpl, **fields))


def deployment(
    color: Color, tpl: Obj, replicas: int, ready: int | None = None, owner: Owner = OWNER
) -> Obj:
    """A live Deployment as the API server would show it after we applied it."""
    obj = desired.stamped(desired.deployment(owner, color, tpl, revision_of(tpl), replicas))
    ready = replicas if ready is None else ready
    obj["metadata"]["generation"] = 1
    obj["status"] = {
        "observedGeneration": 1,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
    return obj


def service(
    role: names.ServiceRole,
    color: Color,
    app_spec: BlueGreenAppSpec | None = None,
    record: dict[str, str] | None = None,
    owner: Owner = OWNER,
    live: Obj = T1,
) -> Obj:
    """A live Service as the operator left it; the prod one records what prod serves."""
    annotations = desired.prod_annotations(record or {}, live) if role == "prod" else None
    return desired.stamped(desired.service(owner, role, app_spec or spec(), color, annotations))


def switched(at: datetime, previous: str) -> dict[str, str]:
    return {
        names.ANNOTATION_SWITCHED_AT: at.isoformat().replace("+00:00", "Z"),
        names.ANNOTATION_PREVIOUS_REVISION: previous,
    }


POD_HASH = "5d9c7"


def endpoints(
    deployment_name: str, count: int, ready: bool = True, pod_hash: str = POD_HASH
) -> list[Obj]:
    return [
        {
            "addresses": [f"10.244.0.{i}"],
            "conditions": {"ready": ready},
            "targetRef": {"kind": "Pod", "name": f"{deployment_name}-{pod_hash}-{i:05d}"},
        }
        for i in range(count)
    ]


def replicaset(dep: Obj, pod_hash: str = POD_HASH) -> Obj:
    """The ReplicaSet the Deployment controller makes for a Deployment's current template:
    the template's labels plus pod-template-hash, owned by the Deployment."""
    labels = dict(dep["spec"]["template"]["metadata"]["labels"])
    name = dep["metadata"]["name"]
    return {
        "metadata": {
            "name": f"{name}-{pod_hash}",
            "labels": {**labels, "pod-template-hash": pod_hash},
            "ownerReferences": [{"kind": "Deployment", "name": name, "controller": True}],
        }
    }


def observed(
    blue: Obj | None = None,
    green: Obj | None = None,
    prod: Obj | None = None,
    preview: Obj | None = None,
    eps: list[Obj] | None = None,
    ingresses: dict[names.ServiceRole, Obj] | None = None,
) -> Observed:
    deps = {c: d for c, d in (("blue", blue), ("green", green)) if d is not None}
    svcs = {r: s for r, s in (("prod", prod), ("preview", preview)) if s is not None}
    replicasets = [replicaset(d) for d in deps.values()]
    return Observed(deps, svcs, ingresses or {}, eps or [], replicasets)  # type: ignore[arg-type]


def steady_blue(tpl: Obj = T1, **fields: Any) -> Observed:
    """blue runs tpl, both Services select it."""
    s = spec(tpl, **fields)
    return observed(
        blue=deployment("blue", tpl, s.replicas),
        prod=service("prod", "blue", s, live=tpl),
        preview=service("preview", "blue", s),
    )


def writes(p: Plan) -> list[tuple[str, str, str]]:
    return [(a.verb, a.kind, a.name) for a in p.actions]


def body(p: Plan, kind: str, name: str) -> Obj:
    found = [a.body for a in p.actions if a.kind == kind and a.name == name]
    assert len(found) == 1 and found[0] is not None, writes(p)
    return found[0]


def written_status(p: Plan) -> BlueGreenAppStatus:
    """The status the reconciler writes when every write of the plan succeeds."""
    return status.after_pass(p, p.actions, [], generation=1, previous=BlueGreenAppStatus(), now=NOW)


def selector_color(svc: Obj) -> str:
    return str(svc["spec"]["selector"][names.LABEL_COLOR])


def preview_waiting(tpl: Obj = T2, ready: int | None = None, **fields: Any) -> Observed:
    s = spec(tpl, **fields)
    size = s.preview_size()
    return observed(
        blue=deployment("blue", T1, 3),
        green=deployment("green", tpl, size, ready),
        prod=service("prod", "blue", s),
        preview=service("preview", "green", s),
        eps=endpoints("demo-green", size if ready is None else ready),
    )


def after_switch(at: datetime, blue_replicas: int = 3) -> Observed:
    s = spec(T2)
    return observed(
        blue=deployment("blue", T1, blue_replicas),
        green=deployment("green", T2, 3),
        prod=service("prod", "green", s, switched(at, R1), live=T2),
        preview=service("preview", "green", s),
    )


def parts_of(obs: Observed) -> dict[str, Any]:
    return {
        "blue": obs.deployments.get("blue"),
        "green": obs.deployments.get("green"),
        "prod": obs.services.get("prod"),
        "preview": obs.services.get("preview"),
        "eps": list(obs.preview_endpoints),
    }


# A notification as a pass records it (a switch back naming its check and answer).
RECORD = NotificationRecord(
    event="SwitchedBack",
    time=format_time(NOW),
    message="revision r2 failed after the switch",
    revision=R2,
    previousRevision=R1,
    check="smoke",
    answer="HTTP 500: boom",
    link="https://cd.example/shop/web",
)


# The gates' builders: one HTTP check, its run keys, an app checked by it, prod verified.
SMOKE = {"name": "smoke", "http": {"path": "/api", "successThreshold": 2, "failureThreshold": 2}}


def key(stage: str = "preview", revision: str = R2, retry: int = 0, check: str = "smoke") -> RunKey:
    return RunKey(check, stage, revision, retry)  # type: ignore[arg-type]


def checked(tpl: Obj = T2, **fields: Any) -> App:
    fields.setdefault("checks", [SMOKE])
    return app(tpl, **fields)


def verifying(at: datetime, **extra: Any) -> Observed:
    """green runs R2 and serves prod since ``at``; blue still holds R1."""
    s = spec(T2)
    obs = observed(
        blue=deployment("blue", T1, 3),
        green=deployment("green", T2, 3),
        prod=service("prod", "green", s, switched(at, R1), live=T2),
        preview=service("preview", "green", s),
    )
    return replace(obs, **extra)
