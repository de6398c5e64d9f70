"""/metrics and /readyz of a real operator process on the local control plane, scraped
before, during and after a release."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from driver import Driver
from kubehelpers import wait_for
from operator_process import OperatorProcess
from specs import hello, template

pytestmark = pytest.mark.e2e

APP = "hello"
# One watch per kind the operator follows (the apps, seven child kinds and the Gateways its
# routes name), in its namespace. Without the Gateway API CRDs the HTTPRoute and Gateway
# watches count as listed (a 404 listing: nothing to wait for).
WATCHES = 9
WRITE_LINE = re.compile(r"bluegreen\.runtime\.reconciler: \S+: (\w+) ")


@pytest.fixture
def op(
    bluegreen_crd: None, namespace: str, tmp_path: Path, operators: list[OperatorProcess]
) -> OperatorProcess:
    op = OperatorProcess(namespace, tmp_path / "operator.log", endpoints=True)
    operators.append(op)
    op.start()
    return op


def delta(after: dict[str, float], before: dict[str, float], series: str) -> float:
    return after.get(series, 0.0) - before.get(series, 0.0)


def updates_logged(op: OperatorProcess) -> int:
    """Writes the operator logged that are PUTs (everything but create and delete)."""
    verbs = WRITE_LINE.findall(op.log_path.read_text())
    return sum(1 for verb in verbs if verb not in ("create", "delete"))


def test_the_leader_is_ready_once_its_watches_have_listed(op: OperatorProcess) -> None:
    _, body = wait_for(
        lambda: (answer := op.readiness())[0] == 200 and answer,
        timeout=30,
        what="readiness",
    )
    assert body == f"leading: {WATCHES} watches listed\n"
    assert op.scrape()["bluegreen_leader"] == 1


def test_a_release_moves_the_switch_counter_the_latencies_and_the_api_counters(
    driver: Driver, namespace: str, op: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello(promote=True))
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")
    created = op.scrape()
    assert created["bluegreen_switches_total"] == 0  # creating an app is no switch
    assert created['bluegreen_apps{phase="Healthy"}'] == 1
    assert created['bluegreen_api_requests_total{code="201",verb="POST"}'] >= 3  # blue, 2 Services

    started = time.monotonic()
    driver.patch_spec(namespace, APP, {"template": template("v2")})
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
    took = time.monotonic() - started
    driver.wait_replicas(namespace, "hello-blue", 0, timeout=30)  # the release is over
    released = op.scrape()

    assert released["bluegreen_switches_total"] == 1
    change = released["bluegreen_switch_after_change_seconds_sum"]
    ready = released["bluegreen_switch_after_ready_seconds_sum"]
    assert released["bluegreen_switch_after_change_seconds_count"] == 1
    assert released["bluegreen_switch_after_ready_seconds_count"] == 1
    # The release took place within what this test saw, and the switch after readiness
    # within the release.
    assert 0 < change < took, (change, took)
    assert 0 <= ready <= change
    # Passes: the new revision deployed, the switch, the scale-down at least.
    assert delta(released, created, "bluegreen_reconcile_duration_seconds_count") >= 3
    assert released["bluegreen_reconcile_duration_seconds_sum"] > 0
    errors = [k for k, v in released.items() if k.startswith("bluegreen_reconcile_errors") and v]
    assert not errors, errors
    # Every PUT the operator made is a write it logged (updates, the switch, scale-downs).
    assert released['bluegreen_api_requests_total{code="200",verb="PUT"}'] == updates_logged(op)
    assert delta(released, created, 'bluegreen_api_requests_total{code="201",verb="POST"}') >= 1
    assert released['bluegreen_api_request_duration_seconds_count{verb="GET"}'] == (
        released['bluegreen_api_requests_total{code="200",verb="GET"}']
        + released.get('bluegreen_api_requests_total{code="404",verb="GET"}', 0)
    )
    assert released['bluegreen_apps{phase="Healthy"}'] == 1
    for state in ("waiting", "running", "parked"):  # a pass may still run: Deployment events
        assert f'bluegreen_queue_apps{{state="{state}"}}' in released
    assert released["process_resident_memory_bytes"] > 0


def test_a_waiting_preview_shows_as_paused(
    driver: Driver, namespace: str, op: OperatorProcess
) -> None:
    driver.create_app(namespace, APP, hello())
    driver.create_app(namespace, "other", hello())
    driver.wait_app(namespace, APP, phase="Healthy")
    driver.wait_app(namespace, "other", phase="Healthy")
    driver.patch_spec(namespace, APP, {"template": template("v2")})
    driver.wait_app(namespace, APP, phase="Paused")

    scraped = op.scrape()
    assert scraped['bluegreen_apps{phase="Paused"}'] == 1
    assert scraped['bluegreen_apps{phase="Healthy"}'] == 1
    assert scraped["bluegreen_switches_total"] == 0
    assert scraped["bluegreen_switch_after_ready_seconds_count"] == 0

    driver.delete("BlueGreenApp", namespace, "other")
    wait_for(
        lambda: op.scrape()['bluegreen_apps{phase="Healthy"}'] == 0,
        timeout=30,
        what="the deleted app to leave the gauge",
    )
