"""What to notify (core.notify, pure) and the payloads (core.payloads), table-driven; and
through the reconciler: a switch is recorded once in status.notifications."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bluegreen.api.models import (
    BlueGreenAppStatus,
    CheckStatus,
    Condition,
    Delivery,
    NotificationRecord,
    Notifications,
)
from bluegreen.core import notify, payloads, reasons
from bluegreen.core.clock import format_time
from bluegreen.runtime import reconciler

from builders import NOW, R1, R2, RECORD
from fakes import APP_PATH, preview_ready_for_switch, reconcile

ALL = Notifications()


def status(
    reason: str, phase: str = "Healthy", since: str | None = None, **fields: Any
) -> BlueGreenAppStatus:
    cond = Condition(
        type="Progressing",
        status="True" if phase == "Progressing" else "False",
        reason=reason,
        lastTransitionTime=since or format_time(NOW),
    )
    return BlueGreenAppStatus(phase=phase, conditions=[cond], **fields)  # type: ignore[arg-type]


LIVE_R1 = status(reasons.CONVERGED, activeColor="blue", activeRevision=R1)
SWITCHED_R2 = status(
    reasons.SWITCHED,
    activeColor="green",
    activeRevision=R2,
    previousRevision=R1,
    lastSwitchTime=format_time(NOW),
)
FAILED_PROD = CheckStatus(
    name="smoke", stage="prod", revision=R2, state="Failed", failures=3, message="HTTP 500: boom"
)
SWITCHED_BACK = status(
    reasons.ROLLED_BACK,
    phase="Degraded",
    activeColor="blue",
    activeRevision=R1,
    previewRevision=R2,
    lastSwitchTime=format_time(NOW + timedelta(seconds=10)),
    checks=[FAILED_PROD],
    message="revision r2 failed after the switch",
)
FAILED_PREVIEW = status(
    reasons.CHECK_FAILED,
    phase="Degraded",
    activeRevision=R1,
    previewRevision=R2,
    checks=[FAILED_PROD.model_copy(update={"stage": "preview"})],
)


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        pytest.param(LIVE_R1, LIVE_R1, [], id="nothing-happened"),
        pytest.param(LIVE_R1, SWITCHED_R2, ["Switched"], id="switched"),
        pytest.param(SWITCHED_R2, SWITCHED_R2, [], id="switched-seen-before"),
        pytest.param(SWITCHED_R2, SWITCHED_BACK, ["SwitchedBack"], id="switched-back"),
        pytest.param(LIVE_R1, FAILED_PREVIEW, ["CheckFailed"], id="check-failed"),
        pytest.param(FAILED_PREVIEW, FAILED_PREVIEW, [], id="check-failed-seen-before"),
        pytest.param(
            LIVE_R1,
            status(reasons.ROLLOUT_FAILED, phase="Degraded", message="deadline exceeded"),
            ["RolloutFailed"],
            id="rollout-failed",
        ),
        pytest.param(
            LIVE_R1,
            status(reasons.CHILD_CONFLICT, phase="Degraded", message="Service web exists"),
            ["Conflict"],
            id="conflict",
        ),
        pytest.param(
            LIVE_R1,
            status(reasons.INVALID_SPEC, phase="Degraded", message="invalid spec"),
            ["InvalidSpec"],
            id="invalid-spec",
        ),
        pytest.param(
            LIVE_R1,
            status(reasons.ROLLING_OUT, "Progressing", format_time(NOW - timedelta(hours=1))),
            ["RolloutStuck"],
            id="stuck-past-its-deadline",
        ),
        pytest.param(
            LIVE_R1,
            status(reasons.ROLLING_OUT, "Progressing", format_time(NOW - timedelta(minutes=5))),
            [],
            id="progressing-within-its-deadline",
        ),
    ],
)
def test_events_detected(
    before: BlueGreenAppStatus, after: BlueGreenAppStatus, events: list[str]
) -> None:
    found = notify.detected(before, after, ALL, 2, NOW)
    assert sorted(r.event for r in found.values()) == events


def test_switched_back_names_revisions_and_the_failing_check() -> None:
    (record,) = notify.detected(SWITCHED_R2, SWITCHED_BACK, ALL, 2, NOW).values()
    assert (record.revision, record.previousRevision) == (R2, R1)
    assert (record.check, record.answer) == ("smoke", "HTTP 500: boom")


def test_only_the_events_asked_for() -> None:
    only_back = Notifications(events=["SwitchedBack"])
    assert notify.detected(LIVE_R1, SWITCHED_R2, only_back, 2, NOW) == {}


def test_an_event_already_recorded_is_not_added_again() -> None:
    found = notify.detected(LIVE_R1, SWITCHED_R2, ALL, 2, NOW)
    again = notify.detected(
        LIVE_R1.model_copy(update={"notifications": found}),
        SWITCHED_R2,
        ALL,
        2,
        NOW + timedelta(seconds=5),
    )
    assert again == {}
    # The same event seen by another pass (a restart) gets the same id.
    assert (
        notify.detected(LIVE_R1, SWITCHED_R2, ALL, 2, NOW + timedelta(hours=1)).keys()
        == found.keys()
    )


def test_the_record_keeps_the_latest_and_the_patch_never_rewrites_an_entry() -> None:
    old = {
        f"old-{i}": NotificationRecord(
            event="Switched", time=format_time(NOW - timedelta(minutes=i))
        )
        for i in range(notify.MAX_RECORDS)
    }
    sent = old["old-0"].model_copy(
        update={"deliveries": {"chat": Delivery(state="Sent", attempts=1)}}
    )
    previous = LIVE_R1.model_copy(update={"notifications": {**old, "old-0": sent}})
    added = {"new": NotificationRecord(event="Switched", time=format_time(NOW))}
    new = previous.model_copy(update={"notifications": notify.recorded(previous, added)})
    assert len(new.notifications) == notify.MAX_RECORDS
    patch = notify.delta(previous, new)
    assert patch == {
        "new": added["new"].model_dump(mode="json"),
        f"old-{notify.MAX_RECORDS - 1}": None,
    }


def test_link_template() -> None:
    record = NotificationRecord(event="Switched", time="t", revision=R2)
    linked = notify.with_link(
        record, "https://cd.example/{namespace}/{name}?rev={revision}&e={event}", "shop", "web"
    )
    assert linked.link == f"https://cd.example/shop/web?rev={R2}&e=Switched"


def test_stuck_wakes_the_app_at_its_deadline() -> None:
    progressing = status(reasons.ROLLING_OUT, "Progressing", format_time(NOW))
    assert notify.stuck_check_after(progressing, ALL, NOW) == ALL.stuckAfterSeconds + 1.0
    assert notify.stuck_check_after(LIVE_R1, ALL, NOW) is None


def test_cloudevent_is_structured_and_identified() -> None:
    event = payloads.cloudevent("switchedback-1", RECORD, "shop", "web")
    assert event["specversion"] == "1.0"
    assert (event["id"], event["type"]) == ("switchedback-1", "dev.bluegreen.app.switchedBack")
    assert event["source"] == "/apis/bluegreen.dev/v1alpha1/namespaces/shop/bluegreenapps/web"
    assert event["data"]["check"] == "smoke" and event["data"]["answer"] == "HTTP 500: boom"


def test_chat_payloads_name_app_revisions_check_and_link() -> None:
    slack = str(payloads.slack(RECORD, "shop", "web"))
    teams = str(payloads.teams(RECORD, "shop", "web"))
    for text in (slack, teams):
        for part in ("shop/web", R1, R2, "smoke", "HTTP 500: boom", "https://cd.example/shop/web"):
            assert part in text


def test_alert_labels_identify_it() -> None:
    (alert,) = payloads.alerts("switchedback-1", RECORD, "shop", "web", 3600)
    assert alert["labels"]["alertname"] == "BlueGreenSwitchedBack"
    assert alert["labels"]["severity"] == "warning"
    assert alert["labels"]["notification"] == "switchedback-1"
    assert alert["endsAt"] == format_time(NOW + timedelta(hours=1))


def test_a_switch_is_recorded_once_by_the_reconciler() -> None:
    api = preview_ready_for_switch()
    api.objects[APP_PATH]["spec"]["notifications"] = {"events": ["Switched"]}
    reconcile(api)
    (added,) = [p["notifications"] for p in api.status_patches if p.get("notifications")]
    ((nid, record),) = added.items()
    assert record["event"] == "Switched" and record["revision"] == R2
    assert nid in api.app_status["notifications"]
    reconcile(api)  # the next pass sees it recorded
    assert [p["notifications"] for p in api.status_patches if p.get("notifications")] == [added]


def test_invalid_spec_is_notified_though_the_spec_cannot_be_read() -> None:
    api = preview_ready_for_switch()
    api.objects[APP_PATH]["spec"]["replicas"] = "many"
    api.objects[APP_PATH]["spec"]["notifications"] = {"events": ["InvalidSpec"]}
    reconcile(api)
    records = api.app_status["notifications"].values()
    assert [r["event"] for r in records] == ["InvalidSpec"]
    assert reconciler.notifications_of(api.objects[APP_PATH]) is not None
