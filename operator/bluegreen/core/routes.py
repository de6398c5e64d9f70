"""What the gateways say of the app's HTTPRoutes: accepted, refused, or not answered yet.

A Gateway API implementation writes, on each route, one entry per parent Gateway it
serves (``status.parents[]``, with its ``controllerName``) holding the conditions
``Accepted`` and ``ResolvedRefs``. A route is only as good as those answers: a refused one
routes nothing, so the app must say so (Degraded, with the gateway's own words), never
report a silent success. A parent no controller has answered for (yet, or at all: a
Gateway that does not exist has no controller to say so) is *pending*.

Pure: plain routes in, plain sentences out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bluegreen.core.desired import GATEWAY_GROUP

Obj = dict[str, Any]

# The conditions a route's parent must hold True for the route to carry traffic.
REQUIRED = ("Accepted", "ResolvedRefs")


@dataclass(frozen=True)
class Verdict:
    """Sentences about the routes: the refusals (each a gateway's answer) and the parents
    that have not answered for the route's current generation."""

    refused: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    missing_api: bool = False  # routes are wanted, and the cluster has no HTTPRoute resource


API_MISSING = (
    "spec.gateway needs the Gateway API, which this cluster does not serve (no HTTPRoute "
    "resource in gateway.networking.k8s.io/v1): install the CRDs of sigs.k8s.io/gateway-api "
    "(standard channel) and a gateway that implements them, or remove spec.gateway; the rest "
    "of the app is served"
)


def verdict(
    routes: Iterable[Obj],
    *,
    wanted: bool,
    gateway_api: bool = True,
    missing_parents: frozenset[tuple[str, str]] = frozenset(),
) -> Verdict:
    """``wanted``: whether the spec asks for routes; ``gateway_api``: whether the cluster
    serves HTTPRoutes at all; ``missing_parents``: (namespace, name) of parent Gateways
    known not to exist (whatever a gateway wrote of them: Traefik v3.6 was seen to report
    a route Accepted by a Gateway that does not exist, beside one that does)."""
    if wanted and not gateway_api:
        return Verdict(missing_api=True)
    refused: list[str] = []
    pending: list[str] = []
    for route in routes:
        for ref in (route.get("spec") or {}).get("parentRefs") or []:
            entry = parent_status(route, ref)
            problem = absent(route, ref, missing_parents) or refusal(route, ref, entry)
            if problem is not None:
                refused.append(problem)
            elif not has_answered(route, entry):
                pending.append(f"{_route(route)} for {_parent(route, ref)}")
    return Verdict(tuple(refused), tuple(pending))


def parent_status(route: Obj, ref: Obj) -> Obj | None:
    """The route's status entry for one of its parentRefs (any controller's), or None."""
    want = _parent_key(route, ref)
    for entry in (route.get("status") or {}).get("parents") or []:
        if _parent_key(route, entry.get("parentRef") or {}) == want:
            return dict(entry)
    return None


def absent(route: Obj, ref: Obj, missing: frozenset[tuple[str, str]]) -> str | None:
    """A sentence when the parent is a Gateway known not to exist, or None."""
    _, kind, namespace, name, _ = _parent_key(route, ref)
    if kind != "Gateway" or (namespace, name) not in missing:
        return None
    return (
        f"{_route(route)} names {_parent(route, ref)}, which does not exist: no gateway serves it"
    )


def refusal(route: Obj, ref: Obj, entry: Obj | None) -> str | None:
    """The gateway's refusal of this parent for the route's current generation, as a
    sentence (its reason and message), or None."""
    if entry is None:
        return None
    for cond in _current(route, entry):
        if cond.get("type") in REQUIRED and cond.get("status") == "False":
            said = f"{cond.get('reason') or 'no reason'}"
            if cond.get("message"):
                said += f": {cond['message']}"
            by = entry.get("controllerName") or "its controller"
            return (
                f"{_route(route)} was refused by {_parent(route, ref)} ({by}): "
                f"{cond['type']} is False, {said}"
            )
    return None


def has_answered(route: Obj, entry: Obj | None) -> bool:
    """Whether a controller said Accepted (True or False) of the route's current generation."""
    return entry is not None and any(c.get("type") == "Accepted" for c in _current(route, entry))


def _current(route: Obj, entry: Obj) -> list[Obj]:
    """The entry's conditions about the route's current generation (an older one's answer
    says nothing of an edit the gateway has not seen yet)."""
    generation = int((route.get("metadata") or {}).get("generation") or 0)
    return [
        c
        for c in entry.get("conditions") or []
        if int(c.get("observedGeneration") or generation) >= generation
    ]


def _parent_key(route: Obj, ref: Obj) -> tuple[str, str, str, str, str]:
    namespace = ref.get("namespace") or (route.get("metadata") or {}).get("namespace") or ""
    return (
        ref.get("group", GATEWAY_GROUP),
        ref.get("kind", "Gateway"),
        namespace,
        ref.get("name", ""),
        ref.get("sectionName") or "",
    )


def _route(route: Obj) -> str:
    return f"HTTPRoute {(route.get('metadata') or {}).get('name')}"


def _parent(route: Obj, ref: Obj) -> str:
    _, kind, namespace, name, section = _parent_key(route, ref)
    where = f"{kind} {namespace}/{name}"
    return f"{where} (listener {section})" if section else where
