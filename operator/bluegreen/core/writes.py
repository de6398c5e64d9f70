"""Turning what the decision wants into writes: the children it wants, compared with those
that are live, become creates and updates (each with its Event reason and sentence); the
Ingresses and HTTPRoutes no longer asked for and the check Jobs of finished runs become
deletes. What the gateways say of the routes corrects the status (:func:`with_routes`)."""

from __future__ import annotations

from dataclasses import replace

from bluegreen.api.models import Color
from bluegreen.core import desired, names, reasons, routes
from bluegreen.core.context import Children, Decision, Pass
from bluegreen.core.desired import Owner
from bluegreen.core.facts import (
    is_owned_by,
    needs_write,
    revision_label,
    selected_color,
    template_of,
)
from bluegreen.core.objects import Obj
from bluegreen.core.plans import Action, App, Observed, Summary
from bluegreen.core.revision import revision_of


def rescaled(owner: Owner, color: Color, dep: Obj, replicas: int) -> Obj:
    """The Deployment of ``color`` running what it runs now, at ``replicas``."""
    template = template_of(dep)
    rev = revision_label(dep) or revision_of(template)
    return desired.deployment(owner, color, template, rev, replicas)


def wanted_children(app: App, observed: Observed, decision: Decision) -> list[Obj]:
    """Every child the decision wants: both Deployments, both Services, the Ingresses, the
    HTTPRoutes (none when the cluster does not serve them: nowhere to write them)."""
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
    if observed.gateway_api:
        children += desired.http_routes(app.owner, spec)
    return children


def child_writes(wanted: list[Obj], ours: Children, switching: str | None) -> list[Action]:
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
        return reasons.CREATED, f"create {kind} {name}"
    if kind == "Service":
        color = want["spec"]["selector"][names.LABEL_COLOR]
        if name == switching:
            return reasons.SWITCHED, f"switch Service {name} from {selected_color(live)} to {color}"
        return reasons.UPDATED, f"update Service {name} (selects {color})"
    if kind == "Deployment":
        rev, replicas = revision_label(want), want["spec"]["replicas"]
        if revision_label(live) != rev:
            return reasons.DEPLOYING, f"deploy revision {rev} to {name} at {replicas} replicas"
        return reasons.SCALED, f"scale {name} to {replicas} replicas"
    return reasons.UPDATED, f"update {kind} {name}"


def stale_ingresses(ctx: Pass) -> list[Action]:
    """Delete the app's Ingresses once ``spec.ingress`` is gone."""
    if ctx.app.spec.ingress is not None:
        return []
    return [
        Action(
            "delete",
            "Ingress",
            obj["metadata"]["name"],
            None,
            reasons.DELETED,
            f"delete Ingress {obj['metadata']['name']}: spec.ingress was removed",
        )
        for obj in ctx.ours.ingresses.values()
    ]


def stale_routes(ctx: Pass) -> list[Action]:
    """Delete the routes the spec no longer asks for (``spec.gateway`` removed, or the
    preview hostnames emptied)."""
    spec = ctx.app.spec
    wanted = desired.route_roles(spec)
    why = "spec.gateway was removed" if spec.gateway is None else "no previewHostnames"
    return [
        Action(
            "delete",
            "HTTPRoute",
            obj["metadata"]["name"],
            None,
            reasons.DELETED,
            f"delete HTTPRoute {obj['metadata']['name']}: {why}",
        )
        for role, obj in ctx.ours.routes.items()
        if role not in wanted
    ]


def wanted_routes(ctx: Pass) -> list[Obj]:
    """The live routes the spec still asks for (a route about to go has no say)."""
    wanted = desired.route_roles(ctx.app.spec)
    return [obj for role, obj in ctx.ours.routes.items() if role in wanted]


def routes_verdict(ctx: Pass) -> routes.Verdict:
    """What the gateways say of the routes the spec asks for."""
    return routes.verdict(
        wanted_routes(ctx),
        wanted=ctx.app.spec.gateway is not None,
        gateway_api=ctx.observed.gateway_api,
        missing_parents=ctx.observed.missing_parents,
    )


def with_routes(summary: Summary, verdict: routes.Verdict) -> Summary:
    """The status, corrected by what the gateways say of the routes: a refused route is
    Degraded with the gateway's answer; one not answered yet keeps a Healthy app
    Progressing (its hostnames may not route yet)."""
    if verdict.missing_api:
        return replace(
            summary,
            phase="Degraded",
            reason=reasons.GATEWAY_API_MISSING,
            message=routes.API_MISSING,
        )
    if verdict.refused:
        return replace(
            summary,
            phase="Degraded",
            reason=reasons.ROUTE_REFUSED,
            message="; ".join(verdict.refused),
        )
    if verdict.pending and summary.phase == "Healthy":
        return replace(
            summary,
            phase="Progressing",
            reason=reasons.ROUTE_PENDING,
            message="waiting for the gateway to accept " + "; ".join(verdict.pending),
        )
    return summary


def job_writes(app: App, observed: Observed, decision: Decision) -> list[Action]:
    """Create the check Jobs that are due and missing; delete the app's check Jobs of other
    runs (an older revision, an earlier retry): a run's Job is never updated."""
    release = decision.status.preview_revision or decision.status.active_revision
    existing = {j["metadata"]["name"]: j for j in observed.jobs}
    actions = []
    for job in decision.jobs:
        name = job["metadata"]["name"]
        if name not in existing:
            why = f"create Job {name} for check {job['metadata']['labels'][names.LABEL_CHECK]}"
            actions.append(
                Action("create", "Job", name, desired.stamped(job), reasons.CREATED, why)
            )
    for name, job in existing.items():
        labels = job["metadata"].get("labels") or {}
        current = (labels.get(names.LABEL_REVISION), labels.get(names.LABEL_CHECK_RETRY)) == (
            release,
            str(app.spec.retryChecks),
        )
        if is_owned_by(job, app.owner) and not current:
            why = f"delete Job {name}: its check run is over (revision {release} is released)"
            actions.append(Action("delete", "Job", name, None, reasons.DELETED, why))
    return actions
