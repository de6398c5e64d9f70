"""One reconcile of one BlueGreenApp: observe, plan, act, write the status once.

Synchronous on purpose: the official client blocks, so the caller runs this in a thread.
It plans from the store the watches feed (:mod:`bluegreen.runtime.store`), so a pass that writes
nothing sends no request. Every write carries the resourceVersion it was planned from and
its answer goes straight into the store; a write refused because the view was stale (409,
404) reads that one object afresh and plans again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pydantic

from bluegreen.api.models import KIND, BlueGreenAppSpec, BlueGreenAppStatus, Notifications
from bluegreen.core import gates, names, notify, planner, reasons, status
from bluegreen.core.clock import utcnow
from bluegreen.core.desired import Owner
from bluegreen.core.objects import Obj
from bluegreen.core.planner import Action, App, Observed, Plan
from bluegreen.kube.client import Kube
from bluegreen.kube.errors import ApiError, Conflict, Forbidden, Invalid, NotFound
from bluegreen.runtime import metrics
from bluegreen.runtime.checker import Checker, NoChecks
from bluegreen.runtime.notifier import Notifier
from bluegreen.runtime.store import CHILD_KINDS, Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# After a write lost a race (409: the object appeared, or changed since it was planned from),
# plan again at once: the object was read afresh into the store.
RETRY_AFTER_CONFLICT = 0.0
RETRY_AFTER_FORBIDDEN = 30.0
# A spec the planner failed on fails again until it changes (which wakes the app anyway).
RETRY_AFTER_PLAN_FAILURE = 300.0
# An app blocked by someone else's object of a child's name looks again this often: the
# label-selected watches never show that object's deletion, so only a read can see it go
# (one GET per foreign object, and only for an app in conflict).
RECHECK_CONFLICT = 5.0


@dataclass
class Outcome:
    """What the caller schedules next: a reconcile after this many seconds, or none."""

    requeue_after: float | None = None
    failures: list[str] = field(default_factory=list)
    done: list[Action] = field(default_factory=list)


class InvalidSpec(Exception):
    """The app's spec cannot be served as it is: the user must change it."""


@metrics.timed_reconcile
def reconcile(
    kube: Kube,
    store: Store,
    namespace: str,
    name: str,
    clock: Clock = utcnow,
    checker: Checker | None = None,
    notifier: Notifier | None = None,
) -> Outcome:
    """One pass over one app. Whatever one app holds, the pass ends in a status that says
    what happened: no content of one object may stop the operator or wedge its app.
    ``checker``: the check runner, which this pass reads and tells what to probe (none:
    HTTP checks are never run, so they never pass)."""
    checker = checker or NoChecks()
    body = store.get(KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        metrics.forget_app(namespace, name)
        checker.forget((namespace, name))
        return Outcome()  # gone or going: the garbage collector removes the children
    generation = int(body["metadata"].get("generation", 0))
    previous = status.recorded(body.get("status"))
    now = clock()

    def written(new: BlueGreenAppStatus, config: Notifications | None) -> float | None:
        """Write the status with the notifications it owes; when to look again for them."""
        new = with_notices(body, previous, new, config, now)
        _write_status(kube, store, body, new)
        if config is None:
            return None
        if notifier is not None:
            notifier.want(body, new.notifications, config)
        return notify.stuck_check_after(new, config, now)

    def stop(reason: str, message: str, requeue_after: float | None = None) -> Outcome:
        checker.forget((namespace, name))
        stopped = status.stopped(reason, message, generation=generation, previous=previous, now=now)
        again = written(stopped, notifications_of(body))
        return Outcome(requeue_after=_earlier(requeue_after, again), failures=[message])

    try:
        app = parse_app(body, previous)
    except InvalidSpec as err:
        return stop(reasons.INVALID_SPEC, str(err))
    # Missing RBAC for a read (a watch refused, or a read afresh): tell the user where they
    # look, and look again later.
    refusal = refused_read(store, app)
    if refusal is not None:
        return stop(reasons.FORBIDDEN, unreadable(refusal), RETRY_AFTER_FORBIDDEN)
    try:
        refresh_pinned(kube, store, app)
    except Forbidden as err:
        return stop(reasons.FORBIDDEN, unreadable(err.message), RETRY_AFTER_FORBIDDEN)
    observed = children_from_store(store, app)
    observed = with_checks(store, app, observed, checker)
    try:
        the_plan = planner.plan(app, observed, now)
    except Exception as err:
        # A spec the schema let through but the planner cannot serve: report it on this app
        # (the test suite fuzzes the planner so that this stays unreachable).
        log.exception("%s/%s: planning failed", namespace, name)
        message = f"the operator cannot plan this spec: {type(err).__name__}: {err}"
        return stop(reasons.INVALID_SPEC, message[:1024], RETRY_AFTER_PLAN_FAILURE)
    if any(a.verb == "create" for a in the_plan.actions) and not _still_there(kube, body):
        store.forget(KIND, namespace, name)
        return Outcome()  # the store outlived the app: creating children for it would leak
    metrics.observe_plan(app, the_plan)
    checker.want((namespace, name), the_plan.probes)
    outcome = act(kube, store, body, the_plan)
    if the_plan.conflicts:
        outcome.requeue_after = _earlier(outcome.requeue_after, RECHECK_CONFLICT)
    new = status.after_pass(
        the_plan,
        outcome.done,
        outcome.failures,
        generation=generation,
        previous=previous,
        now=now,
    )
    outcome.requeue_after = _earlier(outcome.requeue_after, written(new, app.spec.notifications))
    return outcome


def _earlier(a: float | None, b: float | None) -> float | None:
    """The sooner of two requeue delays, where None is never."""
    return b if a is None else a if b is None else min(a, b)


def notifications_of(body: Obj) -> Notifications | None:
    """``spec.notifications`` read on its own: an app whose spec is invalid elsewhere is
    still notified of it."""
    raw = (body.get("spec") or {}).get("notifications")
    try:
        return Notifications.model_validate(raw) if isinstance(raw, dict) else None
    except (pydantic.ValidationError, RecursionError):
        return None


def with_notices(
    body: Obj,
    previous: BlueGreenAppStatus,
    new: BlueGreenAppStatus,
    config: Notifications | None,
    now: datetime,
) -> BlueGreenAppStatus:
    """The status with the notifications this pass owes added to the record."""
    added: dict[str, Any] = {}
    if config is not None:
        meta = body["metadata"]
        generation = int(meta.get("generation", 0))
        found = notify.detected(previous, new, config, generation, now)
        added = {
            nid: notify.with_link(r, config.link, meta["namespace"], meta["name"])
            for nid, r in found.items()
        }
    return new.model_copy(update={"notifications": notify.recorded(previous, added)})


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


def children_of(app: str) -> list[tuple[str, str]]:
    """Every child by kind and fixed name."""
    return [
        *(("Deployment", names.deployment_name(app, c)) for c in names.COLORS),
        *(("Service", names.service_name(app, r)) for r in names.SERVICE_ROLES),
        *(("Ingress", names.ingress_name(app, r)) for r in names.SERVICE_ROLES),
        *(("HTTPRoute", names.route_name(app, r)) for r in names.SERVICE_ROLES),
    ]


def unreadable(why: str) -> str:
    return f"the operator may not read its children: {why}"


def refused_read(store: Store, app: App) -> str | None:
    """Why a kind the app's plan reads cannot be watched (RBAC), or None when all can."""
    # The check Jobs matter only to an app with Job checks, the routes to one with routes.
    reads = {"Job": bool(gates.job_checks(app.spec)), "HTTPRoute": app.spec.gateway is not None}
    kinds = (kind for kind in CHILD_KINDS if reads.get(kind, True))
    reasons = (store.refused(kind, app.owner.namespace) for kind in kinds)
    return next((reason for reason in reasons if reason is not None), None)


def children_from_store(store: Store, app: App) -> Observed:
    """Every child by its fixed name, whoever owns it, and the Services' endpoints."""
    ns, name = app.owner.namespace, app.owner.name
    deployments = {
        c: store.get("Deployment", ns, names.deployment_name(name, c)) for c in names.COLORS
    }
    services = {
        r: store.get("Service", ns, names.service_name(name, r)) for r in names.SERVICE_ROLES
    }
    ingresses = {
        r: store.get("Ingress", ns, names.ingress_name(name, r)) for r in names.SERVICE_ROLES
    }
    routes = {r: store.get("HTTPRoute", ns, names.route_name(name, r)) for r in names.SERVICE_ROLES}
    return Observed(
        deployments={k: v for k, v in deployments.items() if v is not None},
        services={k: v for k, v in services.items() if v is not None},
        ingresses={k: v for k, v in ingresses.items() if v is not None},
        routes={k: v for k, v in routes.items() if v is not None},
        gateway_api=store.is_served("HTTPRoute"),
        missing_parents=missing_parents(store, app),
        preview_endpoints=store.endpoints_of_service(ns, names.service_name(name, "preview")),
        prod_endpoints=store.endpoints_of_service(ns, names.service_name(name, "prod")),
        replicasets=store.replicasets_of(ns, name),
    )


def missing_parents(store: Store, app: App) -> frozenset[tuple[str, str]]:
    """The parent Gateways (namespace, name) of ``spec.gateway`` known not to exist: a
    namespace whose Gateways the operator has listed holds none of that name. A Gateway
    the operator cannot see (another namespace, no rights) is never called missing."""
    if app.spec.gateway is None:
        return frozenset()
    parents = {(p.namespace or app.owner.namespace, p.name) for p in app.spec.gateway.parentRefs}
    return frozenset(
        (ns, name)
        for ns, name in parents
        if store.has_listed("Gateway", ns) and store.get("Gateway", ns, name) is None
    )


def refresh_pinned(kube: Kube, store: Store, app: App) -> None:
    """Read afresh the children the watches cannot see (someone else's objects that hold
    a child's name): the only reads a pass makes, and only for an app in conflict."""
    ns = app.owner.namespace
    for kind, child in store.pinned_of(ns, children_of(app.owner.name)):
        read_afresh(kube, store, kind, ns, child)


def read_afresh(kube: Kube, store: Store, kind: str, namespace: str, name: str) -> None:
    """One strong read of one object into the store (a write on it found the view stale)."""
    live = kube.get(kind, namespace, name)
    if live is None:
        store.forget(kind, namespace, name)
    else:
        store.put(kind, {**live, "kind": kind})


def _still_there(kube: Kube, body: Obj) -> bool:
    """Whether the app the store holds still exists (a strong read, made before creating
    children: a watch that had to list again may have missed its deletion)."""
    meta = body["metadata"]
    live = kube.get(KIND, meta["namespace"], meta["name"])
    return (
        live is not None
        and live["metadata"].get("uid") == meta.get("uid")
        and not live["metadata"].get("deletionTimestamp")
    )


def with_checks(store: Store, app: App, observed: Observed, checker: Checker) -> Observed:
    """What the gates need: the runner's tallies, and the app's check Jobs (from the store:
    the Jobs are watched as the other children)."""
    tallies = checker.tallies((app.owner.namespace, app.owner.name))
    jobs: list[Obj] = []
    if gates.job_checks(app.spec):
        jobs = store.jobs_of(app.owner.namespace, app.owner.name)
    return replace(observed, check_tallies=tallies, jobs=jobs)


def act(kube: Kube, store: Store, app_body: Obj, the_plan: Plan) -> Outcome:
    """Carry out the plan's writes in order. A write the API server refuses as invalid is
    reported (bad input: retrying cannot help until the spec changes); other errors raise,
    and the caller retries with a backoff."""
    outcome = Outcome(requeue_after=the_plan.requeue_after)
    ns = app_body["metadata"]["namespace"]
    for action in the_plan.actions:
        sent = time.monotonic()
        try:
            _perform(kube, store, ns, action)
        except ApiError as err:
            if isinstance(err, NotFound | Conflict) and action.verb != "delete":
                # The view was stale (it appeared, changed or went): read it, plan again.
                read_afresh(kube, store, action.kind, ns, action.name)
                outcome.requeue_after = RETRY_AFTER_CONFLICT
                continue
            if isinstance(err, Forbidden):
                # Missing RBAC: say so in the status, and look again later (it may be granted).
                outcome.requeue_after = RETRY_AFTER_FORBIDDEN
            elif not isinstance(err, Invalid):
                raise
            failure = f"{action.kind} {action.name} was refused by the API server: {err.message}"
            log.warning("%s/%s: %s", ns, app_body["metadata"]["name"], failure)
            outcome.failures.append(failure)
            continue
        outcome.done.append(action)
        if action == the_plan.switch.action:
            metrics.observe_switch(ns, app_body["metadata"]["name"], sent)
        log.info("%s/%s: %s", ns, app_body["metadata"]["name"], action.why)
        kube.post_event(app_body, "Normal", action.reason, action.why)
    switch = the_plan.switch
    if switch.warning and switch.is_written(outcome.done):
        kube.post_event(app_body, "Warning", reasons.SHORT_SCALE_DOWN_DELAY, switch.warning)
    return outcome


def _perform(kube: Kube, store: Store, namespace: str, action: Action) -> None:
    """One write; its answer goes into the store at once, so that the next plan starts from
    it, whether or not the watch has delivered it yet."""
    if action.verb == "delete":
        # A check Job's pods go with it (for Jobs the API's default would orphan them).
        propagation = "Background" if action.kind == "Job" else None
        kube.delete(action.kind, namespace, action.name, propagation=propagation)
        store.forget(action.kind, namespace, action.name)
        return
    assert action.body is not None
    if action.verb == "create":
        written = kube.create(namespace, action.body)
    else:
        written = kube.replace(namespace, action.body)
    store.put(action.kind, {**written, "kind": action.kind})


# ---------------------------------------------------------------- status


def _write_status(kube: Kube, store: Store, body: Obj, new: BlueGreenAppStatus) -> bool:
    """Write the status only when it differs from what is there (a converged app costs
    nothing), with one Warning Event per new problem, not one per pass."""
    metrics.observe_status(body, new)
    current = body.get("status") or {}
    # status.notifications is compared and written apart: a pass adds entries (and drops
    # old ones), never rewrites one, which the notifier updates with patches of its own.
    added = notify.delta(status.recorded(current), new)
    others = {k: v for k, v in current.items() if k != "notifications"}
    patch = status.as_patch(new.model_copy(update={"notifications": {}}))
    del patch["notifications"]
    if _present(others) == _present(patch) and not added:
        return False
    meta = body["metadata"]
    patch["notifications"] = added
    written = kube.patch_app_status(meta["namespace"], meta["name"], patch)
    if written is not None:
        store.put(KIND, {**written, "kind": KIND})
    if new.phase == "Degraded" and new.message != current.get("message"):
        kube.post_event(body, "Warning", _degraded_reason(new), new.message or "")
    return True


def _present(fields: Obj) -> Obj:
    return {k: v for k, v in fields.items() if v is not None}


def _degraded_reason(new: BlueGreenAppStatus) -> str:
    degraded = next((c for c in new.conditions if c.type == "Degraded"), None)
    return degraded.reason if degraded is not None else "Degraded"


def _invalid_spec_message(err: pydantic.ValidationError) -> str:
    problems = "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
    )
    return f"invalid spec: {problems}"
