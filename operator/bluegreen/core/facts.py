"""Facts about live objects: what a child says of itself, read without deciding anything.

One-screen pure functions over the plain dicts the API server returns (and the store
holds). Each reads defensively: a hand-edited or half-written object yields "absent",
never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from bluegreen.api.models import Color
from bluegreen.core import desired, names
from bluegreen.core.desired import Owner
from bluegreen.core.objects import Obj

POD_TEMPLATE_HASH = "pod-template-hash"


def is_owned_by(obj: Obj, owner: Owner) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == owner.uid and r.get("controller") for r in refs)


def is_owned_by_deployment(rs: Obj, deployment_name: str) -> bool:
    return any(
        ref.get("kind") == "Deployment" and ref.get("name") == deployment_name
        for ref in (rs.get("metadata") or {}).get("ownerReferences") or []
    )


def revision_label(obj: Obj | None) -> str | None:
    if obj is None:
        return None
    return (obj["metadata"].get("labels") or {}).get(names.LABEL_REVISION)


def annotation(obj: Obj | None, key: str) -> str | None:
    if obj is None:
        return None
    return (obj["metadata"].get("annotations") or {}).get(key)


def json_annotation(obj: Obj | None, key: str) -> Obj | None:
    """An annotation holding a JSON object; None when absent or mangled."""
    raw = annotation(obj, key)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def selector_string(app: str, color: Color) -> str:
    return ",".join(f"{k}={v}" for k, v in names.selector(app, color).items())


def selected_color(svc: Obj | None) -> Color | None:
    color = ((svc or {}).get("spec", {}).get("selector") or {}).get(names.LABEL_COLOR)
    return color if color in names.COLORS else None


def current_replicas(dep: Obj | None) -> int:
    return int(((dep or {}).get("status") or {}).get("replicas", 0))


def spec_replicas(dep: Obj) -> int:
    return int(dep.get("spec", {}).get("replicas", 1))


def available_replicas(dep: Obj | None) -> int:
    return int(((dep or {}).get("status") or {}).get("availableReplicas", 0))


def has_failed_progress(dep: Obj | None) -> str | None:
    """The Deployment controller's verdict that a rollout is stuck, as its message: its
    progress deadline passed, or its pods cannot be created at all (refused by Pod Security
    admission, a quota, a missing ServiceAccount), which no waiting will mend."""
    for cond in ((dep or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return str(cond.get("message") or "progress deadline exceeded")
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return str(cond.get("message") or cond.get("reason") or "pods cannot be created")
    return None


def unavailable_because(dep: Obj | None) -> str | None:
    """Why the Deployment says it is not available (pods crashing, say), or None."""
    for cond in ((dep or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Available" and cond.get("status") == "False":
            return str(cond.get("message") or cond.get("reason"))
    return None


def pod_name_prefixes(replicasets: Sequence[Obj], deployment_name: str, revision: str) -> set[str]:
    """How the names of one revision's pods begin: ``<deployment>-<pod-template-hash>-``,
    from the ReplicaSets the Deployment made for that revision. Pods of an older revision
    of the same color begin differently, so they never count for the new one."""
    prefixes = set()
    for rs in replicasets:
        labels = (rs.get("metadata") or {}).get("labels") or {}
        pod_hash = labels.get(POD_TEMPLATE_HASH)
        if (
            is_owned_by_deployment(rs, deployment_name)
            and pod_hash
            and labels.get(names.LABEL_REVISION) == revision
        ):
            prefixes.add(f"{deployment_name}-{pod_hash}-")
    return prefixes


def ready_endpoints_of(endpoints: Sequence[Obj], prefixes: set[str]) -> int:
    """Ready endpoints that are pods whose names begin with one of ``prefixes``."""
    return sum(
        1
        for ep in endpoints
        if (ep.get("conditions") or {}).get("ready", True) is not False
        and (ep.get("targetRef") or {}).get("kind") == "Pod"
        and str((ep.get("targetRef") or {}).get("name", "")).startswith(tuple(prefixes))
        and prefixes
    )


def lists_pods_of(endpoints: Sequence[Obj], deployment_name: str) -> bool:
    """Whether any endpoint, ready or terminating, is a pod of the named Deployment."""
    prefix = f"{deployment_name}-"
    return any(
        str((ep.get("targetRef") or {}).get("name", "")).startswith(prefix) for ep in endpoints
    )


def template_of(dep: Obj) -> Obj:
    """The user's pod template a Deployment runs: from our annotation, or, should that be
    gone, the live template itself (re-applying it changes nothing)."""
    recorded = json_annotation(dep, names.ANNOTATION_POD_TEMPLATE)
    return recorded if recorded is not None else dict(dep["spec"]["template"])


def needs_write(want: Obj, live: Obj | None) -> bool:
    """Whether live differs from what we would apply: our last-applied hash, plus the
    fields whose drift matters most (someone may have edited them by hand)."""
    if live is None:
        return True
    if annotation(live, names.ANNOTATION_APPLIED) != desired.applied_hash(want):
        return True
    if want["kind"] == "Deployment":
        return bool(spec_replicas(live) != want["spec"]["replicas"])
    if want["kind"] == "Service":
        live_spec = live.get("spec") or {}
        return bool(
            live_spec.get("selector") != want["spec"]["selector"]
            or live_spec.get("type") != want["spec"]["type"]
        )
    return False
