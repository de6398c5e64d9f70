"""The pure core: from a BlueGreenApp and what is live, the next writes and the status.

No Kopf and no client here. ``plan()`` takes plain data and returns plain data, so every
case of the lifecycle is a table row in the unit tests. It reads as a short script, in the
manner of Argo Rollouts' ``rolloutBlueGreen``:

1. Read the pass (:mod:`~bluegreen.core.live`): the children that are ours, the color
   holding the promoted revision, the record of the last switch.
2. Decide: when the wanted revision is the live one, the steady state
   (:mod:`~bluegreen.core.steady`: keep it at ``replicas``, drain the other color once its
   rollback window has passed, or switch back should its verification fail); otherwise
   the release of the new revision (:mod:`~bluegreen.core.release`: onto the idle color,
   behind the preview Service, ONE switch of the prod Service once it is ready).
3. Turn the children the decision wants into writes (:mod:`~bluegreen.core.writes`),
   leaving alone what belongs to someone else; what the gateways say of the routes
   corrects the status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from bluegreen.core import names
from bluegreen.core.context import Decision, Pass
from bluegreen.core.live import conflicts, read_pass
from bluegreen.core.plans import Action, App, Observed, Plan, Summary, Switch
from bluegreen.core.release import release
from bluegreen.core.steady import RECHECK_PROD_ENDPOINTS, RECHECK_PROD_ENDPOINTS_MAX, steady
from bluegreen.core.writes import (
    child_writes,
    job_writes,
    routes_verdict,
    stale_ingresses,
    stale_routes,
    wanted_children,
    with_routes,
)

__all__ = [
    "RECHECK_PROD_ENDPOINTS",
    "RECHECK_PROD_ENDPOINTS_MAX",
    "Action",
    "App",
    "Observed",
    "Plan",
    "Summary",
    "Switch",
    "plan",
]

# Below this, the previous color may be gone before every node's kube-proxy follows the
# switch: measured on a real node, kube-proxy applied it up to ~1.1 s after the selector
# write, and with a delay of 0 requests failed in most runs (docs/benchmarks.md). Not
# refused (a test cluster, an app without Service traffic may want it): warned about.
SAFE_SCALE_DOWN_DELAY = 5


def plan(app: App, observed: Observed, now: datetime) -> Plan:
    """The writes that move the app one step towards what its spec asks, and its status."""
    ctx = read_pass(app, observed, now)
    decision = decide(ctx)
    actions = writes(ctx, decision)
    verdict = routes_verdict(ctx)
    unswitched = decision.status_unswitched
    decision = replace(
        decision,
        status=with_routes(decision.status, verdict),
        status_unswitched=None if unswitched is None else with_routes(unswitched, verdict),
    )
    return Plan(
        tuple(actions),
        decision.status,
        decision.requeue_after,
        the_switch(app, decision, actions),
        conflicts=tuple(f"{kind} {name}" for kind, name in conflicts(app, observed)),
        probes=decision.probes,
    )


def decide(ctx: Pass) -> Decision:
    """Steady or releasing; what prod serves is recorded unless this plan switches."""
    decision = steady(ctx) if ctx.active_revision == ctx.wanted else release(ctx)
    if decision.switches or ctx.live.template is None:
        return decision
    return replace(decision, live_template=ctx.live.template)


def writes(ctx: Pass, decision: Decision) -> list[Action]:
    """The writes of the decision, none on a child that belongs to someone else."""
    app = ctx.app
    blocked = set(conflicts(app, ctx.observed))
    switching = names.service_name(app.owner.name, "prod") if decision.switches else None
    wanted = wanted_children(app, ctx.observed, decision)
    actions = [
        a for a in child_writes(wanted, ctx.ours, switching) if (a.kind, a.name) not in blocked
    ]
    actions += stale_ingresses(ctx)
    actions += stale_routes(ctx)
    actions += job_writes(app, ctx.observed, decision)
    return actions


def the_switch(app: App, decision: Decision, actions: Sequence[Action]) -> Switch:
    """The switch as one value: due or not, and, when planned, its write and its warning."""
    if not decision.switches:
        return Switch(due=decision.switch_due)
    prod = names.service_name(app.owner.name, "prod")
    action = next((a for a in actions if a.kind == "Service" and a.name == prod), None)
    return Switch(
        due=decision.switch_due,
        unswitched=decision.status_unswitched,
        action=action,
        warning=short_delay_warning(app),
    )


def short_delay_warning(app: App) -> str | None:
    delay = app.spec.scaleDownDelaySeconds
    if delay >= SAFE_SCALE_DOWN_DELAY:
        return None
    return (
        f"scaleDownDelaySeconds is {delay}: the previous color may be scaled down before "
        "kube-proxy on every node follows the switch (about a second, more on large "
        f"clusters), and requests to it would fail; {SAFE_SCALE_DOWN_DELAY} or more is safe"
    )
