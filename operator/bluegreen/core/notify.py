"""What to notify: plain data from the status a pass leads to, compared with the one it
started from. Nothing here sends; :mod:`bluegreen.runtime.notifier` does.

Each notification has an id made from what identifies its event (the revision, the switch
time, the check, the generation), so the pass that sees an event again (its status write
lost a race, the operator restarted) finds it recorded and adds nothing: the record in
``status.notifications`` is what makes a notification once per event.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from bluegreen.api.models import (
    BlueGreenAppStatus,
    Condition,
    NotificationRecord,
    Notifications,
    NotifyEvent,
)
from bluegreen.core import reasons
from bluegreen.core.clock import format_time, parse_time
from bluegreen.core.objects import Obj

# The record keeps the latest ones: enough for every event of a release, bounded in size.
MAX_RECORDS = 16
FINAL_STATES = frozenset({"Sent", "Failed", "Uncertain"})


def notification_id(event: NotifyEvent, *parts: object) -> str:
    digest = hashlib.sha256("/".join(str(p) for p in (event, *parts)).encode()).hexdigest()
    return f"{event.lower()}-{digest[:12]}"


def _condition(status: BlueGreenAppStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def reason_of(status: BlueGreenAppStatus) -> str | None:
    """The pass's reason (the Progressing condition carries every pass's)."""
    progressing = _condition(status, "Progressing")
    return progressing.reason if progressing is not None else None


def detected(
    previous: BlueGreenAppStatus,
    new: BlueGreenAppStatus,
    config: Notifications,
    generation: int,
    now: datetime,
) -> dict[str, NotificationRecord]:
    """The events this pass's status shows that ``previous`` did not, those ``config``
    asks for, by id; an id already recorded is left out."""
    found: dict[str, NotificationRecord] = {}
    at = format_time(now)
    reason, before = reason_of(new), reason_of(previous)

    def add(event: NotifyEvent, key: tuple[object, ...], **fields: str | None) -> None:
        if event in config.events:
            found[notification_id(event, *key)] = NotificationRecord(event=event, time=at, **fields)

    switched = new.lastSwitchTime is not None and new.lastSwitchTime != previous.lastSwitchTime
    if switched and reason == reasons.ROLLED_BACK:
        failed = next((c for c in new.checks if c.state == "Failed"), None)
        add(
            "SwitchedBack",
            (new.previewRevision, new.lastSwitchTime),
            message=new.message,
            revision=new.previewRevision,
            previousRevision=new.activeRevision,
            check=failed.name if failed else None,
            answer=failed.message if failed else None,
        )
    elif switched:
        add(
            "Switched",
            (new.activeRevision, new.lastSwitchTime),
            message=f"prod switched to {new.activeColor} (revision {new.activeRevision})",
            revision=new.activeRevision,
            previousRevision=new.previousRevision,
        )
    was_failed = {
        (c.name, c.stage, c.revision, c.retry) for c in previous.checks if c.state == "Failed"
    }
    for check in new.checks:
        key = (check.name, check.stage, check.revision, check.retry)
        if check.state == "Failed" and check.stage == "preview" and key not in was_failed:
            add(
                "CheckFailed",
                key,
                message=f"check {check.name} failed on the preview of revision "
                f"{check.revision}: {check.message}",
                revision=check.revision,
                previousRevision=new.activeRevision,
                check=check.name,
                answer=check.message,
            )
    revision = new.previewRevision or new.activeRevision
    for event, why in (
        ("RolloutFailed", reasons.ROLLOUT_FAILED),
        ("Conflict", reasons.CHILD_CONFLICT),
        ("InvalidSpec", reasons.INVALID_SPEC),
    ):
        if reason == why and before != why:
            ident: tuple[object, ...] = (generation,)
            if event != "InvalidSpec":
                ident = (revision, new.message)
            add(event, ident, message=new.message, revision=revision)  # type: ignore[arg-type]
    since = stuck_since(new)
    if since is not None and now >= since + timedelta(seconds=config.stuckAfterSeconds):
        add(
            "RolloutStuck",
            (revision, format_time(since)),
            message=f"Progressing for over {config.stuckAfterSeconds}s: {new.message}",
            revision=revision,
        )
    return {k: v for k, v in found.items() if k not in previous.notifications}


def stuck_since(status: BlueGreenAppStatus) -> datetime | None:
    """Since when the app has been Progressing, or None when it is not."""
    progressing = _condition(status, "Progressing")
    if progressing is None or progressing.status != "True":
        return None
    return parse_time(progressing.lastTransitionTime)


def stuck_check_after(
    status: BlueGreenAppStatus, config: Notifications, now: datetime
) -> float | None:
    """Seconds until the app, should it stay Progressing, is stuck (its pass is due then)."""
    since = stuck_since(status)
    if since is None:
        return None
    left = (since + timedelta(seconds=config.stuckAfterSeconds) - now).total_seconds()
    return max(left, 0.0) + 1.0 if left > -1.0 else None


def with_link(
    record: NotificationRecord, template: str | None, namespace: str, name: str
) -> NotificationRecord:
    if template is None:
        return record
    values = {
        "namespace": namespace,
        "name": name,
        "revision": record.revision or "",
        "event": record.event,
    }
    link = template
    for key, value in values.items():
        link = link.replace("{" + key + "}", value)
    return record.model_copy(update={"link": link})


def recorded(
    previous: BlueGreenAppStatus, added: dict[str, NotificationRecord]
) -> dict[str, NotificationRecord]:
    """The record after adding ``added``: the latest MAX_RECORDS by time."""
    merged = {**previous.notifications, **added}
    latest = sorted(merged.items(), key=lambda item: (item[1].time, item[0]), reverse=True)
    return dict(sorted(latest[:MAX_RECORDS]))


def delta(previous: BlueGreenAppStatus, new: BlueGreenAppStatus) -> dict[str, Obj | None]:
    """What a pass's merge patch writes of ``status.notifications``: the entries it adds
    and None for those it drops; never an entry already there (the notifier updates those
    with patches of their own, which a pass planned from an older view must not undo)."""
    out: dict[str, Obj | None] = {
        key: record.model_dump(mode="json")
        for key, record in new.notifications.items()
        if key not in previous.notifications
    }
    out.update({key: None for key in previous.notifications if key not in new.notifications})
    return out


def undelivered(record: NotificationRecord, destinations: list[str]) -> list[str]:
    """The destinations a notification is still owed to."""
    return [
        d
        for d in destinations
        if d not in record.deliveries or record.deliveries[d].state not in FINAL_STATES
    ]
