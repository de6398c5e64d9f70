"""The pure core: from a BlueGreenApp and what is live, the next writes and the status.

No Kopf and no client here. ``plan()`` takes plain data and returns plain data, so every
case of the lifecycle is a table row in the unit tests. The decision is a short cascade:

1. The active color is the one holding the promoted revision. The record of it is the prod
   Service (its live-template annotation, written in the switch itself); should that
   Service be lost or hand-edited, the app's status, then the Deployments themselves. So a
   restart at any moment resumes from what is live, and a preview never reaches prod
   because a Service was deleted or edited.
2. When the desired revision is the active one, keep it at ``replicas``, point preview at
   it too, and scale the other color to 0 once its rollback window has passed.
3. Otherwise the desired revision goes to the idle color (updated in place), the preview
   Service selects it, and, with ``promote``, ONE write of the prod Service switches to it
   once it is fully rolled out at ``replicas`` and its endpoints are ready.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from bluegreen.api.models import (
    BlueGreenAppSpec,
    BlueGreenAppStatus,
    CheckStage,
    CheckStatus,
    Color,
    Phase,
)
from bluegreen.core import desired, gates, names, routes
from bluegreen.core.clock import format_time, parse_time
from bluegreen.core.desired import Obj, Owner
from bluegreen.core.revision import revision_of

Kind = Literal["Deployment", "Service", "Ingress", "HTTPRoute", "Job"]

# A safety net only: the EndpointSlice event that drops the old pods wakes the app first.
RECHECK_PROD_ENDPOINTS = 5.0
# Below this, the previous color may be gone before every node's kube-proxy follows the
# switch: measured on a real node, kube-proxy applied it up to ~1.1 s after the selector
# write, and with a delay of 0 requests failed in most runs (docs/benchmarks.md). Not
# refused (a test cluster, an app without Service traffic may want it): warned about.
SAFE_SCALE_DOWN_DELAY = 5
Verb = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class App:
    """The BlueGreenApp as read: who owns the children, and what the user asked for."""

    owner: Owner
    generation: int
    spec: BlueGreenAppSpec
    # The status last written (None when absent or unreadable): the fallback record of
    # what is live, should the prod Service be lost.
    recorded: BlueGreenAppStatus | None = None


@dataclass(frozen=True)
class Observed:
    """The children that exist (by color or role), whoever owns them, the endpoints of the
    preview and prod Services, and the app's ReplicaSets (which name each revision's pods)."""

    deployments: Mapping[Color, Obj] = field(default_factory=dict)
    services: Mapping[names.ServiceRole, Obj] = field(default_factory=dict)
    ingresses: Mapping[names.ServiceRole, Obj] = field(default_factory=dict)
    preview_endpoints: Sequence[Obj] = ()
    replicasets: Sequence[Obj] = ()
    prod_endpoints: Sequence[Obj] = ()
    # The check runner's tallies of the HTTP check runs, and the app's check Jobs.
    check_tallies: Mapping[gates.RunKey, gates.Tally] = field(default_factory=dict)
    jobs: Sequence[Obj] = ()
    routes: Mapping[names.ServiceRole, Obj] = field(default_factory=dict)  # HTTPRoutes
    gateway_api: bool = True  # whether the cluster serves HTTPRoutes (their CRD is there)
    # Parent Gateways (namespace, name) the routes name that are known not to exist.
    missing_parents: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Action:
    verb: Verb
    kind: Kind
    name: str
    body: Obj | None
    reason: str  # the Event's reason: Created, Deploying, Scaled, Switched, Updated, Deleted
    why: str  # the Event's message and the log line


@dataclass(frozen=True)
class Status:
    """What ``status`` will say (:mod:`bluegreen.core.status` turns it into the status model).

    ``available`` is None when it is not known (the pass stopped before looking)."""

    phase: Phase
    reason: str
    message: str
    active_color: Color | None
    active_revision: str | None
    available: bool | None
    preview_color: Color | None = None
    preview_revision: str | None = None
    previous_revision: str | None = None
    switched_at: str | None = None
    # The scale subresource: the live color's pods and their selector.
    replicas: int | None = None
    selector: str | None = None
    # Each check of the revision being released or verified.
    checks: tuple[CheckStatus, ...] = ()
    # A revision switched back after a failed check, with the retryChecks then.
    rolled_back: tuple[str, int] | None = None


@dataclass(frozen=True)
class Plan:
    """The writes, and what status says once they are all done. When the plan switches,
    ``status_unswitched`` is what it says should the switch not be written (refused, or
    blocked by a foreign object): prod then still selects the old color."""

    actions: tuple[Action, ...]
    status: Status
    requeue_after: float | None = None
    status_unswitched: Status | None = None
    # Children of this app's names that belong to someone else, as "Kind name".
    conflicts: tuple[str, ...] = ()
    # A Warning Event to post once the switch is written.
    switch_warning: str | None = None
    # The HTTP check runs due now (the check runner probes them off the reconcile path).
    probes: tuple[gates.Probe, ...] = ()

    @property
    def switch(self) -> Action | None:
        """The write that moves prod traffic, when this plan switches."""
        return next((a for a in self.actions if a.reason == "Switched"), None)

    @property
    def switches(self) -> bool:
        return self.status_unswitched is not None


# ---------------------------------------------------------------- facts about live objects


def is_owned_by(obj: Obj, owner: Owner) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == owner.uid and r.get("controller") for r in refs)


def revision_label(obj: Obj | None) -> str | None:
    if obj is None:
        return None
    return (obj["metadata"].get("labels") or {}).get(names.LABEL_REVISION)


def annotation(obj: Obj | None, key: str) -> str | None:
    if obj is None:
        return None
    return (obj["metadata"].get("annotations") or {}).get(key)


def selector_string(app: str, color: Color) -> str:
    return ",".join(f"{k}={v}" for k, v in names.selector(app, color).items())


def current_replicas(dep: Obj | None) -> int:
    return int(((dep or {}).get("status") or {}).get("replicas", 0))


def spec_replicas(dep: Obj) -> int:
    return int(dep.get("spec", {}).get("replicas", 1))


def is_rolled_out(dep: Obj | None, replicas: int) -> bool:
    """Like ``kubectl rollout status``: the controller saw the latest spec, every pod is
    updated and available, and no pod of an older ReplicaSet is left."""
    if dep is None or spec_replicas(dep) != replicas:
        return False
    status = dep.get("status") or {}
    seen = status.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)
    counts = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    return seen and all(status.get(c, 0) == replicas for c in counts)


def is_rolled_out_by_replicasets(
    dep: Obj | None, replicasets: Sequence[Obj], revision: str, replicas: int
) -> bool:
    """The same verdict as :func:`is_rolled_out`, from the Deployment's ReplicaSets: the
    Deployment controller derives its status from theirs one step later, so this knows
    the rollout is done as soon as the pods' own controller does. The Deployment must still
    have seen the latest spec (its ReplicaSets then reflect it)."""
    if dep is None or spec_replicas(dep) != replicas:
        return False
    meta = dep["metadata"]
    if (dep.get("status") or {}).get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    owned = [rs for rs in replicasets if _owned_by(rs, str(meta.get("name")))]
    new = [rs for rs in owned if revision_label(rs) == revision]
    old = [rs for rs in owned if revision_label(rs) != revision]
    if len(new) != 1 or not _replicaset_settled(new[0]):
        return False
    status = new[0].get("status") or {}
    counts = ("replicas", "readyReplicas", "availableReplicas")
    up = (new[0].get("spec") or {}).get("replicas") == replicas
    gone = all(
        _replicaset_settled(rs) and (rs.get("status") or {}).get("replicas", 0) == 0 for rs in old
    )
    return up and gone and all(status.get(c, 0) == replicas for c in counts)


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
    if dep is None or spec_replicas(dep) != replicas:
        return False
    meta = dep["metadata"]
    if (dep.get("status") or {}).get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    name = str(meta.get("name"))
    owned = [rs for rs in replicasets if _owned_by(rs, name)]
    if not any(revision_label(rs) == revision for rs in owned):
        return False
    old = [rs for rs in owned if revision_label(rs) != revision]
    if not all(
        _replicaset_settled(rs) and (rs.get("status") or {}).get("replicas", 0) == 0 for rs in old
    ):
        return False
    prefixes = tuple(pod_name_prefixes(replicasets, name, revision))
    pods = [str((ep.get("targetRef") or {}).get("name", "")) for ep in endpoints]
    if any(not pod.startswith(prefixes) for pod in pods):
        return False
    return ready_endpoints_of(endpoints, set(prefixes)) >= replicas


def _owned_by(rs: Obj, deployment_name: str) -> bool:
    return any(
        ref.get("kind") == "Deployment" and ref.get("name") == deployment_name
        for ref in (rs.get("metadata") or {}).get("ownerReferences") or []
    )


def _replicaset_settled(rs: Obj) -> bool:
    """Its controller saw its latest spec (so its status counts are about that spec)."""
    observed = (rs.get("status") or {}).get("observedGeneration", 0)
    return bool(observed >= (rs.get("metadata") or {}).get("generation", 0))


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


POD_TEMPLATE_HASH = "pod-template-hash"


def pod_name_prefixes(replicasets: Sequence[Obj], deployment_name: str, revision: str) -> set[str]:
    """How the names of one revision's pods begin: ``<deployment>-<pod-template-hash>-``,
    from the ReplicaSets the Deployment made for that revision. Pods of an older revision
    of the same color begin differently, so they never count for the new one."""
    prefixes = set()
    for rs in replicasets:
        meta = rs.get("metadata") or {}
        labels = meta.get("labels") or {}
        owned = any(
            ref.get("kind") == "Deployment" and ref.get("name") == deployment_name
            for ref in meta.get("ownerReferences") or []
        )
        pod_hash = labels.get(POD_TEMPLATE_HASH)
        if owned and pod_hash and labels.get(names.LABEL_REVISION) == revision:
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


def selected_color(svc: Obj | None) -> Color | None:
    color = ((svc or {}).get("spec", {}).get("selector") or {}).get(names.LABEL_COLOR)
    return color if color in names.COLORS else None


def json_annotation(obj: Obj | None, key: str) -> Obj | None:
    """An annotation holding a JSON object; None when absent or mangled."""
    raw = annotation(obj, key)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


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


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class _Children:
    """The children this app owns, foreign ones left out."""

    deployments: Mapping[Color, Obj]
    services: Mapping[names.ServiceRole, Obj]
    ingresses: Mapping[names.ServiceRole, Obj]
    routes: Mapping[names.ServiceRole, Obj] = field(default_factory=dict)


def _conflicts(app: App, observed: Observed) -> list[tuple[Kind, str]]:
    found: list[tuple[Kind, str]] = []
    groups: list[tuple[Kind, Mapping[Any, Obj]]] = [
        ("Deployment", observed.deployments),
        ("Service", observed.services),
        ("Ingress", observed.ingresses),
        ("HTTPRoute", observed.routes),
    ]
    for kind, objs in groups:
        for obj in objs.values():
            if not is_owned_by(obj, app.owner):
                found.append((kind, obj["metadata"]["name"]))
    return found


def _ours(app: App, observed: Observed) -> _Children:
    def keep(objs: Mapping[Any, Obj]) -> dict[Any, Obj]:
        return {k: v for k, v in objs.items() if is_owned_by(v, app.owner)}

    return _Children(
        keep(observed.deployments),
        keep(observed.services),
        keep(observed.ingresses),
        keep(observed.routes),
    )


@dataclass(frozen=True)
class _Decision:
    """Which color serves prod, which (if any) holds a waiting preview, what each color runs."""

    prod_color: Color
    preview_color: Color | None
    deployments: dict[Color, Obj]
    switch_record: dict[str, str]
    # What the prod Service records as served once this plan is carried out (None: unknown).
    live_template: Obj | None
    status: Status
    requeue_after: float | None = None
    switched: bool = False
    status_unswitched: Status | None = None
    probes: tuple[gates.Probe, ...] = ()
    jobs: tuple[Obj, ...] = ()  # check Jobs to create when missing


def plan(app: App, observed: Observed, now: datetime) -> Plan:
    """The writes that move the app one step towards what its spec asks, and its status."""
    conflicts = _conflicts(app, observed)
    ours = _ours(app, observed)
    decision = _decide(app, ours, observed, now)
    wanted = _desired_children(app, decision)
    if not observed.gateway_api:
        wanted = [w for w in wanted if w["kind"] != "HTTPRoute"]  # nowhere to write them
    blocked = set(conflicts)
    switching = names.service_name(app.owner.name, "prod") if decision.switched else None
    actions = [a for a in _actions(wanted, ours, switching) if (a.kind, a.name) not in blocked]
    actions += _stale_ingresses(app, ours)
    actions += _stale_routes(app, ours)
    actions += _job_actions(app, observed, decision)
    verdict = routes.verdict(
        _wanted_routes(app, ours),
        wanted=app.spec.gateway is not None,
        gateway_api=observed.gateway_api,
        missing_parents=observed.missing_parents,
    )
    unswitched = decision.status_unswitched
    return Plan(
        tuple(actions),
        _with_routes(decision.status, verdict),
        decision.requeue_after,
        None if unswitched is None else _with_routes(unswitched, verdict),
        conflicts=tuple(f"{kind} {name}" for kind, name in conflicts),
        switch_warning=_short_delay_warning(app) if decision.switched else None,
        probes=decision.probes,
    )


def _short_delay_warning(app: App) -> str | None:
    delay = app.spec.scaleDownDelaySeconds
    if delay >= SAFE_SCALE_DOWN_DELAY:
        return None
    return (
        f"scaleDownDelaySeconds is {delay}: the previous color may be scaled down before "
        "kube-proxy on every node follows the switch (about a second, more on large "
        f"clusters), and requests to it would fail; {SAFE_SCALE_DOWN_DELAY} or more is safe"
    )


@dataclass(frozen=True)
class _Live:
    """What serves prod: its color, its revision, and the user's template of that revision
    (both None before the first rollout, when nothing has served yet)."""

    color: Color
    revision: str | None = None
    template: Obj | None = None


def find_live(app: App, ours: _Children) -> _Live:
    """Which color holds the promoted revision. The prod Service records it in the switch
    write itself; should that record be gone (the Service deleted or edited by hand), the
    status the operator wrote; with neither, the Deployments themselves."""
    prod = ours.services.get("prod")
    template = json_annotation(prod, names.ANNOTATION_LIVE_TEMPLATE)
    if template is not None:
        return _holder(ours, revision_of(template), template, selected_color(prod))
    recorded = app.recorded
    if recorded is not None and recorded.activeRevision:
        live = _holder(ours, recorded.activeRevision, None, recorded.activeColor)
        if live.template is not None:
            return live
    return _live_from_deployments(app, ours, prod)


def _holder(ours: _Children, revision: str, template: Obj | None, hint: Color | None) -> _Live:
    """The color running ``revision`` (``hint`` when both do); when neither does (its
    Deployment was deleted), ``hint``: the live color is rebuilt there."""
    holders = [c for c in names.COLORS if revision_label(ours.deployments.get(c)) == revision]
    color = hint if hint in holders or not holders else holders[0]
    if template is None and color in holders:
        template = template_of(ours.deployments[color])
    return _Live(color or "blue", revision, template)


def _live_from_deployments(app: App, ours: _Children, prod: Obj | None) -> _Live:
    """No record at all: prod goes to the color with the most available pods, so it is
    never repaired onto fewer. On a tie, without ``promote``, the color not running the
    spec's revision (a preview must not reach prod unpromoted), then the one prod selects."""
    deployments = ours.deployments
    if not deployments:
        return _Live(selected_color(prod) or "blue")
    want = revision_of(app.spec.template)

    def preference(color: Color) -> tuple[int, bool, bool]:
        dep = deployments[color]
        unpromoted = revision_label(dep) == want and not app.spec.promote
        return (available_replicas(dep), not unpromoted, color == selected_color(prod))

    color = max(deployments, key=preference)
    template = template_of(deployments[color])
    return _Live(color, revision_label(deployments[color]) or revision_of(template), template)


def _decide(app: App, ours: _Children, observed: Observed, now: datetime) -> _Decision:
    want = revision_of(app.spec.template)
    live = find_live(app, ours)
    # The live color is rebuilt from what prod served, so a preview never reaches prod
    # without a promotion; only the very first rollout starts from the spec.
    template = live.template if live.template is not None else app.spec.template
    active_rev = live.revision or want
    record = _switch_record(app, ours.services.get("prod"))
    if active_rev == want:
        decision = _steady(app, ours, observed, live.color, want, template, record, now)
    else:
        decision = _new_revision(
            app, ours, observed, live.color, active_rev, template, want, record, now
        )
    if decision.switched or live.template is None:
        return decision
    return replace(decision, live_template=live.template)


def _switch_record(app: App, prod: Obj | None) -> dict[str, str]:
    """When prod last switched and from which revision (and a revision switched back, while
    it matters): on the prod Service, or, should it have lost them, in the status."""
    keys = (names.ANNOTATION_SWITCHED_AT, names.ANNOTATION_PREVIOUS_REVISION)
    record = {k: v for k in keys if (v := annotation(prod, k))}
    recorded = app.recorded
    if names.ANNOTATION_SWITCHED_AT not in record and recorded is not None:
        fallback = {
            names.ANNOTATION_SWITCHED_AT: recorded.lastSwitchTime,
            names.ANNOTATION_PREVIOUS_REVISION: recorded.previousRevision,
        }
        record.update({k: v for k, v in fallback.items() if v})
    mark = _rolled_back_mark(app, prod, record.get(names.ANNOTATION_PREVIOUS_REVISION))
    if mark is not None:
        record[names.ANNOTATION_ROLLED_BACK] = gates.format_mark(*mark)
    return record


def _rolled_back_mark(app: App, prod: Obj | None, previous: str | None) -> tuple[str, int] | None:
    """The revision switched back after a failed check, kept while it matters: while the
    template still asks for it (it is not promoted again), and while that switch back is
    the last switch (prod is not verified onto it again). On the prod Service, or, should
    it be lost, the status."""
    mark = gates.parse_mark(annotation(prod, names.ANNOTATION_ROLLED_BACK))
    recorded = app.recorded
    if mark is None and recorded is not None and recorded.rolledBackRevision:
        mark = (recorded.rolledBackRevision, recorded.rolledBackRetry or 0)
    if mark is None or (mark[0] != revision_of(app.spec.template) and mark[0] != previous):
        return None
    return mark


def _blocking_mark(app: App, record: dict[str, str]) -> tuple[str, int] | None:
    """The mark when it stops the spec's revision from being promoted: the same revision
    under the same ``spec.retryChecks`` (a new template or a retry ends it)."""
    mark = _mark_of(record)
    return mark if mark == (revision_of(app.spec.template), app.spec.retryChecks) else None


def _mark_of(record: dict[str, str]) -> tuple[str, int] | None:
    return gates.parse_mark(record.get(names.ANNOTATION_ROLLED_BACK))


def _rollback_window_end(app: App, idle_dep: Obj | None, record: dict[str, str]) -> datetime | None:
    """When the previous color may be scaled down; None when the idle color is not it."""
    switched_at = parse_time(record.get(names.ANNOTATION_SWITCHED_AT))
    previous = record.get(names.ANNOTATION_PREVIOUS_REVISION)
    if idle_dep is None or switched_at is None or revision_label(idle_dep) != previous:
        return None
    try:
        return switched_at + timedelta(seconds=app.spec.scaleDownDelaySeconds)
    except OverflowError:  # a record near the end of time: the window never ends
        return datetime.max.replace(tzinfo=switched_at.tzinfo)


def _steady(
    app: App,
    ours: _Children,
    observed: Observed,
    active: Color,
    rev: str,
    live: Obj,
    record: dict[str, str],
    now: datetime,
) -> _Decision:
    """No new revision: the active color at ``replicas``; the other one drained."""
    spec = app.spec
    idle = names.other_color(active)
    active_dep = ours.deployments.get(active)
    idle_dep = ours.deployments.get(idle)
    deployments = {active: desired.deployment(app.owner, active, live, rev, spec.replicas)}
    window_end = _rollback_window_end(app, idle_dep, record)
    keeps_previous = window_end is not None and now < window_end
    # While the previous color still runs, the HTTP checks verify prod; a failure switches
    # back to it. (Never onto a revision that was itself switched back.)
    verifying = (
        keeps_previous
        and bool(gates.http_checks(spec))
        and "prod" in ours.services
        and _mark_of(record) is None
    )
    verify = _gate(app, observed, "prod", rev, started=verifying)
    if verifying and idle_dep is not None:
        failure = _verification_failure(verify, active_dep)
        if failure is not None:
            return _switch_back(app, active, rev, live, idle_dep, verify, failure, now)
    requeue = None
    idle_name = names.deployment_name(app.owner.name, idle)
    # The delay alone is a guess at how long kube-proxy takes; the prod Service's
    # EndpointSlices still listing the old pods is a fact: they keep their pods until then.
    still_in_prod = lists_pods_of(observed.prod_endpoints, idle_name)
    if idle_dep is not None and spec_replicas(idle_dep) > 0:
        if keeps_previous and window_end is not None:
            requeue = (window_end - now).total_seconds()
        elif still_in_prod:
            requeue = RECHECK_PROD_ENDPOINTS
        else:
            deployments[idle] = _scaled(app, idle, idle_dep, 0)
    previous = record.get(names.ANNOTATION_PREVIOUS_REVISION)
    previous_rev = (
        previous if idle_dep is not None and revision_label(idle_dep) == previous else None
    )
    status = _steady_status(app, active, active_dep, rev, previous_rev)
    status = replace(
        status,
        switched_at=record.get(names.ANNOTATION_SWITCHED_AT),
        checks=_steady_checks(app, observed, rev, verify, verifying),
    )
    if keeps_previous and window_end is not None:
        status = replace(
            status,
            message=f"{status.message}; {idle} keeps revision {previous} until "
            f"{format_time(window_end)} for an instant rollback",
        )
    elif requeue == RECHECK_PROD_ENDPOINTS:
        status = replace(
            status,
            message=f"{status.message}; {idle} keeps its pods until the prod Service's "
            "EndpointSlices no longer list them",
        )
    probes: tuple[gates.Probe, ...] = ()
    if verifying:
        status = replace(status, message=f"{status.message}; verifying: {verify.summary()}")
        prod_name = names.service_name(app.owner.name, "prod")
        probes = gates.probes(spec, verify, app.owner.namespace, prod_name, ours.services["prod"])
    return _Decision(active, None, deployments, record, None, status, requeue, probes=probes)


def _jobs_by_run(app: App, observed: Observed) -> dict[gates.RunKey, Obj]:
    """The app's check Jobs, by the run they belong to (from their labels)."""
    out = {}
    for job in observed.jobs:
        labels = job.get("metadata", {}).get("labels") or {}
        check, rev = labels.get(names.LABEL_CHECK), labels.get(names.LABEL_REVISION)
        retry = labels.get(names.LABEL_CHECK_RETRY, "")
        if is_owned_by(job, app.owner) and check and rev and retry.isascii() and retry.isdigit():
            out[gates.RunKey(check, "preview", rev, int(retry))] = job
    return out


def _gate(
    app: App, observed: Observed, stage: CheckStage, revision: str, started: bool
) -> gates.Gate:
    return gates.evaluate(
        app.spec,
        stage,
        revision,
        started=started,
        tallies=observed.check_tallies,
        jobs=_jobs_by_run(app, observed),
        recorded=app.recorded,
    )


def _steady_checks(
    app: App, observed: Observed, rev: str, verify: gates.Gate, verifying: bool
) -> tuple[CheckStatus, ...]:
    """What the status shows of the live revision's checks: how it passed them on the
    preview, then its verification against prod (running, or passed once the window closed
    without a failure)."""
    before = _gate(app, observed, "preview", rev, started=False)
    shown = [c for c in before.checks if c.state in gates.FINAL]
    recorded = app.recorded.checks if app.recorded is not None else []
    if verifying:
        shown += verify.checks
    elif any(c.stage == "prod" and c.revision == rev for c in recorded):
        shown += gates.verified(verify).checks
    return tuple(shown)


def _verification_failure(gate: gates.Gate, active_dep: Obj | None) -> str | None:
    """Why the new live revision fails its verification: a failed check, or its Deployment
    no longer available (pods crashing, say)."""
    failed = gate.failed
    if failed is not None:
        return f"check {failed.name} failed against prod: {failed.message}"
    for cond in ((active_dep or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Available" and cond.get("status") == "False":
            return f"its Deployment is not available: {cond.get('message') or cond.get('reason')}"
    return None


def _switch_back(
    app: App,
    active: Color,
    rev: str,
    live: Obj,
    idle_dep: Obj,
    verify: gates.Gate,
    failure: str,
    now: datetime,
) -> _Decision:
    """ONE write of the prod Service moves it back to the previous color, which still runs;
    the failed revision stays on its color, behind the preview Service, and is not promoted
    again until the template or ``spec.retryChecks`` changes (the mark on the prod Service,
    written in the same write, and in the status)."""
    spec, name = app.spec, app.owner.name
    idle = names.other_color(active)
    back_template = template_of(idle_dep)
    back_rev = revision_label(idle_dep) or revision_of(back_template)
    mark = (rev, spec.retryChecks)
    at = format_time(now)
    record = {
        names.ANNOTATION_SWITCHED_AT: at,
        names.ANNOTATION_PREVIOUS_REVISION: rev,
        names.ANNOTATION_ROLLED_BACK: gates.format_mark(*mark),
    }
    deployments = {
        active: desired.deployment(app.owner, active, live, rev, spec.replicas),
        idle: _scaled(app, idle, idle_dep, spec.replicas),
    }
    status = Status(
        "Degraded",
        "RolledBack",
        f"revision {rev} failed after the switch ({failure}); switched prod back to {idle} "
        f"(revision {back_rev}); revision {rev} is not promoted again until the template or "
        "spec.retryChecks changes",
        active_color=idle,
        active_revision=back_rev,
        available=available_replicas(idle_dep) >= spec.replicas,
        preview_color=active,
        preview_revision=rev,
        switched_at=at,
        replicas=current_replicas(idle_dep),
        selector=selector_string(name, idle),
        checks=verify.checks,
        rolled_back=mark,
    )
    unswitched = replace(
        status,
        reason="CheckFailed",
        message=f"revision {rev} failed after the switch ({failure}); switching prod back "
        f"to {idle}",
        active_color=active,
        active_revision=rev,
        preview_color=None,
        preview_revision=None,
        switched_at=None,
        selector=selector_string(name, active),
        rolled_back=None,
    )
    return _Decision(
        idle,
        active,
        deployments,
        record,
        back_template,
        status,
        switched=True,
        status_unswitched=unswitched,
    )


def _scaled(app: App, color: Color, dep: Obj, replicas: int) -> Obj:
    template = template_of(dep)
    rev = revision_label(dep) or revision_of(template)
    return desired.deployment(app.owner, color, template, rev, replicas)


def _steady_status(
    app: App, active: Color, dep: Obj | None, rev: str, previous_rev: str | None
) -> Status:
    replicas = app.spec.replicas
    base = Status(
        phase="Healthy",
        reason="Converged",
        message=f"{active} serves revision {rev}",
        active_color=active,
        active_revision=rev,
        available=dep is not None and available_replicas(dep) >= replicas,
        previous_revision=previous_rev,
        replicas=current_replicas(dep),
        selector=selector_string(app.owner.name, active),
    )
    failure = has_failed_progress(dep)
    if failure:
        return replace(
            base, phase="Degraded", reason="RolloutFailed", message=f"{active}: {failure}"
        )
    if not is_rolled_out(dep, replicas):
        have = available_replicas(dep)
        return replace(
            base,
            phase="Progressing",
            reason="RollingOut",
            message=f"waiting for {active} (revision {rev}): {have}/{replicas} pods available",
        )
    return base


def _new_revision(
    app: App,
    ours: _Children,
    observed: Observed,
    active: Color,
    active_rev: str,
    live: Obj,
    want: str,
    record: dict[str, str],
    now: datetime,
) -> _Decision:
    """A new revision: onto the idle color, behind the preview Service; switch when allowed."""
    spec = app.spec
    idle = names.other_color(active)
    active_dep = ours.deployments.get(active)
    idle_dep = ours.deployments.get(idle)
    target = spec.replicas if spec.promote else spec.preview_size()
    preview = desired.deployment(app.owner, idle, spec.template, want, target)
    deployments = {
        active: desired.deployment(app.owner, active, live, active_rev, spec.replicas),
        idle: preview,
    }
    idle_name = names.deployment_name(app.owner.name, idle)
    rolled_out = (
        idle_dep is not None
        and revision_label(idle_dep) == want
        and not needs_write(preview, idle_dep)
        and (
            is_rolled_out(idle_dep, target)
            or is_rolled_out_by_replicasets(idle_dep, observed.replicasets, want, target)
            or is_rolled_out_by_endpoints(
                idle_dep, observed.replicasets, observed.preview_endpoints, want, target
            )
        )
    )
    new_pods = pod_name_prefixes(observed.replicasets, idle_name, want)
    ready_eps = ready_endpoints_of(observed.preview_endpoints, new_pods)
    # The checks start once the preview serves the new revision with every pod ready; a
    # revision switched back after a failed check waits for a new template or a retry.
    mark = _blocking_mark(app, record)
    ready = rolled_out and ready_eps >= target
    gate = _gate(app, observed, "preview", want, started=ready and mark is None)
    waiting = Status(
        phase="Progressing",
        reason="RollingOut",
        message="",
        active_color=active,
        active_revision=active_rev,
        available=available_replicas(active_dep) >= spec.replicas,
        preview_color=idle,
        preview_revision=want,
        switched_at=record.get(names.ANNOTATION_SWITCHED_AT),
        replicas=current_replicas(active_dep),
        selector=selector_string(app.owner.name, active),
        checks=gate.checks,
        rolled_back=mark,
    )
    # A missing prod Service is first recreated where prod was; the switch is a later write
    # of its own, so status can tell which of the two happened.
    prod_exists = "prod" in ours.services

    if spec.promote and ready and gate.state == "Passed" and mark is None and prod_exists:
        record = {
            names.ANNOTATION_SWITCHED_AT: format_time(now),
            names.ANNOTATION_PREVIOUS_REVISION: active_rev,
        }
        status = Status(
            "Healthy",
            "Switched",
            f"switched prod from {active} (revision {active_rev}) to {idle} (revision {want}); "
            f"{active} keeps its pods for {spec.scaleDownDelaySeconds}s for an instant rollback",
            active_color=idle,
            active_revision=want,
            available=True,
            previous_revision=active_rev,
            switched_at=record[names.ANNOTATION_SWITCHED_AT],
            replicas=current_replicas(idle_dep),
            selector=selector_string(app.owner.name, idle),
            checks=gate.checks,
        )
        unswitched = replace(
            waiting,
            reason="Switching",
            message=f"revision {want} is ready on {idle}; switching prod to it",
        )
        return _Decision(
            idle,
            None,
            deployments,
            record,
            spec.template,
            status,
            float(spec.scaleDownDelaySeconds),
            switched=True,
            status_unswitched=unswitched,
        )

    failure = has_failed_progress(idle_dep)
    if failure and revision_label(idle_dep) == want:
        status = replace(
            waiting, phase="Degraded", reason="RolloutFailed", message=f"preview {idle}: {failure}"
        )
    elif mark is not None:
        status = _rolled_back_status(app, waiting, want)
    elif gate.failed is not None:
        failed = gate.failed
        status = replace(
            waiting,
            phase="Degraded",
            reason="CheckFailed",
            message=f"check {failed.name} failed on the preview of revision {want}: "
            f"{failed.message}; prod stays on {active} (revision {active_rev}); change the "
            "template or spec.retryChecks to run the checks again",
        )
    elif not rolled_out:
        have = available_replicas(idle_dep) if revision_label(idle_dep) == want else 0
        status = replace(
            waiting,
            message=f"rolling out revision {want} on {idle}: {have}/{target} pods available",
        )
    elif gate.state != "Passed" and not ready:
        status = replace(
            waiting,
            reason="WaitingForEndpoints",
            message=f"revision {want} is rolled out on {idle}; its checks start once the "
            f"preview Service lists its pods ready: {ready_eps}/{target}",
        )
    elif gate.state != "Passed":
        status = replace(
            waiting,
            reason="Checking",
            message=f"revision {want} is ready on {idle}; checking it: {gate.summary()}",
        )
    elif not spec.promote:
        preview_service = names.service_name(app.owner.name, "preview")
        passed = "; its checks passed" if spec.checks else ""
        status = replace(
            waiting,
            phase="Paused",
            reason="WaitingForPromotion",
            message=f"revision {want} is ready on {idle} behind Service {preview_service}"
            f"{passed}; set spec.promote to true to switch prod to it",
        )
    else:
        status = replace(
            waiting,
            reason="WaitingForEndpoints",
            message=f"revision {want} is rolled out on {idle}; waiting for the preview Service "
            f"to list its pods ready: {ready_eps}/{target}",
        )
    started = ready and mark is None
    return _Decision(
        active,
        idle,
        deployments,
        record,
        None,
        status,
        probes=_preview_probes(app, ours, gate) if started else (),
        jobs=_check_jobs(app, gate) if started else (),
    )


def _rolled_back_status(app: App, waiting: Status, want: str) -> Status:
    """Degraded while the spec still asks for a revision that was switched back: the
    message of the switch back (what failed, and how) stays, so does the failed check."""
    recorded = app.recorded or BlueGreenAppStatus()
    after_switch = tuple(c for c in recorded.checks if c.stage == "prod" and c.revision == want)
    message = (
        f"revision {want} failed after its switch and prod was switched back to "
        f"{waiting.active_color} (revision {waiting.active_revision}); it is not promoted "
        "again until the template or spec.retryChecks changes"
    )
    if recorded.rolledBackRevision == want and recorded.message:
        message = recorded.message
    return replace(
        waiting,
        phase="Degraded",
        reason="RolledBack",
        message=message,
        checks=waiting.checks + after_switch,
    )


def _preview_probes(app: App, ours: _Children, gate: gates.Gate) -> tuple[gates.Probe, ...]:
    preview = names.service_name(app.owner.name, "preview")
    live = ours.services.get("preview")
    return gates.probes(app.spec, gate, app.owner.namespace, preview, live)


def _check_jobs(app: App, gate: gates.Gate) -> tuple[Obj, ...]:
    """The Jobs of the Job checks still running on the preview."""
    by_name = {c.name: c for c in gates.job_checks(app.spec)}
    port = app.spec.service.ports[0].port
    out = []
    for check in gate.unfinished():
        spec = by_name.get(check.name)
        if spec is None or spec.job is None:
            continue
        name = gates.job_name(app.owner.name, check.name, check.revision, check.retry)
        run = (name, check.revision, check.retry)
        out.append(desired.check_job(app.owner, check.name, spec.job, run, port))
    return tuple(out)


def _job_actions(app: App, observed: Observed, decision: _Decision) -> list[Action]:
    """Create the check Jobs that are due and missing; delete the app's check Jobs of other
    runs (an older revision, an earlier retry): a run's Job is never updated."""
    release = decision.status.preview_revision or decision.status.active_revision
    existing = {j["metadata"]["name"]: j for j in observed.jobs}
    actions = []
    for job in decision.jobs:
        name = job["metadata"]["name"]
        if name not in existing:
            why = f"create Job {name} for check {job['metadata']['labels'][names.LABEL_CHECK]}"
            actions.append(Action("create", "Job", name, desired.stamped(job), "Created", why))
    for name, job in existing.items():
        labels = job["metadata"].get("labels") or {}
        current = (labels.get(names.LABEL_REVISION), labels.get(names.LABEL_CHECK_RETRY)) == (
            release,
            str(app.spec.retryChecks),
        )
        if is_owned_by(job, app.owner) and not current:
            why = f"delete Job {name}: its check run is over (revision {release} is released)"
            actions.append(Action("delete", "Job", name, None, "Deleted", why))
    return actions


def _desired_children(app: App, decision: _Decision) -> list[Obj]:
    spec = app.spec
    children: list[Obj] = [
        decision.deployments[c] for c in names.COLORS if c in decision.deployments
    ]
    record = desired.prod_annotations(decision.switch_record, decision.live_template)
    children.append(desired.service(app.owner, "prod", spec, decision.prod_color, record))
    children.append(
        desired.service(app.owner, "preview", spec, decision.preview_color or decision.prod_color)
    )
    if spec.ingress is not None:
        children += [desired.ingress(app.owner, role, spec) for role in names.SERVICE_ROLES]
    children += desired.http_routes(app.owner, spec)
    return children


def _actions(wanted: list[Obj], ours: _Children, switching: str | None) -> list[Action]:
    """Writes for the children that differ from what is wanted. ``switching`` names the prod
    Service when this plan moves prod traffic (its write is the switch)."""
    live_by_name = {
        (obj["kind"], obj["metadata"]["name"]): obj
        for group in (ours.deployments, ours.services, ours.ingresses, ours.routes)
        for obj in group.values()
    }
    actions = []
    for want in wanted:
        key = (want["kind"], want["metadata"]["name"])
        live = live_by_name.get(key)
        if not needs_write(want, live):
            continue  # the common case: nothing to copy or stamp
        body = desired.stamped(want)
        reason, why = _describe(want, live, switching)
        if live is None:
            actions.append(Action("create", want["kind"], key[1], body, reason, why))
        else:
            update = desired.for_update(body, live)
            actions.append(Action("update", want["kind"], key[1], update, reason, why))
    return actions


def _describe(want: Obj, live: Obj | None, switching: str | None) -> tuple[str, str]:
    """The Event reason and the sentence for one write."""
    kind, name = want["kind"], want["metadata"]["name"]
    if live is None:
        return "Created", f"create {kind} {name}"
    if kind == "Service":
        color = want["spec"]["selector"][names.LABEL_COLOR]
        if name == switching:
            return "Switched", f"switch Service {name} from {selected_color(live)} to {color}"
        return "Updated", f"update Service {name} (selects {color})"
    if kind == "Deployment":
        rev, replicas = revision_label(want), want["spec"]["replicas"]
        if revision_label(live) != rev:
            return "Deploying", f"deploy revision {rev} to {name} at {replicas} replicas"
        return "Scaled", f"scale {name} to {replicas} replicas"
    return "Updated", f"update {kind} {name}"


def _stale_ingresses(app: App, ours: _Children) -> list[Action]:
    if app.spec.ingress is not None:
        return []
    return [
        Action(
            "delete",
            "Ingress",
            obj["metadata"]["name"],
            None,
            "Deleted",
            f"delete Ingress {obj['metadata']['name']}: spec.ingress was removed",
        )
        for obj in ours.ingresses.values()
    ]


def _wanted_routes(app: App, ours: _Children) -> list[Obj]:
    """The live routes the spec still asks for (a route about to go has no say)."""
    return [obj for role, obj in ours.routes.items() if role in desired.route_roles(app.spec)]


def _stale_routes(app: App, ours: _Children) -> list[Action]:
    """Delete the routes the spec no longer asks for (``spec.gateway`` removed, or the
    preview hostnames emptied)."""
    wanted = desired.route_roles(app.spec)
    return [
        Action(
            "delete",
            "HTTPRoute",
            obj["metadata"]["name"],
            None,
            "Deleted",
            f"delete HTTPRoute {obj['metadata']['name']}: "
            + ("spec.gateway was removed" if app.spec.gateway is None else "no previewHostnames"),
        )
        for role, obj in ours.routes.items()
        if role not in wanted
    ]


def _with_routes(summary: Status, verdict: routes.Verdict) -> Status:
    """The status, corrected by what the gateways say of the routes: a refused route is
    Degraded with the gateway's answer; one not answered yet keeps a Healthy app
    Progressing (its hostnames may not route yet)."""
    if verdict.missing_api:
        return replace(
            summary, phase="Degraded", reason="GatewayAPIMissing", message=routes.API_MISSING
        )
    if verdict.refused:
        return replace(
            summary, phase="Degraded", reason="RouteRefused", message="; ".join(verdict.refused)
        )
    if verdict.pending and summary.phase == "Healthy":
        return replace(
            summary,
            phase="Progressing",
            reason="RoutePending",
            message="waiting for the gateway to accept " + "; ".join(verdict.pending),
        )
    return summary
