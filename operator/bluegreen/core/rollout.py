"""Rollout predicates: whether a Deployment has rolled a revision out, three ways.

Like the Deployment controller's ``DeploymentComplete``: one-screen pure verdicts. The
switch follows the first of them that says yes: the Deployment's own status, its
ReplicaSets' (one step sooner), or the preview Service's endpoints (as soon, by another
controller). All three share one guard: the Deployment asks for the size wanted and its
controller has seen its latest spec.
"""

from __future__ import annotations

from collections.abc import Sequence

from bluegreen.core.facts import (
    is_owned_by_deployment,
    pod_name_prefixes,
    ready_endpoints_of,
    revision_label,
    spec_replicas,
)
from bluegreen.core.objects import Obj


def is_rolled_out(dep: Obj | None, replicas: int) -> bool:
    """Like ``kubectl rollout status``: the controller saw the latest spec, every pod is
    updated and available, and no pod of an older ReplicaSet is left."""
    if dep is None or not is_spec_seen(dep, replicas):
        return False
    status = dep.get("status") or {}
    counts = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    return all(status.get(c, 0) == replicas for c in counts)


def is_rolled_out_by_replicasets(
    dep: Obj | None, replicasets: Sequence[Obj], revision: str, replicas: int
) -> bool:
    """The same verdict as :func:`is_rolled_out`, from the Deployment's ReplicaSets: the
    Deployment controller derives its status from theirs one step later, so this knows
    the rollout is done as soon as the pods' own controller does. The Deployment must still
    have seen the latest spec (its ReplicaSets then reflect it)."""
    if dep is None or not is_spec_seen(dep, replicas):
        return False
    owned = _owned(dep, replicasets)
    new = [rs for rs in owned if revision_label(rs) == revision]
    if len(new) != 1 or not is_replicaset_settled(new[0]):
        return False
    status = new[0].get("status") or {}
    counts = ("replicas", "readyReplicas", "availableReplicas")
    up = (new[0].get("spec") or {}).get("replicas") == replicas
    return (
        up and are_older_gone(owned, revision) and all(status.get(c, 0) == replicas for c in counts)
    )


def is_rolled_out_by_endpoints(
    dep: Obj | None,
    replicasets: Sequence[Obj],
    endpoints: Sequence[Obj],
    revision: str,
    replicas: int,
) -> bool:
    """The verdict of :func:`is_rolled_out_by_replicasets` from the preview's endpoints
    instead of the new ReplicaSet's status: at least ``replicas`` pods of the new revision
    ready, and no other pod of the color listed at all (ready, starting or terminating).
    The EndpointSlice controller reports a pod ready in the same step as the ReplicaSet
    controller does, so the switch follows the first of the two, whichever it is.
    The older ReplicaSets must still say they have no pod left: a pod of theirs without an
    address yet is in no EndpointSlice."""
    if dep is None or not is_spec_seen(dep, replicas):
        return False
    owned = _owned(dep, replicasets)
    if not any(revision_label(rs) == revision for rs in owned):
        return False
    if not are_older_gone(owned, revision):
        return False
    prefixes = tuple(pod_name_prefixes(replicasets, str(dep["metadata"].get("name")), revision))
    pods = [str((ep.get("targetRef") or {}).get("name", "")) for ep in endpoints]
    if any(not pod.startswith(prefixes) for pod in pods):
        return False
    return ready_endpoints_of(endpoints, set(prefixes)) >= replicas


def is_spec_seen(dep: Obj, replicas: int) -> bool:
    """The guard of every verdict: the Deployment asks for ``replicas`` and its controller
    has seen its latest spec (so its status, and its ReplicaSets, are about that spec)."""
    if spec_replicas(dep) != replicas:
        return False
    seen = (dep.get("status") or {}).get("observedGeneration", 0)
    return bool(seen >= dep["metadata"].get("generation", 0))


def is_replicaset_settled(rs: Obj) -> bool:
    """Its controller saw its latest spec (so its status counts are about that spec)."""
    observed = (rs.get("status") or {}).get("observedGeneration", 0)
    return bool(observed >= (rs.get("metadata") or {}).get("generation", 0))


def are_older_gone(owned: Sequence[Obj], revision: str) -> bool:
    """Every ReplicaSet of another revision says, settled, that it has no pod left."""
    return all(
        is_replicaset_settled(rs) and (rs.get("status") or {}).get("replicas", 0) == 0
        for rs in owned
        if revision_label(rs) != revision
    )


def _owned(dep: Obj, replicasets: Sequence[Obj]) -> list[Obj]:
    name = str(dep["metadata"].get("name"))
    return [rs for rs in replicasets if is_owned_by_deployment(rs, name)]
