"""The steady state: the spec asks for the revision prod serves. The live color runs at
``replicas``; the other color keeps its pods through the rollback window (verified against
prod meanwhile, when there are HTTP checks) and is drained once prod's endpoints no longer
list them."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bluegreen.api.models import Color
from bluegreen.core import checks, desired, gates, names, reasons
from bluegreen.core.clock import format_time, parse_time
from bluegreen.core.context import Decision, Pass
from bluegreen.core.facts import (
    available_replicas,
    current_replicas,
    has_failed_progress,
    lists_pods_of,
    revision_label,
    selector_string,
    spec_replicas,
)
from bluegreen.core.live import mark_of
from bluegreen.core.objects import Obj
from bluegreen.core.plans import Summary
from bluegreen.core.rollout import is_rolled_out
from bluegreen.core.switch_back import switch_back
from bluegreen.core.writes import rescaled

# A safety net only: the EndpointSlice event that drops the old pods wakes the app first.
# The first look again comes this soon; then half the time waited so far, up to the cap:
# where the EndpointSlice controller lags by minutes (5,000 apps released at once on a
# loaded control plane: 315 s at the median), a fixed 5 s made ~60 passes per app, each
# for nothing, and the apps still woke when the event came (docs/benchmarks.md).
RECHECK_PROD_ENDPOINTS = 5.0
RECHECK_PROD_ENDPOINTS_MAX = 60.0


def steady(ctx: Pass) -> Decision:
    """No new revision: the active color at ``replicas``; the other one drained."""
    window_end = rollback_window_end(ctx)
    keeps_previous = window_end is not None and ctx.now < window_end
    # While the previous color still runs, the HTTP and Prometheus checks verify prod; a
    # failure switches back to it. (Never onto a revision that was itself switched back.)
    verifying = (
        keeps_previous
        and bool(gates.probed_checks(ctx.app.spec))
        and "prod" in ctx.ours.services
        and mark_of(ctx.record) is None
    )
    verify = checks.gate(ctx, "prod", ctx.wanted, started=verifying)
    if verifying and ctx.idle_dep is not None:
        failure = checks.verification_failure(verify, ctx.active_dep)
        if failure is not None:
            return switch_back(ctx, ctx.idle_dep, verify, failure)
    kept_until = window_end if keeps_previous else None
    deployments, requeue, held = _drain(ctx, kept_until, window_end)
    status = _summary(ctx, verify, verifying, kept_until, held)
    probes = checks.probes(ctx, "prod", verify) if verifying else ()
    return Decision(ctx.active, None, deployments, ctx.record, None, status, requeue, probes=probes)


def _drain(
    ctx: Pass, kept_until: datetime | None, window_end: datetime | None
) -> tuple[dict[Color, Obj], float | None, bool]:
    """The live color at ``replicas``; the idle one scaled to 0 unless it still serves a
    rollback window or prod's endpoints (then: when to look again, and whether it is held
    by the endpoints)."""
    app, active, idle, idle_dep = ctx.app, ctx.active, ctx.idle, ctx.idle_dep
    live = desired.deployment(app.owner, active, ctx.live_template, ctx.wanted, app.spec.replicas)
    deployments = {active: live}
    if idle_dep is None or spec_replicas(idle_dep) <= 0:
        return deployments, None, False
    if kept_until is not None:
        return deployments, (kept_until - ctx.now).total_seconds(), False
    # The delay alone is a guess at how long kube-proxy takes; the prod Service's
    # EndpointSlices still listing the old pods is a fact: they keep their pods until then.
    idle_name = names.deployment_name(app.owner.name, idle)
    if lists_pods_of(ctx.observed.prod_endpoints, idle_name):
        return deployments, recheck_prod_endpoints(ctx.now, window_end), True
    deployments[idle] = rescaled(app.owner, idle, idle_dep, 0)
    return deployments, None, False


def recheck_prod_endpoints(now: datetime, window_end: datetime | None) -> float:
    """When to look again at prod's endpoints that still list the old pods: soon at first,
    then less often the longer they have lagged (their change wakes the app anyway)."""
    if window_end is None or window_end > now:
        return RECHECK_PROD_ENDPOINTS
    waited = (now - window_end).total_seconds()
    return min(RECHECK_PROD_ENDPOINTS_MAX, max(RECHECK_PROD_ENDPOINTS, waited / 2))


def _summary(
    ctx: Pass,
    verify: gates.Gate,
    verifying: bool,
    kept_until: datetime | None,
    held_by_endpoints: bool,
) -> Summary:
    previous = ctx.record.get(names.ANNOTATION_PREVIOUS_REVISION)
    idle_dep = ctx.idle_dep
    previous_rev = (
        previous if idle_dep is not None and revision_label(idle_dep) == previous else None
    )
    status = replace(
        steady_status(ctx, previous_rev),
        switched_at=ctx.record.get(names.ANNOTATION_SWITCHED_AT),
        checks=checks.steady_checks(ctx, verify, verifying),
    )
    if kept_until is not None:
        status = replace(
            status,
            message=f"{status.message}; {ctx.idle} keeps revision {previous} until "
            f"{format_time(kept_until)} for an instant rollback",
        )
    elif held_by_endpoints:
        status = replace(
            status,
            message=f"{status.message}; {ctx.idle} keeps its pods until the prod Service's "
            "EndpointSlices no longer list them",
        )
    if verifying:
        status = replace(status, message=f"{status.message}; verifying: {verify.summary()}")
    return status


def steady_status(ctx: Pass, previous_rev: str | None) -> Summary:
    """Healthy when the live color is rolled out, else rolling out or stuck."""
    active, dep, rev = ctx.active, ctx.active_dep, ctx.wanted
    replicas = ctx.app.spec.replicas
    base = Summary(
        phase="Healthy",
        reason=reasons.CONVERGED,
        message=f"{active} serves revision {rev}",
        active_color=active,
        active_revision=rev,
        available=dep is not None and available_replicas(dep) >= replicas,
        previous_revision=previous_rev,
        replicas=current_replicas(dep),
        selector=selector_string(ctx.app.owner.name, active),
    )
    failure = has_failed_progress(dep)
    if failure:
        return replace(
            base, phase="Degraded", reason=reasons.ROLLOUT_FAILED, message=f"{active}: {failure}"
        )
    if not is_rolled_out(dep, replicas):
        have = available_replicas(dep)
        return replace(
            base,
            phase="Progressing",
            reason=reasons.ROLLING_OUT,
            message=f"waiting for {active} (revision {rev}): {have}/{replicas} pods available",
        )
    return base


def rollback_window_end(ctx: Pass) -> datetime | None:
    """When the previous color may be scaled down; None when the idle color is not it."""
    switched_at = parse_time(ctx.record.get(names.ANNOTATION_SWITCHED_AT))
    previous = ctx.record.get(names.ANNOTATION_PREVIOUS_REVISION)
    if ctx.idle_dep is None or switched_at is None or revision_label(ctx.idle_dep) != previous:
        return None
    try:
        return switched_at + timedelta(seconds=ctx.app.spec.scaleDownDelaySeconds)
    except OverflowError:  # a record near the end of time: the window never ends
        return datetime.max.replace(tzinfo=switched_at.tzinfo)
