"""Notifications to a real Alertmanager (Debian's package, `make alertmanager`): the alert
arrives through its v2 API, and a repeat of the same notification is the same alert."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bluegreen.api.models import NotificationRecord, Notifications
from bluegreen.core.clock import format_time, utcnow
from bluegreen.core.revision import revision_of
from bluegreen.runtime.notifier import Notifier

from alertmanager import running
from driver import Driver
from kubehelpers import wait_for
from notifications import SECRET_PATH, deliveries, destinations
from operator_process import OperatorProcess
from receiver import APP, NAME, NS, Api, receiving
from specs import hello, template

Obj = dict[str, Any]
APP_NAME = "hello"

pytestmark = pytest.mark.e2e

RECORD = NotificationRecord(
    event="SwitchedBack",
    # Now: the alert's endsAt is resolveAfterSeconds (1 h) after it, and Alertmanager lists
    # no alert that has ended (a fixed time here failed the test an hour later).
    time=format_time(utcnow()),
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


# ---------------------------------------------------------------- with the operator


@pytest.fixture
def replica(
    bluegreen_crd: None, namespace: str, tmp_path: Path, operators: list[OperatorProcess]
) -> Callable[[str], OperatorProcess]:
    """One replica of two, electing on a Lease in the test's namespace (short timings)."""

    def start(identity: str) -> OperatorProcess:
        election = ("--leader-elect", f"--lease-namespace={namespace}", f"--identity={identity}")
        timings = ("--lease-duration=4", "--renew-deadline=3", "--retry-period=0.5")
        op = OperatorProcess(namespace, tmp_path / f"{identity}.log", args=election + timings)
        operators.append(op)
        op.start()
        return op

    return start


def holder(driver: Driver, namespace: str) -> str | None:
    lease = driver.get("Lease", namespace, "bluegreen-operator") or {}
    return (lease.get("spec") or {}).get("holderIdentity")


def switch_to_v2(driver: Driver, namespace: str) -> None:
    driver.create_app(namespace, APP_NAME, hello(notifications={"events": ["Switched"]}))
    driver.wait_app(namespace, APP_NAME, phase="Healthy", activeColor="blue")
    driver.patch_spec(namespace, APP_NAME, {"template": template("v2"), "promote": True})
    driver.wait_app(namespace, APP_NAME, phase="Healthy", activeColor="green")


def test_a_switch_notifies_each_destination_once(
    driver: Driver, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    with receiving() as rx, running(tmp_path / "am") as am:
        for body in destinations(namespace, rx, am.url):
            driver.create(namespace, body)
        switch_to_v2(driver, namespace)
        wanted = {f"Switched/{d}": "Sent" for d in ("hook", "chat", "channel", "pager")}
        wait_for(
            lambda: deliveries(driver, namespace, APP_NAME) == wanted,
            timeout=30,
            what="4 deliveries",
        )
        time.sleep(2)  # a second delivery would have come by now
        assert len(rx.bodies("/events")) == len(rx.bodies("/teams")) == 1
        assert len(rx.bodies(SECRET_PATH)) == 1
        (alert,) = am.alerts()
    assert alert["labels"]["alertname"] == "BlueGreenSwitched"
    (event,) = rx.bodies("/events")
    assert event["data"]["revision"] == revision_of(template("v2"))
    assert event["data"]["previousRevision"] == revision_of(template("v1"))
    assert len(driver.events(namespace, APP_NAME, "Notified")) == 4
    log = operator.log_path.read_text()
    events = str(driver.events(namespace, APP_NAME))
    assert "s3cr3t" not in log and "s3cr3t" not in events


def test_a_leader_killed_while_sending_sends_no_duplicate(
    driver: Driver, namespace: str, replica: Callable[[str], OperatorProcess], tmp_path: Path
) -> None:
    with receiving() as rx, running(tmp_path / "am") as am:
        rx.delay = 8.0  # every request waits for its answer: the leader dies mid-request
        for body in destinations(namespace, rx, am.url, timeoutSeconds=10):
            driver.create(namespace, body)
        a = replica("a")
        wait_for(lambda: holder(driver, namespace) == "a", timeout=10, what="a to lead")
        replica("b")
        switch_to_v2(driver, namespace)
        wait_for(lambda: len(rx.bodies(SECRET_PATH)) == 1, timeout=20, what="the Slack request")
        a.kill()
        wait_for(lambda: holder(driver, namespace) == "b", timeout=15, what="b to lead")
        wait_for(
            lambda: deliveries(driver, namespace, APP_NAME).get("Switched/chat") == "Uncertain",
            timeout=30,
            what="the new leader to find the delivery left mid-request",
        )
        time.sleep(3)
        assert len(rx.bodies(SECRET_PATH)) == 1  # not sent again
        assert len(rx.bodies("/events")) == len(rx.bodies("/teams")) == 1
        assert len(am.alerts()) == 1
    assert driver.events(namespace, APP_NAME, "NotificationUncertain")
