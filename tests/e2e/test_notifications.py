"""Notifications to a real Alertmanager (Debian's package, `make alertmanager`): the alert
arrives through its v2 API, and a repeat of the same notification is the same alert."""

from __future__ import annotations

from pathlib import Path

import pytest

from bluegreen.api.models import NotificationRecord, Notifications
from bluegreen.runtime.notifier import Notifier

from alertmanager import running
from kubehelpers import wait_for
from receiver import NAME, NS, Api

pytestmark = pytest.mark.e2e

APP = {
    "apiVersion": "bluegreen.dev/v1alpha1",
    "kind": "BlueGreenApp",
    "metadata": {"name": NAME, "namespace": NS, "uid": "uid-1"},
}
RECORD = NotificationRecord(
    event="SwitchedBack",
    time="2026-12-04T01:00:00Z",
    message="revision r2 failed after the switch (HTTP 500: boom); switched prod back",
    revision="r2",
    previousRevision="r1",
    check="smoke",
    answer="HTTP 500: boom",
)


def test_alertmanager_receives_the_alert(tmp_path: Path) -> None:
    with running(tmp_path / "am") as am:
        api = Api([{"name": "pager", "kind": "alertmanager", "url": am.url}], {})
        notifier = Notifier(api, None)  # type: ignore[arg-type]
        notifier.want(APP, {"switchedback-1": RECORD}, Notifications())
        (alert,) = wait_for(am.alerts, timeout=15, what="the alert in Alertmanager")
        assert alert["labels"] == {
            "alertname": "BlueGreenSwitchedBack",
            "severity": "warning",
            "namespace": NS,
            "bluegreenapp": NAME,
            "notification": "switchedback-1",
            "revision": "r2",
        }
        assert alert["annotations"]["check"] == "smoke"
        assert alert["annotations"]["last_answer"] == "HTTP 500: boom"
        assert api.delivery("switchedback-1", "pager")["state"] == "Sent"
        # Sent again (as a replica could after a crash): Alertmanager keeps one alert.
        again = Notifier(api, None)  # type: ignore[arg-type]
        fresh = RECORD.model_copy(update={"deliveries": {}})
        api.status = {}
        again.want(APP, {"switchedback-1": fresh}, Notifications())
        wait_for(lambda: api.delivery("switchedback-1", "pager").get("state") == "Sent", timeout=15)
        assert len(am.alerts()) == 1
