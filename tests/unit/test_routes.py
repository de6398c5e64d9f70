"""The Gateway API routes: what the builders make, what the planner writes, and how the
gateways' answers on the routes become the app's status."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pydantic
import pytest

from bluegreen.api.models import BlueGreenAppSpec
from bluegreen.core import desired, routes
from bluegreen.core.planner import Observed, plan

from builders import (
    NOW,
    OWNER,
    STRANGER,
    T1,
    T2,
    app,
    preview_waiting,
    spec,
    steady_blue,
    writes,
)

Obj = dict[str, Any]
CONTROLLER = "traefik.io/gateway-controller"
GATEWAY = {
    "parentRefs": [{"name": "edge", "namespace": "infra"}],
    "hostnames": ["shop.example.com"],
    "previewHostnames": ["preview.shop.example.com"],
}


def with_header(**header: str) -> Obj:
    return {**GATEWAY, "previewHeader": header}


def route(role: str = "prod", gateway: Obj = GATEWAY, owner: Any = OWNER) -> Obj:
    """A live route as the operator left it, at generation 1, no gateway has answered."""
    obj = desired.stamped(desired.http_route(owner, role, spec(gateway=gateway)))  # type: ignore[arg-type]
    obj["metadata"]["generation"] = 1
    return obj


def answered(obj: Obj, *conditions: tuple[str, str, str, str], generation: int = 1) -> Obj:
    """The route with one parent entry (for its first parentRef) holding these conditions
    (type, status, reason, message), as the gateway writes them."""
    out = copy.deepcopy(obj)
    out["status"] = {
        "parents": [
            {
                "parentRef": dict(obj["spec"]["parentRefs"][0]),
                "controllerName": CONTROLLER,
                "conditions": [
                    {
                        "type": t,
                        "status": s,
                        "reason": r,
                        "message": m,
                        "observedGeneration": generation,
                    }
                    for t, s, r, m in conditions
                ],
            }
        ]
    }
    return out


ACCEPTED = ("Accepted", "True", "Accepted", "")
RESOLVED = ("ResolvedRefs", "True", "ResolvedRefs", "")


def with_routes(base: Observed, **by_role: Obj) -> Observed:
    return replace(base, routes=by_role)


# ---------------------------------------------------------------- the builders


def test_the_prod_route_sends_its_hostnames_to_the_prod_service_on_its_first_port() -> None:
    obj = desired.http_route(OWNER, "prod", spec(gateway=GATEWAY))

    assert obj["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert obj["metadata"]["name"] == "demo"
    assert obj["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    assert obj["spec"] == {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": "edge",
                "namespace": "infra",
            }
        ],
        "hostnames": ["shop.example.com"],
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": "demo", "port": 80}],
            }
        ],
    }


def test_the_preview_route_sends_the_preview_hostnames_to_the_preview_service() -> None:
    obj = desired.http_route(OWNER, "preview", spec(gateway=GATEWAY))

    assert obj["metadata"]["name"] == "demo-preview"
    assert obj["spec"]["hostnames"] == ["preview.shop.example.com"]
    assert [r["backendRefs"] for r in obj["spec"]["rules"]] == [
        [{"name": "demo-preview", "port": 80}]
    ]


def test_a_preview_header_sends_matching_prod_requests_to_the_preview_first() -> None:
    obj = desired.http_route(
        OWNER, "prod", spec(gateway=with_header(name="X-Preview", value="true"))
    )

    header_rule, prod_rule = obj["spec"]["rules"]
    assert header_rule == {
        "matches": [
            {
                "path": {"type": "PathPrefix", "value": "/"},
                "headers": [{"type": "Exact", "name": "X-Preview", "value": "true"}],
            }
        ],
        "backendRefs": [{"name": "demo-preview", "port": 80}],
    }
    assert prod_rule["backendRefs"] == [{"name": "demo", "port": 80}]
    # the preview route has no header rule of its own
    preview = desired.http_route(OWNER, "preview", spec(gateway=with_header()))
    assert len(preview["spec"]["rules"]) == 1


@pytest.mark.parametrize(
    "gateway, why",
    [
        pytest.param({**GATEWAY, "parentRefs": []}, "parentRefs", id="no-parent"),
        pytest.param({**GATEWAY, "hostnames": []}, "hostnames", id="no-prod-hostname"),
        pytest.param({**GATEWAY, "hostnames": ["Not A Host"]}, "hostnames", id="bad-hostname"),
        pytest.param(
            {**GATEWAY, "previewHostnames": ["shop.example.com"]}, "differ", id="same-hostname"
        ),
        pytest.param({**GATEWAY, "path": "api"}, "path", id="relative-path"),
    ],
)
def test_invalid_gateway_sections_are_refused(gateway: Obj, why: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=why):
        spec(gateway=gateway)


def test_wildcard_hostnames_are_allowed() -> None:
    assert spec(gateway={**GATEWAY, "hostnames": ["*.shop.example.com"]}).gateway is not None


# ---------------------------------------------------------------- the writes


def test_the_gateway_section_creates_both_routes() -> None:
    p = plan(app(gateway=GATEWAY), steady_blue(gateway=GATEWAY), NOW)

    assert writes(p) == [("create", "HTTPRoute", "demo"), ("create", "HTTPRoute", "demo-preview")]


def test_no_preview_hostnames_no_preview_route() -> None:
    gateway = {**GATEWAY, "previewHostnames": []}
    p = plan(app(gateway=gateway), steady_blue(gateway=gateway), NOW)

    assert writes(p) == [("create", "HTTPRoute", "demo")]


def test_accepted_routes_need_no_write_and_leave_the_app_healthy() -> None:
    live = {
        "prod": answered(route("prod"), ACCEPTED, RESOLVED),
        "preview": answered(route("preview"), ACCEPTED, RESOLVED),
    }
    p = plan(app(gateway=GATEWAY), with_routes(steady_blue(gateway=GATEWAY), **live), NOW)

    assert writes(p) == []
    assert p.status.phase == "Healthy", p.status


def test_a_changed_hostname_updates_the_route_in_place_keeping_its_status() -> None:
    live = answered(route("prod"), ACCEPTED, RESOLVED)
    live["metadata"]["resourceVersion"] = "7"
    changed = {**GATEWAY, "hostnames": ["www.shop.example.com"]}
    observed = with_routes(
        steady_blue(gateway=changed),
        prod=live,
        preview=answered(route("preview", changed), ACCEPTED, RESOLVED),
    )

    p = plan(app(gateway=changed), observed, NOW)

    assert writes(p) == [("update", "HTTPRoute", "demo")]
    body = p.actions[0].body
    assert body is not None
    assert body["spec"]["hostnames"] == ["www.shop.example.com"]
    assert body["metadata"]["resourceVersion"] == "7"  # a conditional PUT


def test_removing_the_gateway_section_deletes_the_owned_routes() -> None:
    observed = with_routes(steady_blue(), prod=route("prod"), preview=route("preview"))

    p = plan(app(), observed, NOW)

    assert writes(p) == [("delete", "HTTPRoute", "demo"), ("delete", "HTTPRoute", "demo-preview")]
    assert "spec.gateway was removed" in p.actions[0].why


def test_emptied_preview_hostnames_delete_the_preview_route_only() -> None:
    gateway = {**GATEWAY, "previewHostnames": []}
    observed = with_routes(
        steady_blue(gateway=gateway),
        prod=answered(route("prod", gateway), ACCEPTED, RESOLVED),
        preview=route("preview"),
    )

    p = plan(app(gateway=gateway), observed, NOW)

    assert writes(p) == [("delete", "HTTPRoute", "demo-preview")]
    assert p.status.phase == "Healthy"  # the route about to go has no say


def test_someone_elses_route_of_that_name_is_left_alone() -> None:
    observed = with_routes(steady_blue(gateway=GATEWAY), prod=route("prod", owner=STRANGER))

    p = plan(app(gateway=GATEWAY), observed, NOW)

    assert ("update", "HTTPRoute", "demo") not in writes(p)
    assert ("create", "HTTPRoute", "demo") not in writes(p)
    assert "HTTPRoute demo" in p.conflicts


def test_without_the_gateway_api_no_route_is_written_and_the_app_says_why() -> None:
    observed = replace(steady_blue(gateway=GATEWAY), gateway_api=False)

    p = plan(app(gateway=GATEWAY), observed, NOW)

    assert writes(p) == []
    assert (p.status.phase, p.status.reason) == ("Degraded", "GatewayAPIMissing")
    assert "sigs.k8s.io/gateway-api" in p.status.message
    assert p.status.active_color == "blue" and p.status.available  # the rest is served


def test_an_app_without_routes_does_not_care_whether_the_gateway_api_is_there() -> None:
    observed = replace(steady_blue(), gateway_api=False)

    assert plan(app(), observed, NOW).status.phase == "Healthy"


# ---------------------------------------------------------------- the gateways' answers


def test_a_route_the_gateway_refuses_is_degraded_with_its_answer() -> None:
    refused = answered(
        route("prod"), ("Accepted", "False", "NotAllowedByListeners", "namespace not allowed")
    )
    observed = with_routes(
        steady_blue(gateway=GATEWAY),
        prod=refused,
        preview=answered(route("preview"), ACCEPTED, RESOLVED),
    )

    p = plan(app(gateway=GATEWAY), observed, NOW)

    assert (p.status.phase, p.status.reason) == ("Degraded", "RouteRefused")
    assert p.status.message == (
        "HTTPRoute demo was refused by Gateway infra/edge (traefik.io/gateway-controller): "
        "Accepted is False, NotAllowedByListeners: namespace not allowed"
    )
    assert p.status.available  # prod itself still serves


def test_an_unresolved_backend_is_a_refusal_too() -> None:
    unresolved = answered(
        route("prod"), ACCEPTED, ("ResolvedRefs", "False", "BackendNotFound", "no Service demo")
    )
    found = routes.verdict([unresolved], wanted=True)

    assert len(found.refused) == 1 and "BackendNotFound: no Service demo" in found.refused[0]


def test_a_parent_no_gateway_answered_for_keeps_a_healthy_app_progressing() -> None:
    observed = with_routes(
        steady_blue(gateway=GATEWAY),
        prod=route("prod"),
        preview=answered(route("preview"), ACCEPTED, RESOLVED),
    )

    p = plan(app(gateway=GATEWAY), observed, NOW)

    assert (p.status.phase, p.status.reason) == ("Progressing", "RoutePending")
    assert "HTTPRoute demo for Gateway infra/edge" in p.status.message


def test_an_answer_about_an_older_generation_is_no_answer() -> None:
    stale = answered(route("prod"), ACCEPTED, RESOLVED, generation=1)
    stale["metadata"]["generation"] = 2
    old_refusal = answered(route("prod"), ("Accepted", "False", "NoMatchingParent", ""))
    old_refusal["metadata"]["generation"] = 2

    assert routes.verdict([stale], wanted=True).pending
    assert routes.verdict([old_refusal], wanted=True) == routes.Verdict(
        pending=("HTTPRoute demo for Gateway infra/edge",)
    )


def test_each_parent_is_judged_by_its_own_entry() -> None:
    two = {**GATEWAY, "parentRefs": [{"name": "edge", "namespace": "infra"}, {"name": "gone"}]}
    obj = answered(route("prod", two), ACCEPTED, RESOLVED)
    missing = {
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gone"},
        "controllerName": CONTROLLER,
        "conditions": [{"type": "Accepted", "status": "False", "reason": "NoMatchingParent"}],
    }
    obj["status"]["parents"].append(missing)

    found = routes.verdict([obj], wanted=True)

    # "gone" has no namespace: the route's own (the app's)
    assert found.refused == (
        "HTTPRoute demo was refused by Gateway shop/gone (traefik.io/gateway-controller): "
        "Accepted is False, NoMatchingParent",
    )
    assert found.pending == ()


def test_a_refused_route_degrades_the_switch_and_the_status_should_it_not_be_written() -> None:
    refused = answered(route("prod"), ("Accepted", "False", "NoMatchingParent", ""))
    base = with_routes(preview_waiting(T2, gateway=GATEWAY, promote=True), prod=refused)

    p = plan(app(T2, gateway=GATEWAY, promote=True), base, NOW)

    assert p.switch is not None  # a refused route does not hold the release back
    assert p.status.phase == "Degraded"
    assert p.switch.unswitched is not None and p.switch.unswitched.phase == "Degraded"


def test_the_spec_round_trips_through_the_model() -> None:
    parsed = BlueGreenAppSpec.model_validate(
        {
            "template": T1,
            "service": {"ports": [{"port": 80}]},
            "gateway": with_header(),
        }
    )
    assert parsed.gateway is not None and parsed.gateway.previewHeader is not None
    assert (parsed.gateway.previewHeader.name, parsed.gateway.previewHeader.value) == (
        "X-Preview",
        "true",
    )


def test_a_parent_gateway_known_not_to_exist_is_a_refusal_whatever_the_gateway_wrote() -> None:
    """Traefik v3.6 marks a route Accepted for a Gateway that does not exist when the
    route also names one that does: the operator's own view of the Gateways decides."""
    two = {**GATEWAY, "parentRefs": [{"name": "edge", "namespace": "infra"}, {"name": "gone"}]}
    obj = answered(route("prod", two), ACCEPTED, RESOLVED)
    ghost = copy.deepcopy(obj["status"]["parents"][0])
    ghost["parentRef"] = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gone"}
    obj["status"]["parents"].append(ghost)

    found = routes.verdict([obj], wanted=True, missing_parents=frozenset({("shop", "gone")}))

    assert found.refused == (
        "HTTPRoute demo names Gateway shop/gone, which does not exist: no gateway serves it",
    )


def test_a_missing_parent_degrades_the_app_through_the_planner() -> None:
    observed = replace(
        with_routes(steady_blue(gateway=GATEWAY), prod=route("prod"), preview=route("preview")),
        missing_parents=frozenset({("infra", "edge")}),
    )

    p = plan(app(gateway=GATEWAY), observed, NOW)

    assert (p.status.phase, p.status.reason) == ("Degraded", "RouteRefused")
    assert p.status.message.count("which does not exist") == 2  # both routes name it
