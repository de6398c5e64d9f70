"""Table-driven tests of the pure planner: every case of the lifecycle, no cluster."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bluegreen.api.models import BlueGreenAppStatus, Color
from bluegreen.core import desired, names, planner
from bluegreen.core.planner import App, Observed, plan
from bluegreen.core.revision import revision_of

from builders import (
    NOW,
    OWNER,
    R1,
    R2,
    R3,
    STRANGER,
    T1,
    T2,
    T3,
    after_switch,
    app,
    body,
    deployment,
    endpoints,
    observed,
    parts_of,
    preview_waiting,
    replicaset,
    selector_color,
    service,
    spec,
    steady_blue,
    writes,
    written_status,
)

Obj = dict[str, Any]


# ------------------------------------------------------------------ 1. create


def test_create_makes_blue_and_both_services_select_it() -> None:
    p = plan(app(), observed(), NOW)
    assert writes(p) == [
        ("create", "Deployment", "demo-blue"),
        ("create", "Service", "demo"),
        ("create", "Service", "demo-preview"),
    ]
    blue = body(p, "Deployment", "demo-blue")
    assert blue["spec"]["replicas"] == 3
    assert blue["metadata"]["labels"][names.LABEL_REVISION] == R1
    assert blue["spec"]["template"]["metadata"]["labels"]["tier"] == "web"  # user's label kept
    assert selector_color(body(p, "Service", "demo")) == "blue"
    assert selector_color(body(p, "Service", "demo-preview")) == "blue"
    assert (p.status.phase, p.status.active_color, p.status.active_revision) == (
        "Progressing",
        "blue",
        R1,
    )


@pytest.mark.parametrize(
    ("ready", "phase"),
    [pytest.param(1, "Progressing", id="partly-ready"), pytest.param(3, "Healthy", id="ready")],
)
def test_create_is_progressing_until_blue_is_available(ready: int, phase: str) -> None:
    obs = steady_blue()
    obs.deployments["blue"]["status"]["availableReplicas"] = ready  # type: ignore[index]
    obs.deployments["blue"]["status"]["readyReplicas"] = ready  # type: ignore[index]
    p = plan(app(), obs, NOW)
    assert writes(p) == []
    assert p.status.phase == phase


def test_converged_app_needs_no_write() -> None:
    p = plan(app(), steady_blue(), NOW)
    assert writes(p) == []
    assert p.status.phase == "Healthy"
    assert p.status.preview_color is None
    assert p.requeue_after is None


# ------------------------------------------------------------------ 2. a new revision


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        pytest.param({}, 3, id="preview-at-replicas"),
        pytest.param({"previewReplicas": 1}, 1, id="preview-replicas"),
        pytest.param({"previewReplicas": 9}, 3, id="preview-replicas-capped"),
    ],
)
def test_template_change_deploys_the_idle_color_behind_preview(
    fields: dict[str, Any], size: int
) -> None:
    p = plan(app(T2, **fields), steady_blue(), NOW)
    assert writes(p) == [
        ("create", "Deployment", "demo-green"),
        ("update", "Service", "demo-preview"),
    ]
    green = body(p, "Deployment", "demo-green")
    assert green["spec"]["replicas"] == size
    assert green["metadata"]["labels"][names.LABEL_REVISION] == R2
    assert selector_color(body(p, "Service", "demo-preview")) == "green"
    assert (p.status.phase, p.status.preview_color, p.status.preview_revision) == (
        "Progressing",
        "green",
        R2,
    )
    assert p.status.active_color == "blue"


def test_ready_preview_waits_for_promote() -> None:
    p = plan(app(T2), preview_waiting(), NOW)
    assert writes(p) == []
    assert p.status.phase == "Paused"
    assert "spec.promote" in p.status.message
    assert (p.status.active_color, p.status.preview_color) == ("blue", "green")


def test_preview_not_yet_ready_is_progressing() -> None:
    p = plan(app(T2), preview_waiting(ready=1), NOW)
    assert writes(p) == []
    assert p.status.phase == "Progressing"
    assert "1/3" in p.status.message


# ------------------------------------------------------------------ 3. promotion


def test_promote_scales_a_small_preview_up_before_switching() -> None:
    p = plan(app(T2, promote=True, previewReplicas=1), preview_waiting(previewReplicas=1), NOW)
    assert writes(p) == [("update", "Deployment", "demo-green")]
    assert body(p, "Deployment", "demo-green")["spec"]["replicas"] == 3
    assert not p.switch.planned


def test_promote_waits_for_the_preview_endpoints() -> None:
    obs = preview_waiting()
    obs = observed(**{**parts_of(obs), "eps": endpoints("demo-green", 3, ready=False)})
    p = plan(app(T2, promote=True), obs, NOW)
    assert writes(p) == []
    assert p.status.reason == "WaitingForEndpoints"


def test_endpoints_of_the_other_color_do_not_count() -> None:
    obs = observed(**{**parts_of(preview_waiting()), "eps": endpoints("demo-blue", 3)})
    p = plan(app(T2, promote=True), obs, NOW)
    assert not p.switch.planned


def test_promote_switches_prod_in_one_write_when_fully_ready() -> None:
    p = plan(app(T2, promote=True), preview_waiting(), NOW)
    assert writes(p) == [("update", "Service", "demo")]
    prod = body(p, "Service", "demo")
    assert selector_color(prod) == "green"
    annotations = prod["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_PREVIOUS_REVISION] == R1
    assert annotations[names.ANNOTATION_SWITCHED_AT] == "2026-11-26T12:00:00Z"
    assert p.switch.planned
    assert (p.status.phase, p.status.active_color, p.status.active_revision) == (
        "Healthy",
        "green",
        R2,
    )
    assert p.status.preview_color is None
    assert p.status.previous_revision == R1
    assert p.requeue_after == 30


def lagging_deployment_status(
    ready_rs: int = 3,
    old_rs_pods: int = 0,
    rs_observed: bool = True,
    dep_observed: bool = True,
    new_rs_ready_reported: bool = True,
    endpoints: list[Obj] | None = None,
) -> Observed:
    """green's pods are all ready as its ReplicaSets report, but the Deployment controller
    has not yet folded that into the Deployment's status (it does so one step later)."""
    base = preview_waiting()
    green = copy.deepcopy(base.deployments["green"])
    green["status"].update(readyReplicas=0, availableReplicas=0)
    green["status"]["observedGeneration"] = 1 if dep_observed else 0
    new_rs = replicaset(green)
    new_rs["metadata"]["generation"] = 2
    new_rs["spec"] = {"replicas": 3}
    new_rs["status"] = {
        "observedGeneration": 2 if rs_observed else 1,
        "replicas": 3,
        "readyReplicas": ready_rs if new_rs_ready_reported else 0,
        "availableReplicas": ready_rs if new_rs_ready_reported else 0,
    }
    old_rs = replicaset(deployment("green", T1, 3), pod_hash="old0hash")
    old_rs["metadata"]["generation"] = 4
    old_rs["spec"] = {"replicas": old_rs_pods}
    old_rs["status"] = {"observedGeneration": 4, "replicas": old_rs_pods}
    blue_rs = base.replicasets[0]
    return replace(
        base,
        deployments={**base.deployments, "green": green},
        replicasets=[blue_rs, new_rs, old_rs],
        preview_endpoints=base.preview_endpoints if endpoints is None else endpoints,
    )


def test_the_switch_follows_the_replicasets_without_waiting_for_the_deployment_status() -> None:
    """The decisive event of a release is the last of the preview's endpoints and its
    ReplicaSet's status: the Deployment's own status, derived from the latter, may lag."""
    p = plan(app(T2, promote=True), lagging_deployment_status(), NOW)
    assert writes(p) == [("update", "Service", "demo")]
    assert p.status.active_color == "green"


def test_the_switch_follows_the_preview_endpoints_before_any_status_reports_them() -> None:
    """The EndpointSlice controller and the ReplicaSet controller see a pod ready in the
    same step; the switch follows whichever tells first (here the endpoints)."""
    observed_state = lagging_deployment_status(ready_rs=0, new_rs_ready_reported=False)
    p = plan(app(T2, promote=True), observed_state, NOW)
    assert writes(p) == [("update", "Service", "demo")]


OLD_POD_TERMINATING = {
    "conditions": {"ready": False, "serving": True, "terminating": True},
    "targetRef": {"kind": "Pod", "name": "demo-green-old0hash-00000"},
}


@pytest.mark.parametrize(
    "observed_state",
    [
        pytest.param(
            lagging_deployment_status(
                new_rs_ready_reported=False, endpoints=endpoints("demo-green", 3, ready=False)
            ),
            id="endpoints-not-ready",
        ),
        pytest.param(
            lagging_deployment_status(
                new_rs_ready_reported=False,
                endpoints=[*endpoints("demo-green", 3), OLD_POD_TERMINATING],
            ),
            id="an-old-pod-still-listed",
        ),
        pytest.param(
            lagging_deployment_status(new_rs_ready_reported=False, old_rs_pods=1),
            id="an-old-pod-without-an-address",
        ),
        pytest.param(
            lagging_deployment_status(
                new_rs_ready_reported=False, endpoints=endpoints("demo-green", 2)
            ),
            id="too-few-endpoints",
        ),
        pytest.param(
            lagging_deployment_status(ready_rs=2, endpoints=endpoints("demo-green", 2)),
            id="a-pod-not-ready",
        ),
        pytest.param(lagging_deployment_status(old_rs_pods=1), id="an-old-pod-left"),
        pytest.param(
            lagging_deployment_status(rs_observed=False, endpoints=endpoints("demo-green", 2)),
            id="rs-status-stale",
        ),
        pytest.param(lagging_deployment_status(dep_observed=False), id="deployment-spec-unseen"),
    ],
)
def test_no_switch_while_neither_the_replicasets_nor_the_endpoints_say_the_rollout_is_done(
    observed_state: Observed,
) -> None:
    p = plan(app(T2, promote=True), observed_state, NOW)
    assert writes(p) == []
    assert p.status.active_color == "blue"


def test_after_a_switch_the_previous_color_keeps_its_pods_for_the_delay() -> None:
    p = plan(app(T2, promote=True), after_switch(NOW - timedelta(seconds=10)), NOW)
    assert writes(p) == []  # restarted right after the switch: no second switch, no flap
    assert p.requeue_after == pytest.approx(20)
    assert p.status.previous_revision == R1
    assert "instant rollback" in p.status.message


def test_after_the_delay_the_previous_color_is_scaled_to_zero_not_deleted() -> None:
    p = plan(app(T2, promote=True), after_switch(NOW - timedelta(seconds=31)), NOW)
    assert writes(p) == [("update", "Deployment", "demo-blue")]
    blue = body(p, "Deployment", "demo-blue")
    assert blue["spec"]["replicas"] == 0
    assert blue["metadata"]["labels"][names.LABEL_REVISION] == R1  # its revision is kept
    assert p.requeue_after is None


# ------------------------------------------------------------------ 4. changes before promotion


def test_template_changed_again_updates_the_preview_in_place() -> None:
    p = plan(app(T3), preview_waiting(), NOW)
    assert writes(p) == [("update", "Deployment", "demo-green")]
    assert body(p, "Deployment", "demo-green")["metadata"]["labels"][names.LABEL_REVISION] == R3
    assert p.status.preview_revision == R3


def test_reverting_to_the_active_revision_abandons_the_preview() -> None:
    p = plan(app(T1), preview_waiting(), NOW)
    assert writes(p) == [
        ("update", "Deployment", "demo-green"),
        ("update", "Service", "demo-preview"),
    ]
    assert body(p, "Deployment", "demo-green")["spec"]["replicas"] == 0
    assert selector_color(body(p, "Service", "demo-preview")) == "blue"
    assert p.status.preview_color is None
    assert p.status.phase == "Healthy"


# ------------------------------------------------------------------ 5. rollback


def test_rollback_while_the_previous_color_runs_switches_with_no_new_pods() -> None:
    obs = after_switch(NOW - timedelta(seconds=10))
    obs = observed(
        **{**parts_of(obs), "preview": service("preview", "blue"), "eps": endpoints("demo-blue", 3)}
    )
    p = plan(app(T1, promote=True), obs, NOW)
    assert writes(p) == [("update", "Service", "demo")]
    assert selector_color(body(p, "Service", "demo")) == "blue"
    assert p.status.active_revision == R1


def test_rollback_to_a_scaled_down_color_scales_it_up_first() -> None:
    obs = after_switch(NOW - timedelta(minutes=5), blue_replicas=0)
    p = plan(app(T1, promote=True), obs, NOW)
    assert writes(p) == [
        ("update", "Deployment", "demo-blue"),
        ("update", "Service", "demo-preview"),
    ]
    blue = body(p, "Deployment", "demo-blue")
    assert (blue["spec"]["replicas"], blue["metadata"]["labels"][names.LABEL_REVISION]) == (3, R1)
    assert not p.switch.planned


# ------------------------------------------------------------------ 6, 7. in-place changes


def test_replicas_change_is_applied_in_place_to_the_active_color() -> None:
    p = plan(app(T1, replicas=5), steady_blue(), NOW)
    assert writes(p) == [("update", "Deployment", "demo-blue")]
    blue = body(p, "Deployment", "demo-blue")
    assert (blue["spec"]["replicas"], blue["metadata"]["labels"][names.LABEL_REVISION]) == (5, R1)


@pytest.mark.parametrize(
    "service_spec",
    [
        pytest.param({"ports": [{"port": 8080}]}, id="port"),
        pytest.param({"ports": [{"port": 80}], "type": "NodePort"}, id="type"),
    ],
)
def test_service_change_patches_both_services(service_spec: Obj) -> None:
    p = plan(app(T1, service=service_spec), steady_blue(), NOW)
    assert writes(p) == [("update", "Service", "demo"), ("update", "Service", "demo-preview")]


INGRESS = {"host": "hello.example.com", "previewHost": "hello-preview.example.com"}


def test_ingress_creates_one_per_host() -> None:
    p = plan(app(T1, ingress=INGRESS), steady_blue(), NOW)
    assert writes(p) == [("create", "Ingress", "demo"), ("create", "Ingress", "demo-preview")]
    rule = body(p, "Ingress", "demo-preview")["spec"]["rules"][0]
    assert rule["host"] == "hello-preview.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "demo-preview"


def test_removing_ingress_deletes_the_owned_ones() -> None:
    s = spec(T1, ingress=INGRESS)
    ing = {r: desired.stamped(desired.ingress(OWNER, r, s)) for r in names.SERVICE_ROLES}
    obs = observed(**parts_of(steady_blue()), ingresses=ing)
    p = plan(app(T1), obs, NOW)
    assert writes(p) == [("delete", "Ingress", "demo"), ("delete", "Ingress", "demo-preview")]


# ------------------------------------------------------------------ 9. objects we do not own


def test_a_foreign_service_is_left_alone_and_reported() -> None:
    parts = parts_of(steady_blue())
    parts["prod"] = service("prod", "blue", owner=STRANGER)
    p = plan(app(), observed(**parts), NOW)
    assert ("update", "Service", "demo") not in writes(p)
    assert ("create", "Service", "demo") not in writes(p)
    assert p.conflicts == ("Service demo",)
    reported = written_status(p)
    assert reported.phase == "Degraded"
    assert reported.conditions[2].reason == "ChildConflict"
    assert "Service demo" in (reported.message or "")


def test_a_foreign_idle_deployment_blocks_the_preview_and_the_switch() -> None:
    parts = parts_of(preview_waiting())
    parts["green"] = deployment("green", T2, 3, owner=STRANGER)
    p = plan(app(T2, promote=True), observed(**parts), NOW)
    assert all(a.name != "demo-green" for a in p.actions)
    assert not p.switch.planned
    assert written_status(p).phase == "Degraded"


def test_a_foreign_prod_service_blocks_the_switch_and_status_keeps_the_live_color() -> None:
    """Status describes what is live: no switch is claimed that was never written."""
    parts = parts_of(preview_waiting())
    parts["prod"] = service("prod", "blue", owner=STRANGER)
    p = plan(app(T2, promote=True), observed(**parts), NOW)
    assert p.switch.action is None
    reported = written_status(p)
    assert (reported.activeColor, reported.activeRevision) == ("blue", R1)
    assert reported.phase == "Degraded"


# ------------------------------------------------------------------ failures


def test_a_stuck_preview_rollout_is_degraded_with_the_reason() -> None:
    obs = preview_waiting(ready=0)
    green = obs.deployments["green"]
    green["status"]["conditions"] = [  # type: ignore[index]
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": 'ReplicaSet "demo-green-1" has timed out progressing.',
        }
    ]
    p = plan(app(T2), obs, NOW)
    assert p.status.phase == "Degraded"
    assert "timed out progressing" in p.status.message


@pytest.mark.parametrize("live", [False, True], ids=["preview", "first rollout"])
def test_pods_that_cannot_be_created_are_degraded_not_progressing_forever(live: bool) -> None:
    refused = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": 'pods "demo-green-x" is forbidden: violates PodSecurity "restricted:latest"',
    }
    if live:
        obs = observed(blue=deployment("blue", T1, 3, ready=0))
        obs.deployments["blue"]["status"]["conditions"] = [refused]  # type: ignore[index]
        p = plan(app(T1), obs, NOW)
    else:
        obs = preview_waiting(ready=0)
        obs.deployments["green"]["status"]["conditions"] = [refused]  # type: ignore[index]
        p = plan(app(T2), obs, NOW)
    assert (p.status.phase, p.status.reason) == ("Degraded", "RolloutFailed")
    assert "violates PodSecurity" in p.status.message


def test_revision_ignores_key_order() -> None:
    shuffled = {"spec": copy.deepcopy(T1["spec"]), "metadata": copy.deepcopy(T1["metadata"])}
    assert revision_of(shuffled) == R1
    assert R1 != R2


def test_a_deleted_live_deployment_is_rebuilt_from_what_prod_served() -> None:
    parts = parts_of(preview_waiting())
    parts["blue"] = None  # someone deleted hello-blue while v2 waits on green
    p = plan(app(T2), observed(**parts), NOW)
    assert writes(p) == [("create", "Deployment", "demo-blue")]
    blue = body(p, "Deployment", "demo-blue")
    assert blue["metadata"]["labels"][names.LABEL_REVISION] == R1  # not the unpromoted R2
    assert blue["spec"]["template"]["spec"]["containers"][0]["image"] == "hello:1"
    assert (p.status.active_revision, p.status.preview_revision) == (R1, R2)


def test_the_prod_service_records_the_template_prod_serves() -> None:
    p = plan(app(T2, promote=True), preview_waiting(), NOW)
    prod = body(p, "Service", "demo")
    recorded = prod["metadata"]["annotations"][names.ANNOTATION_LIVE_TEMPLATE]
    assert revision_of(json.loads(recorded)) == R2  # written in the switch itself


def test_a_first_rollout_that_never_happened_records_nothing_and_follows_the_spec() -> None:
    # The first template was refused (no Deployment ever existed); the user fixed it.
    s = spec(T2)
    never_served = observed(
        prod=desired.stamped(desired.service(OWNER, "prod", s, "blue")),
        preview=service("preview", "blue", s),
    )
    p = plan(app(T2), never_served, NOW)
    assert writes(p) == [("create", "Deployment", "demo-blue")]
    assert body(p, "Deployment", "demo-blue")["metadata"]["labels"][names.LABEL_REVISION] == R2


# ------------------------------------------------------------------ the record of what is live


def recorded(color: Color, revision: str, **fields: Any) -> BlueGreenAppStatus:
    return BlueGreenAppStatus(activeColor=color, activeRevision=revision, **fields)


def app_with_status(tpl: Obj, record: BlueGreenAppStatus | None, **fields: Any) -> App:
    return App(owner=OWNER, generation=2, spec=spec(tpl, **fields), recorded=record)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(recorded("green", R2), id="status records it"),
        pytest.param(None, id="no record: the color with more available pods"),
    ],
)
def test_a_deleted_prod_service_comes_back_on_the_live_color_not_the_preview(
    record: BlueGreenAppStatus | None,
) -> None:
    # v2 live on green (blue was first, so a default would pick blue), v3 waits on blue.
    parts = parts_of(after_switch(NOW - timedelta(seconds=600)))
    parts["blue"] = deployment("blue", T3, 1)
    parts["eps"] = endpoints("demo-blue", 1)
    parts["preview"] = service("preview", "blue", spec(T3))
    parts["prod"] = None
    p = plan(app_with_status(T3, record, previewReplicas=1), observed(**parts), NOW)
    assert writes(p) == [("create", "Service", "demo")]
    prod = body(p, "Service", "demo")
    assert selector_color(prod) == "green"
    live = json.loads(prod["metadata"]["annotations"][names.ANNOTATION_LIVE_TEMPLATE])
    assert revision_of(live) == R2
    assert (p.status.active_color, p.status.active_revision) == ("green", R2)
    assert (p.status.preview_color, p.status.preview_revision) == ("blue", R3)


def test_a_deleted_prod_service_with_promote_is_recreated_before_it_switches() -> None:
    """Creating prod and switching it are two writes, so status can say which happened."""
    parts = parts_of(preview_waiting())
    parts["prod"] = None
    p = plan(app_with_status(T2, recorded("blue", R1), promote=True), observed(**parts), NOW)
    assert selector_color(body(p, "Service", "demo")) == "blue"
    assert not p.switch.planned


def test_a_deleted_prod_service_after_a_switch_keeps_prod_on_the_new_color() -> None:
    """No preview waiting: prod must not go back to the previous color (at 0 pods)."""
    parts = parts_of(after_switch(NOW - timedelta(seconds=60), blue_replicas=0))
    parts["prod"] = None
    record = recorded("green", R2, previousRevision=R1, lastSwitchTime="2026-11-26T11:59:00Z")
    p = plan(app_with_status(T2, record, promote=True), observed(**parts), NOW)
    assert writes(p) == [("create", "Service", "demo")]
    prod = body(p, "Service", "demo")
    assert selector_color(prod) == "green"
    annotations = prod["metadata"]["annotations"]
    assert annotations[names.ANNOTATION_PREVIOUS_REVISION] == R1  # the record is restored
    assert annotations[names.ANNOTATION_SWITCHED_AT] == "2026-11-26T11:59:00Z"


def test_a_hand_edited_prod_selector_is_put_back_on_the_promoted_color() -> None:
    parts = parts_of(after_switch(NOW - timedelta(seconds=60), blue_replicas=0))
    edited = copy.deepcopy(parts["prod"])
    edited["spec"]["selector"][names.LABEL_COLOR] = "blue"  # someone moved prod by hand
    parts["prod"] = edited
    p = plan(app(T2, promote=True), observed(**parts), NOW)
    assert writes(p) == [("update", "Service", "demo")]
    assert selector_color(body(p, "Service", "demo")) == "green"
    assert ("update", "Deployment", "demo-blue") not in writes(p)  # blue is not scaled up
    assert not p.switch.planned


def test_a_hand_edited_prod_selector_does_not_promote_a_waiting_preview() -> None:
    parts = parts_of(preview_waiting())
    edited = copy.deepcopy(parts["prod"])
    edited["spec"]["selector"][names.LABEL_COLOR] = "green"
    parts["prod"] = edited
    p = plan(app(T2), observed(**parts), NOW)
    assert selector_color(body(p, "Service", "demo")) == "blue"
    assert (p.status.active_color, p.status.preview_color) == ("blue", "green")


def test_status_records_the_switch_time_and_the_previous_revision() -> None:
    p = plan(app(T2, promote=True), after_switch(NOW - timedelta(seconds=10)), NOW)
    assert p.status.switched_at == (NOW - timedelta(seconds=10)).isoformat().replace("+00:00", "Z")
    assert p.status.previous_revision == R1


# ------------------------------------------------------------------ readiness by revision


def test_ready_pods_of_an_older_revision_of_the_same_color_do_not_count() -> None:
    """While EndpointSlices lag behind a rollout, green's old pods may still be listed
    ready: only pods of the new revision's ReplicaSet count for the switch."""
    parts = parts_of(preview_waiting())
    old_green = deployment("green", T3, 3)
    parts["eps"] = endpoints("demo-green", 3, pod_hash="0ldh4sh")
    obs = observed(**parts)
    obs = Observed(
        obs.deployments,
        obs.services,
        obs.ingresses,
        obs.preview_endpoints,
        [*obs.replicasets, replicaset(old_green, pod_hash="0ldh4sh")],
    )
    p = plan(app(T2, promote=True), obs, NOW)
    assert not p.switch.planned
    assert p.status.reason == "WaitingForEndpoints"
    assert "0/3" in p.status.message


def test_without_the_new_replicaset_no_endpoint_counts() -> None:
    parts = parts_of(preview_waiting())
    obs = observed(**parts)
    p = plan(app(T2, promote=True), Observed(*list(vars(obs).values())[:4], []), NOW)
    assert not p.switch.planned


@pytest.mark.parametrize(
    "switched_at, blue_kept",
    [
        pytest.param("9999-12-31T23:59:59Z", True, id="near the end of time"),
        pytest.param("2026-11-26T11:59:50", True, id="no time zone: read as UTC"),
        pytest.param("not a time", False, id="unreadable: no window"),
    ],
)
def test_a_hand_written_switch_time_in_status_never_raises(
    switched_at: str, blue_kept: bool
) -> None:
    parts = parts_of(after_switch(NOW))
    parts["prod"] = None
    record = recorded("green", R2, previousRevision=R1, lastSwitchTime=switched_at)
    p = plan(app_with_status(T2, record, promote=True), observed(**parts), NOW)
    assert (("update", "Deployment", "demo-blue") not in writes(p)) is blue_kept


# ------------------------------------------------------------ scale-down follows the endpoints


def test_the_previous_color_keeps_its_pods_while_prod_endpoints_still_list_them() -> None:
    """Past the delay, but the EndpointSlice controller has not yet followed the switch
    (kube-proxy follows the slices): scaling down now would break live connections."""
    obs = after_switch(NOW - timedelta(seconds=31))
    obs = replace(obs, prod_endpoints=endpoints("demo-blue", 3, ready=False))
    p = plan(app(T2, promote=True), obs, NOW)
    assert writes(p) == []
    assert p.requeue_after == planner.RECHECK_PROD_ENDPOINTS
    assert "EndpointSlices no longer list them" in p.status.message


@pytest.mark.parametrize(
    ("lagged", "again"),
    [
        (1, planner.RECHECK_PROD_ENDPOINTS),  # just past the delay: soon
        (100, 50.0),  # half the time the endpoints have lagged so far
        (10_000, planner.RECHECK_PROD_ENDPOINTS_MAX),  # never rarer than the cap
    ],
)
def test_prod_endpoints_that_lag_are_looked_at_less_often(lagged: int, again: float) -> None:
    """The EndpointSlice controller can lag by minutes on a loaded control plane: a fixed
    5 s poll made ~60 passes per app for nothing (their change wakes the app anyway)."""
    obs = after_switch(NOW - timedelta(seconds=30 + lagged))  # 30 s: the default delay
    obs = replace(obs, prod_endpoints=endpoints("demo-blue", 3, ready=False))
    p = plan(app(T2, promote=True), obs, NOW)
    assert writes(p) == []
    assert p.requeue_after == again
    assert "EndpointSlices no longer list them" in p.status.message


def test_the_previous_color_is_scaled_down_once_prod_endpoints_list_only_the_new_one() -> None:
    obs = after_switch(NOW - timedelta(seconds=31))
    obs = replace(obs, prod_endpoints=endpoints("demo-green", 3))
    p = plan(app(T2, promote=True), obs, NOW)
    assert writes(p) == [("update", "Deployment", "demo-blue")]
    assert body(p, "Deployment", "demo-blue")["spec"]["replicas"] == 0


# ------------------------------------------------------------------ the scale subresource


def test_status_gives_the_scale_subresource_the_live_colors_pods() -> None:
    p = plan(app(T2), preview_waiting(), NOW)
    assert (p.status.replicas, p.status.selector) == (
        3,
        "bluegreen.dev/app=demo,bluegreen.dev/color=blue",
    )
    switched = plan(app(T2, promote=True), preview_waiting(), NOW)
    assert switched.status.selector == "bluegreen.dev/app=demo,bluegreen.dev/color=green"
