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

from bluegreen import gates, names, planner, status
from bluegreen.checker import Checker, NoChecks
from bluegreen.clock import utcnow
from bluegreen.desired import Owner
from bluegreen.kube import ApiError, Kube
from bluegreen.models import KIND, BlueGreenAppSpec, BlueGreenAppStatus
from bluegreen.planner import Action, App, Observed, Plan

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Clock = Callable[[], datetime]

# After a write lost a race (409: the object appeared, or changed since it was read), look
# again soon: the next pass reads it afresh and sees who owns it.
RETRY_AFTER_CONFLICT = 0.5
RETRY_AFTER_FORBIDDEN = 30.0
# A spec the planner failed on fails again until it changes (which wakes the app anyway).
RETRY_AFTER_PLAN_FAILURE = 300.0


@dataclass
class Outcome:
    """What the caller schedules next: a reconcile after this many seconds, or none."""

    requeue_after: float | None = None
    failures: list[str] = field(default_factory=list)
    done: list[Action] = field(default_factory=list)


class InvalidSpec(Exception):
    """The app's spec cannot be served as it is: the user must change it."""


def reconcile(
    kube: Kube, namespace: str, name: str, clock: Clock = utcnow, checker: Checker | None = None
) -> Outcome:
    """One pass over one app. Whatever one app holds, the pass ends in a status that says
    what happened: no content of one object may stop the operator or wedge its app.
    ``checker``: the check runner, which this pass reads and tells what to probe (none:
    HTTP checks are never run, so they never pass)."""
    checker = checker or NoChecks()
    body = kube.get(KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        checker.forget((namespace, name))
        return Outcome()  # gone or going: the garbage collector removes the children
    generation = int(body["metadata"].get("generation", 0))
    previous = status.recorded(body.get("status"))
    now = clock()

    def stop(reason: str, message: str, requeue_after: float | None = None) -> Outcome:
        checker.forget((namespace, name))
        stopped = status.stopped(reason, message, generation=generation, previous=previous, now=now)
        _write_status(kube, body, stopped)
        return Outcome(requeue_after=requeue_after, failures=[message])

    try:
        app = parse_app(body, previous)
    except InvalidSpec as err:
        return stop("InvalidSpec", str(err))
    try:
        observed = observe(kube, app)
        observed = observe_checks(kube, app, observed, checker)
    except ApiError as err:
        if err.status != 403:
            raise
        # Missing RBAC for a read: tell the user where they look, and look again later.
        message = f"the operator may not read its children: {err.message}"
        return stop("Forbidden", message, RETRY_AFTER_FORBIDDEN)
    try:
        the_plan = planner.plan(app, observed, now)
    except Exception as err:
        # A spec the schema let through but the planner cannot serve: report it on this app
        # (the test suite fuzzes the planner so that this stays unreachable).
        log.exception("%s/%s: planning failed", namespace, name)
        message = f"the operator cannot plan this spec: {type(err).__name__}: {err}"
        return stop("InvalidSpec", message[:1024], RETRY_AFTER_PLAN_FAILURE)
    checker.want((namespace, name), the_plan.probes)
    outcome = act(kube, body, the_plan)
    new = status.after_pass(
        the_plan,
        outcome.done,
        outcome.failures,
        generation=generation,
        previous=previous,
        now=now,
    )
    _write_status(kube, body, new)
    return outcome


def parse_app(body: Obj, previous: BlueGreenAppStatus) -> App:
    """The app as the planner takes it; InvalidSpec names what is wrong."""
    try:
        spec = BlueGreenAppSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as err:
        raise InvalidSpec(_invalid_spec_message(err)) from None
    except RecursionError:
        raise InvalidSpec("invalid spec: it nests too deeply to be read") from None
    meta = body["metadata"]
    owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    generation = int(meta.get("generation", 0))
    return App(owner=owner, generation=generation, spec=spec, recorded=previous)


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
        prod_endpoints=kube.endpoints_of_service(ns, names.service_name(name, "prod")),
        replicasets=kube.select("ReplicaSet", ns, f"{names.LABEL_APP}={name}"),
    )


def observe_checks(kube: Kube, app: App, observed: Observed, checker: Checker) -> Observed:
    """What the gates need: the runner's tallies, and the app's check Jobs (listed only when
    the spec has a Job check: other apps pay nothing for them)."""
    tallies = checker.tallies((app.owner.namespace, app.owner.name))
    jobs: list[Obj] = []
    if gates.job_checks(app.spec):
        selector = f"{names.LABEL_APP}={app.owner.name},{names.LABEL_CHECK}"
        jobs = kube.select("Job", app.owner.namespace, selector)
    return replace(observed, check_tallies=tallies, jobs=jobs)


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
    if the_plan.switch_warning and the_plan.switch in outcome.done:
        kube.post_event(app_body, "Warning", "ShortScaleDownDelay", the_plan.switch_warning)
    return outcome


def _perform(kube: Kube, namespace: str, action: Action) -> None:
    if action.verb == "delete":
        # A check Job's pods go with it (for Jobs the API's default would orphan them).
        propagation = "Background" if action.kind == "Job" else None
        kube.delete(action.kind, namespace, action.name, propagation=propagation)
    elif action.verb == "create":
        assert action.body is not None
        kube.create(namespace, action.body)
    else:
        assert action.body is not None
        kube.replace(namespace, action.body)


# ---------------------------------------------------------------- status


def _write_status(kube: Kube, body: Obj, new: BlueGreenAppStatus) -> bool:
    """Write the status only when it differs from what is there (a converged app costs
    nothing), with one Warning Event per new problem, not one per pass."""
    current = body.get("status") or {}
    if not status.differs(current, new):
        return False
    meta = body["metadata"]
    kube.patch_app_status(meta["namespace"], meta["name"], status.as_patch(new))
    if new.phase == "Degraded" and new.message != current.get("message"):
        kube.post_event(body, "Warning", _degraded_reason(new), new.message or "")
    return True


def _degraded_reason(new: BlueGreenAppStatus) -> str:
    degraded = next((c for c in new.conditions if c.type == "Degraded"), None)
    return degraded.reason if degraded is not None else "Degraded"


def _invalid_spec_message(err: pydantic.ValidationError) -> str:
    problems = "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
    )
    return f"invalid spec: {problems}"
