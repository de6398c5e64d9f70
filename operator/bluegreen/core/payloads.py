"""The bodies each kind of destination receives, from a notification's record: plain data
(the notifier serialises and sends them). docs/notifications.md shows each."""

from __future__ import annotations

from datetime import datetime, timedelta

from bluegreen.api.models import GROUP, PLURAL, VERSION, NotificationRecord
from bluegreen.core.clock import format_time, parse_time
from bluegreen.core.objects import Obj

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
# Events that mean something went wrong (an Alertmanager severity, a chat color).
FAILURES = frozenset(
    {"SwitchedBack", "CheckFailed", "RolloutFailed", "RolloutStuck", "Conflict", "InvalidSpec"}
)


def title(record: NotificationRecord, namespace: str, name: str) -> str:
    return f"{record.event}: BlueGreenApp {namespace}/{name}"


def facts(record: NotificationRecord, namespace: str, name: str) -> list[tuple[str, str]]:
    """The notification's fields as (label, value), those that are set."""
    pairs = [
        ("app", name),
        ("namespace", namespace),
        ("revision", record.revision),
        ("previous revision", record.previousRevision),
        ("check", record.check),
        ("last answer", record.answer),
    ]
    return [(k, v) for k, v in pairs if v]


def data(record: NotificationRecord, namespace: str, name: str) -> Obj:
    """The fields of every payload, as JSON."""
    fields = record.model_dump(mode="json", exclude={"deliveries"}, exclude_none=True)
    return {"app": name, "namespace": namespace, **fields}


def cloudevent(notification_id: str, record: NotificationRecord, namespace: str, name: str) -> Obj:
    """A CloudEvents 1.0 event in structured mode: ``id`` with ``source`` is unique per event,
    so a receiver can drop a repeat."""
    return {
        "specversion": "1.0",
        "id": notification_id,
        "source": f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
        "type": f"dev.bluegreen.app.{record.event[0].lower()}{record.event[1:]}",
        "subject": f"{namespace}/{name}",
        "time": record.time,
        "datacontenttype": "application/json",
        "data": data(record, namespace, name),
    }


def slack(record: NotificationRecord, namespace: str, name: str) -> Obj:
    """A Slack incoming webhook's message: ``text`` (the notification and fallback) and
    Block Kit blocks."""
    lines = "\n".join(f"*{k}*: {v}" for k, v in facts(record, namespace, name))
    blocks: list[Obj] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": title(record, namespace, name)[:150]},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": record.message or record.event}},
        {"type": "section", "text": {"type": "mrkdwn", "text": lines}},
    ]
    if record.link:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{record.link}|Open>"}}
        )
    return {"text": f"{title(record, namespace, name)}: {record.message}", "blocks": blocks}


def teams(record: NotificationRecord, namespace: str, name: str) -> Obj:
    """A Teams incoming webhook's (Workflows) message: one Adaptive Card."""
    card: Obj = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "size": "Medium",
                "weight": "Bolder",
                "text": title(record, namespace, name),
                "color": "Attention" if record.event in FAILURES else "Good",
            },
            {"type": "TextBlock", "text": record.message or record.event, "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": k, "value": v} for k, v in facts(record, namespace, name)],
            },
        ],
    }
    if record.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": record.link}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }


def alerts(
    notification_id: str,
    record: NotificationRecord,
    namespace: str,
    name: str,
    resolve_after: int,
) -> list[Obj]:
    """Alertmanager's v2 ``postableAlerts``: one alert, whose labels (with the notification
    id) identify it, so a repeat updates the same alert instead of adding one."""
    starts = parse_time(record.time) or datetime.fromtimestamp(0).astimezone()
    labels = {
        "alertname": f"BlueGreen{record.event}",
        "severity": "warning" if record.event in FAILURES else "info",
        "namespace": namespace,
        "bluegreenapp": name,
        "notification": notification_id,
    }
    if record.revision:
        labels["revision"] = record.revision
    annotations = {"summary": title(record, namespace, name), "description": record.message}
    annotations.update({k.replace(" ", "_"): v for k, v in facts(record, namespace, name)})
    alert: Obj = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": format_time(starts),
        "endsAt": format_time(starts + timedelta(seconds=resolve_after)),
    }
    if record.link:
        alert["generatorURL"] = record.link
    return [alert]
