"""A switch back on the real node notifies each configured destination kind exactly once:
the webhook, Slack and Teams formats to a receiver on 127.0.0.1, the alert to a real
Alertmanager. The broken version answers /api twice, then 500 (as in
test_gates_on_real_node.py): it passes the preview's checks and fails prod's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bluegreen.core.revision import revision_of

from alertmanager import running
from driver import Driver
from kubehelpers import wait_for
from notifications import KINDS, SECRET_PATH, deliveries, destinations
from operator_process import OperatorProcess
from realnode import template
from receiver import receiving
from traffic import deploy_v1

pytestmark = pytest.mark.e2e

SMOKE = {
    "name": "smoke",
    "http": {"path": "/api", "intervalSeconds": 1, "successThreshold": 2, "failureThreshold": 2},
}


def test_a_switch_back_notifies_each_kind_exactly_once(
    gated_operator: OperatorProcess, driver: Driver, namespace: str, tmp_path: Path
) -> None:
    with receiving() as rx, running(tmp_path / "am") as am:
        for body in destinations(namespace, rx, am.url):
            driver.create(namespace, body)
        notifications = {
            "events": ["SwitchedBack"],
            "link": "https://cd.example/{namespace}/{name}",
        }
        deploy_v1(driver, namespace, "web", checks=[SMOKE], notifications=notifications)
        v2 = template("v2", FAIL_PATH="/api", FAIL_AFTER="2")
        driver.patch_spec(
            namespace, "web", {"template": v2, "promote": True, "scaleDownDelaySeconds": 60}
        )
        wanted = {f"SwitchedBack/{d}": "Sent" for d in KINDS}
        wait_for(
            lambda: deliveries(driver, namespace, "web") == wanted,
            timeout=150,
            what="the switch back's four deliveries",
        )
        time.sleep(3)  # a second delivery would have come by now
        (event,) = rx.bodies("/events")
        (slack,) = rx.bodies(SECRET_PATH)
        (teams,) = rx.bodies("/teams")
        (alert,) = am.alerts()
    app = driver.app(namespace, "web")
    assert app["status"]["rolledBackRevision"] == revision_of(v2)
    data = event["data"]
    assert (data["event"], data["revision"], data["check"]) == (
        "SwitchedBack",
        revision_of(v2),
        "smoke",
    )
    assert data["previousRevision"] == app["status"]["activeRevision"]
    assert "500" in data["answer"]
    assert data["link"] == f"https://cd.example/{namespace}/web"
    for chat in (str(slack), str(teams)):
        assert revision_of(v2) in chat and "smoke" in chat and "500" in chat
    assert alert["labels"]["alertname"] == "BlueGreenSwitchedBack"
    assert alert["annotations"]["check"] == "smoke"
    assert "s3cr3t" not in gated_operator.log_path.read_text()
    assert "s3cr3t" not in str(driver.events(namespace, "web"))
