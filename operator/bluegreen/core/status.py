"""The app's status, built in one place and through the status model.

A pass ends one of two ways: it planned and wrote (:func:`after_pass`: the plan's status,
corrected by what the writes achieved), or it stopped before planning (:func:`stopped`: bad
spec, missing rights, an error of the operator's own). Either way status describes what is
live: a switch that was not written is never reported as done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal

import pydantic

from bluegreen.api.models import BlueGreenAppStatus, Condition
from bluegreen.core import reasons
from bluegreen.core.clock import format_time
from bluegreen.core.objects import Obj
from bluegreen.core.plans import Action, Plan, Summary

Truth = Literal["True", "False", "Unknown"]


# The fields the summary and the status model hold alike: summary attribute -> status field.
SAME_FIELDS = {
    "active_color": "activeColor",
    "active_revision": "activeRevision",
    "preview_color": "previewColor",
    "preview_revision": "previewRevision",
    "previous_revision": "previousRevision",
    "switched_at": "lastSwitchTime",
    "replicas": "replicas",
    "selector": "selector",
}


def recorded(raw: Obj | None) -> BlueGreenAppStatus:
    """The status as stored; an unreadable one (hand-written, forged) reads as empty."""
    try:
        return BlueGreenAppStatus.model_validate(raw or {})
    except pydantic.ValidationError:
        return BlueGreenAppStatus()


def after_pass(
    plan: Plan,
    done: Sequence[Action],
    failures: Sequence[str],
    *,
    generation: int,
    previous: BlueGreenAppStatus,
    now: datetime,
) -> BlueGreenAppStatus:
    summary = plan.status
    switch = plan.switch
    if switch.unswitched is not None and not switch.is_written(done):
        summary = switch.unswitched  # prod still selects the old color
    if plan.conflicts:
        summary = replace(
            summary,
            phase="Degraded",
            reason=reasons.CHILD_CONFLICT,
            message=f"{', '.join(plan.conflicts)} already exists and is not owned by this "
            "BlueGreenApp; the operator leaves it alone: delete or rename it",
        )
    if failures:
        summary = replace(
            summary, phase="Degraded", reason=reasons.CHILD_REJECTED, message="; ".join(failures)
        )
    return to_status(summary, generation=generation, previous=previous, now=now)


def stopped(
    reason: str, message: str, *, generation: int, previous: BlueGreenAppStatus, now: datetime
) -> BlueGreenAppStatus:
    """Degraded for a reason that stopped the pass before it looked at the children: which
    color serves prod stays as last recorded, and whether it is available is not known."""
    summary = replace(
        summary_of(previous), phase="Degraded", reason=reason, message=message, available=None
    )
    return to_status(summary, generation=generation, previous=previous, now=now)


def to_status(
    summary: Summary, *, generation: int, previous: BlueGreenAppStatus, now: datetime
) -> BlueGreenAppStatus:
    """The one way from the planner's summary to the status model."""
    return BlueGreenAppStatus(
        phase=summary.phase,
        message=summary.message,
        observedGeneration=generation,
        **{field: getattr(summary, attr) for attr, field in SAME_FIELDS.items()},
        checks=list(summary.checks),
        rolledBackRevision=summary.rolled_back[0] if summary.rolled_back else None,
        rolledBackRetry=summary.rolled_back[1] if summary.rolled_back else None,
        conditions=conditions(summary, previous.conditions, now),
    )


def summary_of(recorded: BlueGreenAppStatus) -> Summary:
    """The one way back: the summary a recorded status holds. Its reason is the Progressing
    condition's (which carries every pass's reason), whether prod was available is the
    Available condition's; a status never written reads as Progressing, nothing live."""
    by_type = {c.type: c for c in recorded.conditions}
    progressing, available = by_type.get("Progressing"), by_type.get("Available")
    mark = None
    if recorded.rolledBackRevision is not None:
        mark = (recorded.rolledBackRevision, recorded.rolledBackRetry or 0)
    return Summary(
        phase=recorded.phase or "Progressing",
        reason=progressing.reason if progressing is not None else "",
        message=recorded.message or "",
        available={"True": True, "False": False}.get(available.status) if available else None,
        **{attr: getattr(recorded, field) for attr, field in SAME_FIELDS.items()},
        checks=tuple(recorded.checks),
        rolled_back=mark,
    )


def conditions(summary: Summary, previous: Sequence[Condition], now: datetime) -> list[Condition]:
    progressing = summary.phase == "Progressing"
    degraded = summary.phase == "Degraded"
    serving = f"{summary.active_color} serves revision {summary.active_revision}"
    available: tuple[Truth, str, str]
    if summary.available is None:
        available = ("Unknown", summary.reason, "not checked: the last pass stopped early")
    elif summary.available:
        available = ("True", reasons.ACTIVE_COLOR_AVAILABLE, serving)
    else:
        available = ("False", reasons.ACTIVE_COLOR_UNAVAILABLE, serving)
    wanted: list[tuple[str, Truth, str, str]] = [
        ("Available", *available),
        (
            "Progressing",
            _truth(progressing),
            summary.reason,
            summary.message if progressing else "",
        ),
        (
            "Degraded",
            _truth(degraded),
            summary.reason if degraded else reasons.AS_EXPECTED,
            summary.message if degraded else "",
        ),
    ]
    before = {c.type: c for c in previous}
    out = []
    for type_, truth, reason, message in wanted:
        old = before.get(type_)
        since = old.lastTransitionTime if old is not None and old.status == truth else None
        out.append(
            Condition(
                type=type_,
                status=truth,
                reason=reason,
                message=message,
                lastTransitionTime=since or format_time(now),
            )
        )
    return out


def _truth(value: bool) -> Truth:
    return "True" if value else "False"


def as_patch(status: BlueGreenAppStatus) -> Obj:
    """The status as a merge patch writes it: every field, absent ones as None (removed)."""
    return status.model_dump(mode="json")


def differs(current: Obj | None, new: BlueGreenAppStatus) -> bool:
    """Whether writing ``new`` changes anything: a converged app costs no write."""
    return _present(current or {}) != _present(as_patch(new))


def _present(status: Obj) -> Obj:
    return {k: v for k, v in status.items() if v is not None}
