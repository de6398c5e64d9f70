"""Finding what is live: which children are ours, which color serves prod, and the record
of the last switch. All of it is read once per pass into its :class:`~context.Pass`.

The record of what prod serves is the prod Service (its live-template annotation, written
in the switch itself); should that Service be lost or hand-edited, the app's status, then
the Deployments themselves. So a restart at any moment resumes from what is live, and a
preview never reaches prod because a Service was deleted or edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bluegreen.api.models import Color
from bluegreen.core import gates, names, status
from bluegreen.core.context import Children, Live, Pass
from bluegreen.core.facts import (
    annotation,
    available_replicas,
    is_owned_by,
    json_annotation,
    revision_label,
    selected_color,
    template_of,
)
from bluegreen.core.objects import Obj
from bluegreen.core.plans import App, Kind, Observed, Summary
from bluegreen.core.revision import revision_of

Mark = tuple[str, int]  # a revision switched back, and the spec.retryChecks then


def read_pass(app: App, observed: Observed, now: datetime) -> Pass:
    """The context of one pass: what the app wants, what is ours, what serves prod."""
    ours = children_of(app, observed)
    recorded = status.summary_of(app.recorded) if app.recorded is not None else None
    return Pass(
        app=app,
        ours=ours,
        observed=observed,
        now=now,
        wanted=revision_of(app.spec.template),
        live=find_live(app, ours, recorded),
        record=switch_record(app, ours.services.get("prod"), recorded),
        recorded=recorded,
    )


def conflicts(app: App, observed: Observed) -> list[tuple[Kind, str]]:
    """The children of this app's names that belong to someone else."""
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


def children_of(app: App, observed: Observed) -> Children:
    def keep(objs: Mapping[Any, Obj]) -> dict[Any, Obj]:
        return {k: v for k, v in objs.items() if is_owned_by(v, app.owner)}

    return Children(
        keep(observed.deployments),
        keep(observed.services),
        keep(observed.ingresses),
        keep(observed.routes),
    )


def find_live(app: App, ours: Children, recorded: Summary | None) -> Live:
    """Which color holds the promoted revision. The prod Service records it in the switch
    write itself; should that record be gone (the Service deleted or edited by hand), the
    status the operator wrote; with neither, the Deployments themselves."""
    prod = ours.services.get("prod")
    template = json_annotation(prod, names.ANNOTATION_LIVE_TEMPLATE)
    if template is not None:
        return _holder(ours, revision_of(template), template, selected_color(prod))
    if recorded is not None and recorded.active_revision:
        live = _holder(ours, recorded.active_revision, None, recorded.active_color)
        if live.template is not None:
            return live
    return _live_from_deployments(app, ours, prod)


def _holder(ours: Children, revision: str, template: Obj | None, hint: Color | None) -> Live:
    """The color running ``revision`` (``hint`` when both do); when neither does (its
    Deployment was deleted), ``hint``: the live color is rebuilt there."""
    holders = [c for c in names.COLORS if revision_label(ours.deployments.get(c)) == revision]
    color = hint if hint in holders or not holders else holders[0]
    if template is None and color in holders:
        template = template_of(ours.deployments[color])
    return Live(color or "blue", revision, template)


def _live_from_deployments(app: App, ours: Children, prod: Obj | None) -> Live:
    """No record at all: prod goes to the color with the most available pods, so it is
    never repaired onto fewer. On a tie, without ``promote``, the color not running the
    spec's revision (a preview must not reach prod unpromoted), then the one prod selects."""
    deployments = ours.deployments
    if not deployments:
        return Live(selected_color(prod) or "blue")
    wanted = revision_of(app.spec.template)

    def preference(color: Color) -> tuple[int, bool, bool]:
        dep = deployments[color]
        unpromoted = revision_label(dep) == wanted and not app.spec.promote
        return (available_replicas(dep), not unpromoted, color == selected_color(prod))

    color = max(deployments, key=preference)
    template = template_of(deployments[color])
    return Live(color, revision_label(deployments[color]) or revision_of(template), template)


def switch_record(app: App, prod: Obj | None, recorded: Summary | None) -> dict[str, str]:
    """When prod last switched and from which revision (and a revision switched back, while
    it matters): on the prod Service, or, should it have lost them, in the status."""
    keys = (names.ANNOTATION_SWITCHED_AT, names.ANNOTATION_PREVIOUS_REVISION)
    record = {k: v for k in keys if (v := annotation(prod, k))}
    if names.ANNOTATION_SWITCHED_AT not in record and recorded is not None:
        fallback = {
            names.ANNOTATION_SWITCHED_AT: recorded.switched_at,
            names.ANNOTATION_PREVIOUS_REVISION: recorded.previous_revision,
        }
        record.update({k: v for k, v in fallback.items() if v})
    previous = record.get(names.ANNOTATION_PREVIOUS_REVISION)
    mark = _rolled_back_mark(app, prod, recorded, previous)
    if mark is not None:
        record[names.ANNOTATION_ROLLED_BACK] = gates.format_mark(*mark)
    return record


def _rolled_back_mark(
    app: App, prod: Obj | None, recorded: Summary | None, previous: str | None
) -> Mark | None:
    """The revision switched back after a failed check, kept while it matters: while the
    template still asks for it (it is not promoted again), and while that switch back is
    the last switch (prod is not verified onto it again). On the prod Service, or, should
    it be lost, the status."""
    mark = gates.parse_mark(annotation(prod, names.ANNOTATION_ROLLED_BACK))
    if mark is None and recorded is not None and recorded.rolled_back and recorded.rolled_back[0]:
        mark = recorded.rolled_back
    if mark is None or (mark[0] != revision_of(app.spec.template) and mark[0] != previous):
        return None
    return mark


def mark_of(record: Mapping[str, str]) -> Mark | None:
    """The revision the record says was switched back, if any."""
    return gates.parse_mark(record.get(names.ANNOTATION_ROLLED_BACK))


def blocking_mark(ctx: Pass) -> Mark | None:
    """The mark when it stops the wanted revision from being promoted: the same revision
    under the same ``spec.retryChecks`` (a new template or a retry ends it)."""
    mark = mark_of(ctx.record)
    return mark if mark == (ctx.wanted, ctx.app.spec.retryChecks) else None
