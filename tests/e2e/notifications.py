"""What the notification tests set up in a namespace: the destinations ConfigMap (one of
each kind) and its Secret, and how to read the deliveries from an app's status."""

from __future__ import annotations

from typing import Any

import yaml

from bluegreen.api.destinations import CONFIG_KEY, CONFIG_NAME

from driver import Driver
from receiver import Receiver

Obj = dict[str, Any]
SECRET_PATH = "/hooks/T000/B000/s3cr3t-w3bh00k-p4th"
KINDS = ("hook", "chat", "channel", "pager")


def destinations(namespace: str, rx: Receiver, am_url: str, **slack: Any) -> tuple[Obj, Obj]:
    """The ConfigMap (webhook, Slack by a secret URL, Teams, Alertmanager) and its Secret."""
    listed = [
        {"name": "hook", "kind": "webhook", "url": rx.url + "/events"},
        {"name": "chat", "kind": "slack", "urlSecretKey": "slack-url", **slack},
        {"name": "channel", "kind": "teams", "url": rx.url + "/teams"},
        {"name": "pager", "kind": "alertmanager", "url": am_url},
    ]
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_NAME, "namespace": namespace},
        "data": {CONFIG_KEY: yaml.safe_dump(listed)},
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": CONFIG_NAME, "namespace": namespace},
        "stringData": {"slack-url": rx.url + SECRET_PATH},
    }
    return config, secret


def deliveries(driver: Driver, namespace: str, app: str) -> dict[str, str]:
    """Each delivery's state by event/destination, from the app's status."""
    records = (driver.app(namespace, app).get("status") or {}).get("notifications") or {}
    return {
        f"{r['event']}/{dest}": d["state"]
        for r in records.values()
        for dest, d in (r.get("deliveries") or {}).items()
    }
