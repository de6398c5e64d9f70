"""The notifier against real HTTP receivers on 127.0.0.1 (webhook, Slack, Teams formats):
what they receive, the record in the status, retries, a hanging destination beside a
healthy one, a destination that is down, secrets kept out of logs and Events, and a
delivery another replica left mid-request. The API server is an in-memory stand-in that
applies merge patches as the API server does."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bluegreen.api.models import NotificationRecord, Notifications
from bluegreen.runtime import metrics
from bluegreen.runtime.notifier import Notifier

from builders import R2, RECORD
from kubehelpers import wait_for
from receiver import APP, NS, Api, receiving

SECRET_PATH = "/hooks/T000/B000/s3cr3t-w3bh00k-p4th"
TOKEN = "t0k3n-d0-n0t-l0g"


NID = "switchedback-0123456789ab"


@pytest.fixture
def fresh_metrics() -> Iterator[metrics.Metrics]:
    mine = metrics.Metrics()
    previous = metrics.use(mine)
    yield mine
    metrics.use(previous)


def notify(api: Api, record: NotificationRecord = RECORD, **config: Any) -> Notifier:
    notifier = Notifier(api, None)  # type: ignore[arg-type]
    notifier.want(APP, {NID: record}, Notifications(**config))
    return notifier


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sent(api: Api, *dests: str) -> bool:
    return all(api.delivery(NID, d).get("state") == "Sent" for d in dests)


def test_webhook_slack_and_teams_receive_their_formats(fresh_metrics: metrics.Metrics) -> None:
    with receiving() as rx:
        api = Api(
            [
                {"name": "hook", "kind": "webhook", "url": rx.url + "/events"},
                {"name": "chat", "kind": "slack", "urlSecretKey": "slack"},
                {"name": "channel", "kind": "teams", "url": rx.url + "/teams"},
            ],
            {"slack": rx.url + SECRET_PATH},
        )
        notify(api)
        wait_for(lambda: sent(api, "hook", "chat", "channel"), timeout=10, what="three deliveries")
        (event,) = rx.bodies("/events")
        (slack,) = rx.bodies(SECRET_PATH)
        (teams,) = rx.bodies("/teams")
    headers = next(r.headers for r in rx.received if r.path == "/events")
    assert headers["Content-Type"] == "application/cloudevents+json"
    assert (event["specversion"], event["id"], event["data"]["check"]) == ("1.0", NID, "smoke")
    assert "HTTP 500: boom" in slack["text"] + str(slack["blocks"])
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert R2 in str(card["content"]) and "https://cd.example/shop/web" in str(card["content"])
    assert [r for _, r, _ in api.events].count("Notified") == 3
    assert fresh_metrics.notifications.labels("slack", "sent")._value.get() == 1


def test_a_hanging_destination_holds_up_no_other() -> None:
    with receiving() as slow, receiving() as fast:
        slow.delay = 6.0
        api = Api(
            [
                {
                    "name": "slow",
                    "kind": "webhook",
                    "url": slow.url,
                    "timeoutSeconds": 5,
                    "retryForSeconds": 0,
                },
                {"name": "fast", "kind": "webhook", "url": fast.url},
            ],
            {},
        )
        started = time.monotonic()
        notify(api)
        wait_for(lambda: sent(api, "fast"), timeout=10, what="the healthy destination")
        assert time.monotonic() - started < 2.0
        assert api.delivery(NID, "slow")["state"] == "Sending"
        wait_for(
            lambda: api.delivery(NID, "slow").get("state") == "Failed",
            timeout=10,
            what="the hung one to fail",
        )
    assert "no answer within 5s" in api.delivery(NID, "slow")["error"]


def test_a_destination_that_is_down_is_retried_then_reported(
    fresh_metrics: metrics.Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    down = f"http://127.0.0.1:{closed_port()}{SECRET_PATH}"
    api = Api(
        [
            {
                "name": "chat",
                "kind": "slack",
                "urlSecretKey": "slack",
                "tokenSecretKey": "token",
                "retryForSeconds": 4,
            }
        ],
        {"slack": down, "token": TOKEN},
    )
    notify(api)
    wait_for(
        lambda: api.delivery(NID, "chat").get("state") == "Failed",
        timeout=15,
        what="the delivery to fail",
    )
    delivery = api.delivery(NID, "chat")
    assert delivery["attempts"] == 3  # at 0 s, 1 s and 3 s; the next backoff (4 s) is past 4 s
    assert "unreachable" in delivery["error"]
    ((type_, _, message),) = [e for e in api.events if e[1] == "NotificationFailed"]
    assert type_ == "Warning" and "chat" in message and "3 attempts" in message
    assert fresh_metrics.notifications.labels("slack", "failed")._value.get() == 1
    assert fresh_metrics.notification_requests.labels("slack", "error")._value.get() == 3
    # The secrets (the webhook URL's path, the token) are nowhere a person or program reads.
    for text in (caplog.text, str(api.events), str(api.status)):
        assert "s3cr3t" not in text and TOKEN not in text


def test_the_token_is_sent_as_a_bearer_header() -> None:
    with receiving() as rx:
        api = Api(
            [{"name": "hook", "kind": "webhook", "url": rx.url, "tokenSecretKey": "token"}],
            {"token": TOKEN},
        )
        notify(api)
        wait_for(lambda: sent(api, "hook"), timeout=10, what="the delivery")
    assert rx.received[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_delivery_left_mid_request_by_another_replica_is_not_sent_again() -> None:
    with receiving() as rx:
        api = Api([{"name": "chat", "kind": "slack", "url": rx.url}], {})
        left = {**RECORD.model_dump(), "deliveries": {"chat": {"state": "Sending", "attempts": 1}}}
        notify(api, NotificationRecord.model_validate(left))
        wait_for(
            lambda: api.delivery(NID, "chat").get("state") == "Uncertain",
            timeout=10,
            what="Uncertain",
        )
        time.sleep(0.5)
        assert rx.received == []
    assert [r for _, r, _ in api.events] == ["NotificationUncertain"]


def test_sent_once_though_asked_again() -> None:
    with receiving() as rx:
        api = Api([{"name": "hook", "kind": "webhook", "url": rx.url}], {})
        rx.delay = 0.5
        notifier = notify(api)
        notifier.want(APP, {NID: RECORD}, Notifications())  # a pass whose view is older
        wait_for(lambda: sent(api, "hook"), timeout=10, what="the delivery")
        recorded = NotificationRecord.model_validate(
            api.status["notifications"][NID] | RECORD.model_dump(exclude={"deliveries"})
        )
        notifier.want(APP, {NID: recorded}, Notifications())
        time.sleep(1.0)
        assert len(rx.received) == 1


def test_no_destinations_is_reported_not_lost() -> None:
    api = Api([], {})
    del api.objects[("ConfigMap", NS, "bluegreen-notifications")]
    notify(api)
    wait_for(
        lambda: api.delivery(NID, "(none)").get("state") == "Failed", timeout=10, what="the report"
    )
    assert "no ConfigMap bluegreen-notifications in shop" in api.events[0][2]


def test_an_unknown_destination_name_is_reported() -> None:
    with receiving() as rx:
        api = Api([{"name": "hook", "kind": "webhook", "url": rx.url}], {})
        notify(api, destinations=["pager"])
        wait_for(
            lambda: api.delivery(NID, "pager").get("state") == "Failed",
            timeout=10,
            what="the report",
        )
        assert rx.received == []


def test_a_destination_not_yet_started_is_sent_though_another_is_done() -> None:
    """A replica that stopped after one destination was sent, before another began: the
    next one sends only the other (the record's finished deliveries are not the whole)."""
    with receiving() as rx:
        api = Api(
            [
                {"name": "hook", "kind": "webhook", "url": rx.url + "/events"},
                {"name": "chat", "kind": "slack", "url": rx.url + "/chat"},
            ],
            {},
        )
        half = {**RECORD.model_dump(), "deliveries": {"hook": {"state": "Sent", "attempts": 1}}}
        notify(api, NotificationRecord.model_validate(half))
        wait_for(lambda: sent(api, "chat"), timeout=10, what="the delivery to chat")
        time.sleep(0.5)
        assert [r.path for r in rx.received] == ["/chat"]
