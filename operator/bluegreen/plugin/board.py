"""What the dashboard shows: pure functions from the objects the watches hold (plain dicts,
exactly as the API returns them) to the page's model, plain JSON.

One card per app: its phase, each color's role, revision and pods ready, the checks with
their last answers, the rollback window, the recent Events and the switch history. The
same rules as the command line decide (view.py): a color's role, the rollback target, the
GitOps marker, the next step. The time is an argument, so everything here is tested
without a cluster or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from bluegreen.api.models import BlueGreenAppSpec
from bluegreen.core import names, reasons
from bluegreen.core.clock import format_time, parse_time
from bluegreen.core.objects import Obj
from bluegreen.plugin.view import (
    Deployments,
    PluginError,
    color_role,
    deployment_revision,
    dig,
    gitops_marker,
    images_of,
    is_observed,
    next_step,
    retry_refusal,
    rollback_target,
)

Key = tuple[str, str]  # (namespace, name)

EVENTS_SHOWN = 20
# The Events that tell the story of prod: a switch, a switch back after a failed check.
SWITCH_REASONS = frozenset({reasons.SWITCHED, reasons.ROLLED_BACK})
DEFAULT_SCALE_DOWN_DELAY = int(BlueGreenAppSpec.model_fields["scaleDownDelaySeconds"].default)


def key_of(obj: Obj) -> Key:
    return (str(dig(obj, "metadata", "namespace")), str(dig(obj, "metadata", "name")))


def page(
    apps: Iterable[Obj],
    deployments: Mapping[Key, Obj],
    events: Iterable[Obj],
    *,
    now: datetime,
) -> list[Obj]:
    """Every app's card, by namespace and name. ``deployments`` by (namespace, name);
    ``events`` any Events, each card takes those on its app."""
    by_app: dict[Key, list[Obj]] = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        on = (str(involved.get("namespace")), str(involved.get("name")))
        by_app.setdefault(on, []).append(event)
    cards = []
    for app in sorted(apps, key=key_of):
        namespace, name = key_of(app)
        colors = {
            color: deployments.get((namespace, names.deployment_name(name, color)))
            for color in names.COLORS
        }
        cards.append(card(app, colors, by_app.get((namespace, name), []), now=now))
    return cards


def card(app: Obj, deployments: Deployments, events: Iterable[Obj], *, now: datetime) -> Obj:
    """One app as the page shows it."""
    namespace, name = key_of(app)
    status = app.get("status") or {}
    recent = sorted(events, key=event_time, reverse=True)
    return {
        "namespace": namespace,
        "name": name,
        "phase": status.get("phase") or "Unknown",
        "message": status.get("message") or "",
        "promote": bool(dig(app, "spec", "promote")),
        "observed": is_observed(app),
        "generation": dig(app, "metadata", "generation"),
        "gitops": gitops_marker(app),
        "active": color_revision(status.get("activeColor"), status.get("activeRevision")),
        "preview": color_revision(status.get("previewColor"), status.get("previewRevision")),
        "colors": [color_of(app, color, deployments.get(color)) for color in names.COLORS],
        "checks": [check_of(check) for check in status.get("checks") or []],
        "retryChecks": int(dig(app, "spec", "retryChecks") or 0),
        "retryRefusal": retry_refusal(app),
        "conditions": [
            {key: str(condition.get(key) or "") for key in CONDITION_FIELDS}
            for condition in status.get("conditions") or []
        ],
        "rollback": rollback_of(app, deployments, now=now),
        "next": next_step(app),
        "lastSwitchTime": status.get("lastSwitchTime"),
        "events": [event_of(event) for event in recent[:EVENTS_SHOWN]],
        "switches": [event_of(event) for event in recent if event.get("reason") in SWITCH_REASONS],
    }


CONDITION_FIELDS = ("type", "status", "reason", "message", "lastTransitionTime")
CHECK_FIELDS = ("name", "stage", "revision", "state", "successes", "failures", "message")


def color_revision(color: str | None, revision: str | None) -> Obj | None:
    return {"color": color, "revision": revision} if color else None


def color_of(app: Obj, color: str, deployment: Obj | None) -> Obj:
    """A color's role (active, preview, previous, idle) and its pods: ready of desired."""
    if deployment is None:
        return {"color": color, "role": "absent", "revision": None, "ready": 0, "desired": 0}
    desired = dig(deployment, "spec", "replicas")
    return {
        "color": color,
        "role": color_role(app, color, deployment),  # type: ignore[arg-type]
        "revision": deployment_revision(deployment),
        "ready": int(dig(deployment, "status", "readyReplicas") or 0),
        "desired": 1 if desired is None else int(desired),
        "image": images_of(deployment),
    }


def check_of(check: Obj) -> Obj:
    return {key: check.get(key) for key in CHECK_FIELDS}


def rollback_of(app: Obj, deployments: Deployments, *, now: datetime) -> Obj:
    """Whether a rollback is possible (the plugin's rule) and, while the previous color
    still runs, until when it is instant (``lastSwitchTime`` + ``scaleDownDelaySeconds``)."""
    try:
        target = rollback_target(app, deployments)
    except PluginError as refusal:
        return {"possible": False, "reason": str(refusal)}
    switched = parse_time(dig(app, "status", "lastSwitchTime"))
    delay = dig(app, "spec", "scaleDownDelaySeconds")
    delay = DEFAULT_SCALE_DOWN_DELAY if delay is None else int(delay)
    until = None if switched is None else switched + timedelta(seconds=delay)
    return {
        "possible": True,
        "revision": target.revision,
        "color": target.color,
        "instantUntil": None if until is None else format_time(until),
        "instantFor": None if until is None else max(0, int((until - now).total_seconds())),
    }


def event_time(event: Obj) -> str:
    """When an Event last happened, as RFC 3339 text (which sorts by time)."""
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or dig(event, "metadata", "creationTimestamp")
        or ""
    )


def event_of(event: Obj) -> Obj:
    return {
        "time": event_time(event),
        "type": event.get("type") or "",
        "reason": event.get("reason") or "",
        "message": event.get("message") or "",
        "count": int(event.get("count") or 1),
    }
