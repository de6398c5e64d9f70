"""The side-by-side benchmark's arithmetic (bench/harness.py, bench/peer.py): what a
promotion's watch events make of it, and how the table is made. No cluster."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from harness import Round, Timeline, analyse_round, percentile, slice_retries  # noqa: E402
from peer import (  # noqa: E402
    controller_measures,
    failures,
    latencies_ms,
    markdown,
    rows,
    switch_measures,
)

BLUE = {"app": "hello", "bluegreen.dev/color": "blue"}
GREEN = {"app": "hello", "bluegreen.dev/color": "green"}


def pod(name: str, labels: dict[str, str], ready: bool) -> dict[str, Any]:
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def service(selector: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "hello"}, "spec": {"selector": selector}}


def endpoint_slice(name: str, ready: dict[str, bool]) -> dict[str, Any]:
    endpoints = [
        {"targetRef": {"name": p}, "conditions": {"ready": is_ready}}
        for p, is_ready in ready.items()
    ]
    return {"metadata": {"name": name}, "endpoints": endpoints}


def promotion(preview_before_switch: bool) -> Timeline:
    """Blue serves; at t=10 a new template; green's 3 pods turn Ready at 10.5-10.7; the
    preview's slices list the third at 10.9; prod switches at 11.0 (or 10.8, before it)."""
    timeline = Timeline(None, "ns", active="hello", preview="hello-preview")  # type: ignore[arg-type]
    timeline.record_service(0.0, "ADDED", service(BLUE))
    timeline.record_pod(0.1, "ADDED", pod("hello-blue-old", BLUE, ready=True))
    for i, name in enumerate(("a", "b", "c")):
        timeline.record_pod(10.2, "ADDED", pod(f"hello-green-{name}", GREEN, ready=False))
        timeline.record_pod(
            10.5 + i / 10, "MODIFIED", pod(f"hello-green-{name}", GREEN, ready=True)
        )
    timeline.record_slice(10.6, "ADDED", endpoint_slice("s1", {"hello-green-a": True}))
    two = {"hello-green-b": True, "hello-green-c": False}
    timeline.record_slice(10.75, "ADDED", endpoint_slice("s2", two))
    timeline.record_service(11.0 if preview_before_switch else 10.8, "MODIFIED", service(GREEN))
    all_ready = {"hello-green-b": True, "hello-green-c": True}
    timeline.record_slice(10.9, "MODIFIED", endpoint_slice("s2", all_ready))
    return timeline


def test_a_promotion_is_timed_from_the_watch_events() -> None:
    seen = analyse_round(promotion(preview_before_switch=True), changed=10.0, replicas=3)
    assert seen == Round(changed=10.0, switched=11.0, pods_ready=10.7, preview_ready=10.9)
    assert not seen.switched_before_preview_listed_all


def test_a_switch_before_the_preview_lists_every_new_pod_is_flagged() -> None:
    seen = analyse_round(promotion(preview_before_switch=False), changed=10.0, replicas=3)
    assert seen is not None and seen.switched_before_preview_listed_all
    # ... and left out of "preview ready -> switched", which it would make negative.
    rounds = [
        {
            "changed": 10.0,
            "switched": seen.switched,
            "pods_ready": seen.pods_ready,
            "preview_ready": seen.preview_ready,
        }
    ]
    assert latencies_ms(rounds, "preview_ready") == []
    assert (
        switch_measures(
            [*rounds, {"changed": 0.0, "switched": 2.0, "pods_ready": 1.0, "preview_ready": 1.0}]
        )["switched before the preview's EndpointSlices listed every new pod"]
        == "1 of 2"
    )


def test_no_round_until_the_active_service_moves() -> None:
    timeline = promotion(preview_before_switch=True)
    timeline.selector.pop()
    assert analyse_round(timeline, changed=10.0, replicas=3) is None


def test_pods_from_before_the_change_are_not_new_pods() -> None:
    timeline = promotion(preview_before_switch=True)
    # A green pod left from an earlier round, Ready long ago and listed in the preview.
    timeline.record_pod(1.0, "ADDED", pod("hello-green-stale", GREEN, ready=True))
    timeline.record_slice(1.0, "ADDED", endpoint_slice("s0", {"hello-green-stale": True}))
    seen = analyse_round(timeline, changed=10.0, replicas=3)
    assert seen is not None and seen.preview_ready == 10.9 and seen.pods_ready == 10.7


# Two lines of kube-controller-manager's log as it writes them, and one of another controller.
CONTROLLER_MANAGER_LOG = [
    'I1204 04:48:35.538829   12489 endpointslice_controller.go:358] "Error syncing endpoint'
    ' slices for service, retrying" key="shop/hello-preview" err="EndpointSlice informer'
    ' cache is out of date"\n',
    'I1204 04:48:36.1   12489 endpointslice_controller.go:358] "Error syncing endpoint'
    ' slices for service, retrying" key="shop/other" err="EndpointSlice informer cache is'
    ' out of date"\n',
    'I1204 04:48:37.000001   12489 replica_set.go:1] "Error syncing endpoint slices for'
    ' service, retrying" key="shop/hello-preview"\n',
]


def test_the_endpointslice_controllers_retries_of_one_service_are_read_from_its_log() -> None:
    (retry,) = slice_retries(CONTROLLER_MANAGER_LOG, "shop/hello-preview", 2026)
    local = time.mktime(time.strptime("20261204 04:48:35", "%Y%m%d %H:%M:%S"))
    assert retry == pytest.approx(local + 0.538829)


def test_a_round_counts_the_retries_between_its_change_and_its_switch() -> None:
    seen = analyse_round(
        promotion(preview_before_switch=True), changed=10.0, replicas=3, retries=[9.0, 10.8]
    )
    assert seen is not None and seen.slice_retries == 1


def test_the_controllers_share_is_told_apart_from_the_switch() -> None:
    rounds = [
        {"changed": 0.0, "pods_ready": 1.0, "preview_ready": 1.01, "switched": 1.03},
        {
            "changed": 0.0,
            "pods_ready": 1.0,
            "preview_ready": 1.95,
            "switched": 1.97,
            "slice_retries": 1,
        },
    ]
    found = controller_measures(rounds)
    assert found["new pods all Ready → preview's EndpointSlices list them, max (ms)"] == (
        pytest.approx(950)
    )
    assert found["rounds in which the EndpointSlice controller requeued the preview"] == "1 of 2"
    assert found["new pods all Ready → prod switched, p90 of the other rounds (ms)"] == (
        pytest.approx(30)
    )


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(10, 0, -1)]
    assert (percentile(values, 50), percentile(values, 90), percentile(values, 100)) == (5, 9, 10)
    assert percentile([7.0], 50) == 7.0


def results(switched: float, healthy: float, get_list_after_restart: int) -> dict[str, Any]:
    no_requests: dict[str, int] = {}
    return {
        "rounds": [{"changed": 0.0, "switched": switched, "pods_ready": 0.1, "preview_ready": 0.2}],
        "scale_200": {
            "apps": 200,
            "seconds_to_all_healthy": healthy,
            "cpu_seconds_to_converge": 5.0,
            "rss_mib_converged": 80.0,
            "settle_seconds": 30,
            "requests_settling": {"events": 900, "get": 3},
            "idle_seconds": 60,
            "requests_idle": no_requests,
            "restart_seconds": 30,
            "requests_after_restart": {"get": get_list_after_restart, "watch": 5},
            "resync_seconds": 20,
            "resync_periods": 3,
            "requests_resyncing": {"get": 90, "list": 3},
        },
    }


def test_the_table_has_one_row_per_measure_with_ours_over_argos_ratio() -> None:
    ours = results(switched=0.25, healthy=20.0, get_list_after_restart=6000)
    argo = results(switched=0.21, healthy=40.0, get_list_after_restart=0)
    table = {measure: (o, a) for measure, o, a in rows({"ours": ours, "argo": argo})}
    assert table["preview endpoints all ready → prod switched, p50 (ms)"] == pytest.approx((50, 10))
    assert table["200 apps created → all healthy (s)"] == (20.0, 40.0)
    assert table["writes in the 30 s after all healthy, 200 apps"] == (900, 900)
    assert table["GET/LIST per resync (20 s period), 200 apps"] == (31, 31)
    text = markdown(rows({"ours": ours, "argo": argo})).splitlines()
    assert "| 200 apps created → all healthy (s) | 20.0 | 40.0 | 0.50x |" in text
    # Argo's 0 gives no ratio rather than a division by zero.
    assert "| GET/LIST in the 30 s after a restart, 200 apps | 6,000 | 0 | — |" in text


def test_a_controller_that_did_not_run_shows_dashes() -> None:
    ours = results(switched=0.25, healthy=20.0, get_list_after_restart=6000)
    text = markdown(rows({"ours": ours}))
    assert "| 200 apps created → all healthy (s) | 20.0 | — | — |" in text


def test_a_failed_scenario_leaves_dashes_and_is_named() -> None:
    ours = results(switched=0.25, healthy=20.0, get_list_after_restart=6000)
    ours["scale_1000"] = {"error": "AssertionError('timed out')"}
    table = {measure: o for measure, o, _ in rows({"ours": ours})}
    assert table["200 apps created → all healthy (s)"] == 20.0
    assert not any(label.startswith("1,000 apps") for label in table)
    assert failures({"ours": ours}) == ["ours scale_1000 failed: AssertionError('timed out')"]


def test_where_a_controllers_switches_spent_their_time_sits_under_the_mean() -> None:
    ours = results(switched=0.25, healthy=20.0, get_list_after_restart=0)
    ours["switch_stages"] = {"queued": 0.4, "planned": 1.5, "written": 2.1}
    argo = results(switched=0.21, healthy=40.0, get_list_after_restart=0)
    table = rows({"ours": ours, "argo": argo})
    labels = [label for label, _, _ in table]
    mean = labels.index("preview endpoints all ready → prod switched, mean (ms)")
    assert labels[mean + 1 : mean + 4] == [
        "… of which the event's wait for a pass (mean, ms)",
        "… the pass up to the switch request (mean, ms)",
        "… the switch request to its answer (mean, ms)",
    ]
    found = {label: (o, a) for label, o, a in table}
    assert found[labels[mean]] == pytest.approx((50, 10))
    assert found[labels[mean + 2]] == (1.5, None)  # Argo Rollouts does not say
