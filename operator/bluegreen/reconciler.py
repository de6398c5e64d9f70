"""One reconcile of one BlueGreenApp: observe, plan, act, write the status once.

Synchronous on purpose: the official client blocks, so the caller runs this in a thread.
It reads what is live on every pass (strong reads; no cache to go stale after our own
writes), and writes only what the plan says, plus the status when it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pydantic

from bluegreen import names, planner
from bluegreen.clock import format_time, utcnow
from bluegreen.desired import Owner
from bluegreen.kube import ApiError, Kube
from bluegreen.models import KIND, BlueGreenAppSpec
from bluegreen.planner import Action, App, Observed, Plan, Status

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Clock = Callable[[], datetime]

# After a write lost a race (409: the object appeared, or changed since it was read), look
# again soon: the next pass reads it afresh and sees who owns it.
RETRY_AFTER_CONFLICT = 0.5
RETRY_AFTER_FORBIDDEN = 30.0


@dataclass
class Outcome:
    """What the caller schedules next: a reconcile after this many seconds, or none."""

    requeue_after: float | None = None
    failures: list[str] = field(default_factory=list)
    done: list[Action] = field(default_factory=list)


def reconcile(kube: Kube, namespace: str, name: str, clock: Clock = utcnow) -> Outcome:
    body = kube.get(KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return Outcome()  # gone or going: the garbage collector removes the children
    generation = int(body["metadata"].get("generation", 0))
    try:
        spec = BlueGreenAppSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as err:
        _report_stuck(kube, body, generation, "InvalidSpec", _invalid_spec_message(err), clock())
        return Outcome()
    owner = Owner(name=name, namespace=namespace, uid=body["metadata"]["uid"])
    app = App(owner=owner, generation=generation, spec=spec)
    now = clock()
    try:
        the_plan = planner.plan(app, observe(kube, app), now)
    except ApiError as err:
        if err.status != 403:
            raise
        # Missing RBAC for a read: tell the user where they look, and look again later.
        message = f"the operator may not read its children: {err.message}"
        _report_stuck(kube, body, generation, "Forbidden", message, now)
        return Outcome(requeue_after=RETRY_AFTER_FORBIDDEN, failures=[message])
    outcome = act(kube, body, the_plan)
    status = the_plan.status
    if the_plan.switch is not None and the_plan.switch not in outcome.done:
        # Prod still selects the old color: say so, never a switch that did not happen.
        assert the_plan.status_unswitched is not None
        status = the_plan.status_unswitched
    if outcome.failures:
        status = replace(
            status, phase="Degraded", reason="ChildRejected", message="; ".join(outcome.failures)
        )
    previous = body.get("status") or {}
    write_status(kube, body, status_body(status, generation, previous, now))
    if status.phase == "Degraded" and status.message != previous.get("message"):
        # One Warning per new problem, not one per pass: the status carries it meanwhile.
        kube.post_event(body, "Warning", status.reason, status.message)
    return outcome


def observe(kube: Kube, app: App) -> Observed:
    """Every child by its fixed name, whoever owns it, and the preview's endpoints."""
    ns, name = app.owner.namespace, app.owner.name
    deployments = {
        c: kube.get("Deployment", ns, names.deployment_name(name, c)) for c in names.COLORS
    }
    services = {
        r: kube.get("Service", ns, names.service_name(name, r)) for r in names.SERVICE_ROLES
    }
    ingresses = {
        r: kube.get("Ingress", ns, names.ingress_name(name, r)) for r in names.SERVICE_ROLES
    }
    return Observed(
        deployments={k: v for k, v in deployments.items() if v is not None},
        services={k: v for k, v in services.items() if v is not None},
        ingresses={k: v for k, v in ingresses.items() if v is not None},
        preview_endpoints=kube.endpoints_of_service(ns, names.service_name(name, "preview")),
    )


def act(kube: Kube, app_body: Obj, the_plan: Plan) -> Outcome:
    """Carry out the plan's writes in order. A write the API server refuses as invalid is
    reported (bad input: retrying cannot help until the spec changes); other errors raise,
    and the caller retries with a backoff."""
    outcome = Outcome(requeue_after=the_plan.requeue_after)
    ns = app_body["metadata"]["namespace"]
    for action in the_plan.actions:
        try:
            _perform(kube, ns, action)
        except ApiError as err:
            if err.status == 409:
                outcome.requeue_after = RETRY_AFTER_CONFLICT
                continue
            if err.status == 403:
                # Missing RBAC: say so in the status, and look again later (it may be granted).
                outcome.requeue_after = RETRY_AFTER_FORBIDDEN
            elif not err.is_invalid:
                raise
            failure = f"{action.kind} {action.name} was refused by the API server: {err.message}"
            log.warning("%s/%s: %s", ns, app_body["metadata"]["name"], failure)
            outcome.failures.append(failure)
            continue
        outcome.done.append(action)
        log.info("%s/%s: %s", ns, app_body["metadata"]["name"], action.why)
        kube.post_event(app_body, "Normal", action.reason, action.why)
    return outcome


def _perform(kube: Kube, namespace: str, action: Action) -> None:
    if action.verb == "delete":
        kube.delete(action.kind, namespace, action.name)
    elif action.verb == "create":
        assert action.body is not None
        kube.create(namespace, action.body)
    else:
        assert action.body is not None
        kube.replace(namespace, action.body)


# ---------------------------------------------------------------- status


def status_body(status: Status, generation: int, previous: Obj, now: datetime) -> Obj:
    """The status subresource as the merge patch writes it: absent fields are None."""
    return {
        "phase": status.phase,
        "message": status.message,
        "observedGeneration": generation,
        "activeColor": status.active_color,
        "activeRevision": status.active_revision,
        "previewColor": status.preview_color,
        "previewRevision": status.preview_revision,
        "previousRevision": status.previous_revision,
        "conditions": conditions(status, previous.get("conditions") or [], now),
    }


def conditions(status: Status, previous: list[Obj], now: datetime) -> list[Obj]:
    progressing = status.phase == "Progressing"
    degraded = status.phase == "Degraded"
    wanted = [
        (
            "Available",
            status.available,
            "ActiveColorAvailable" if status.available else "ActiveColorUnavailable",
            f"{status.active_color} serves revision {status.active_revision}",
        ),
        ("Progressing", progressing, status.reason, status.message if progressing else ""),
        (
            "Degraded",
            degraded,
            status.reason if degraded else "AsExpected",
            status.message if degraded else "",
        ),
    ]
    before = {c.get("type"): c for c in previous}
    out = []
    for type_, truth, reason, message in wanted:
        value = "True" if truth else "False"
        old = before.get(type_) or {}
        since = old.get("lastTransitionTime") if old.get("status") == value else None
        out.append(
            {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": since or format_time(now),
            }
        )
    return out


def write_status(kube: Kube, body: Obj, status: Obj) -> bool:
    """Write the status only when it differs from what is there: nothing is written for
    an app that is already converged."""
    current = body.get("status") or {}
    if _present(current) == _present(status):
        return False
    meta = body["metadata"]
    kube.patch_app_status(meta["namespace"], meta["name"], status)
    return True


def _present(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v is not None}


def _invalid_spec_message(err: pydantic.ValidationError) -> str:
    problems = "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
    )
    return f"invalid spec: {problems}"


def _report_stuck(
    kube: Kube, body: Obj, generation: int, reason: str, message: str, now: datetime
) -> None:
    """Degraded for a reason that stops the whole pass (bad spec, missing rights): the rest
    of the last status (which color serves prod) stays as it was, nothing else is written."""
    previous = body.get("status") or {}
    status = status_body(
        Status(
            phase="Degraded",
            reason=reason,
            message=message,
            active_color=previous.get("activeColor") or "blue",
            active_revision=previous.get("activeRevision") or "",
            available=False,
        ),
        generation,
        previous,
        now,
    )
    for kept in ("activeColor", "activeRevision", "previewColor", "previewRevision"):
        status[kept] = previous.get(kept)
    if write_status(kube, body, status):
        kube.post_event(body, "Warning", reason, message)
