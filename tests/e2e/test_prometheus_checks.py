"""Prometheus checks on the real node, with real traffic and a real Prometheus.

The Prometheus (hack/prometheus.sh) scrapes the test server's /metrics on every pod of the
real node, found by Kubernetes service discovery against the local API server, every 2 s.
The checks ask it for the error rate of exactly the pods under test (the app, namespace,
color and revision placeholders); the load goes to the prod Service's node port and, so
that the preview has metrics to judge, to the preview Service's. A version that fails a
fraction of its answers is the test server with FAIL_FRACTION (from its first answer) or
PUT /fault?fraction=F on its running pods (from that moment: see hack/testserver).
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_gates_on_real_node import degraded_reason, other, wait_degraded

from bluegreen.core.revision import revision_of

from driver import Driver
from kubehelpers import wait_for
from loadgen import LoadGenerator, Run
from operator_process import OperatorProcess
from realnode import REPO, template
from traffic import deploy_v1, describe

Obj = dict[str, Any]

pytestmark = pytest.mark.e2e

PROMETHEUS_SH = REPO / "hack" / "prometheus.sh"
RATE, PREVIEW_RATE = 100, 40
PODS = 'namespace="{{namespace}}",app="{{app}}",color="{{color}}",revision="{{revision}}"'
# The share of 5xx answers of the pods under test over the last 10 s. `or vector(0)`: a
# healthy version has no 5xx series at all, which is a rate of 0, not no data; with no
# requests at all the division has nothing to divide: no data.
ERROR_RATE = (
    f'(sum(rate(http_requests_total{{{PODS},code=~"5.."}}[10s])) or vector(0))'
    f" / sum(rate(http_requests_total{{{PODS}}}[10s]))"
)


def error_rate_check(address: str, **settings: Any) -> Obj:
    return {
        "name": "error-rate",
        "prometheus": {
            "address": address,
            "query": ERROR_RATE,
            "condition": "< 0.05",
            "intervalSeconds": 2,
            "successThreshold": 3,
            "failureThreshold": 2,
            "timeoutSeconds": 2,
            # the first seconds of a new pod have no rate yet: wait for data, count no failure
            "noData": "Wait",
            **settings,
        },
    }


@pytest.fixture(scope="session")
def prometheus(real_node: None) -> Iterator[str]:
    """The real Prometheus, for this session; its URL."""
    up = subprocess.run([PROMETHEUS_SH, "up"], capture_output=True, text=True, check=False)
    assert up.returncode == 0, f"hack/prometheus.sh up failed:\n{up.stderr}"
    yield up.stdout.strip().splitlines()[-1]
    subprocess.run([PROMETHEUS_SH, "down"], capture_output=True, check=False)


@pytest.fixture
def checked_operator(
    real_node: None,
    bluegreen_crd: None,
    namespace: str,
    tmp_path: Path,
    operators: list[OperatorProcess],
) -> OperatorProcess:
    """The operator, outside the cluster: HTTP checks through node ports, queries to the
    Prometheus on 127.0.0.1."""
    args = ("--checks-via-node-port", "127.0.0.1")
    op = OperatorProcess(namespace, tmp_path / "operator.log", args=args)
    operators.append(op)
    op.start()
    return op


def preview_port(driver: Driver, namespace: str) -> int:
    svc = wait_for(
        lambda: driver.get("Service", namespace, "web-preview"), timeout=10, what="web-preview"
    )
    return int(svc["spec"]["ports"][0]["nodePort"])


def set_fault(driver: Driver, namespace: str, color: str, fraction: float) -> None:
    """Flip the fault switch on every running pod of ``color`` (their IPs on the node's
    bridge are reachable from the host)."""
    pods = driver.pods(namespace, f"bluegreen.dev/app=web,bluegreen.dev/color={color}")
    assert pods, f"no {color} pods"
    for pod in pods:
        conn = http.client.HTTPConnection(pod["status"]["podIP"], 8080, timeout=2)
        try:
            conn.request("PUT", f"/fault?fraction={fraction}")
            response = conn.getresponse()
            assert response.status == 200, response.read()
            response.read()
        finally:
            conn.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # bound, never listening; closed once we return


def the_check(app: Obj, stage: str) -> Obj:
    [check] = [c for c in app["status"]["checks"] if c["stage"] == stage]
    return check


def prod_failures_before(run: Run, t: float) -> list[Any]:
    return [r for r in run.failures if r.sent < t]


def test_a_version_with_a_20_percent_error_rate_is_never_promoted_and_prod_loses_nothing(
    prometheus: str, checked_operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    port = deploy_v1(driver, namespace, "web", checks=[error_rate_check(prometheus)])
    old = driver.selector_color(namespace, "web")
    broken = template("v2", FAIL_FRACTION="0.2")  # ready, and 1 answer in 5 is a 500

    with (
        LoadGenerator("127.0.0.1", port, rate=RATE, max_seconds=150) as load,
        LoadGenerator("127.0.0.1", preview_port(driver, namespace), rate=PREVIEW_RATE) as preview,
    ):
        time.sleep(2)
        driver.patch_spec(namespace, "web", {"template": broken, "promote": True})
        app = wait_degraded(driver, namespace, "CheckFailed", timeout=120)
        time.sleep(3)  # and it stays so
    run = load.run

    print(describe(run), app["status"]["message"], describe(preview.run))
    assert driver.selector_color(namespace, "web") == old
    assert not run.failures, describe(run)
    assert set(run.versions()) == {"v1"}, describe(run)
    # the preview really answered 500 to about 1 in 5 of its requests: the metric is real
    served = [r for r in preview.run.results if r.version == "v2" or r.status == 500]
    assert served and 0.1 < sum(r.status == 500 for r in served) / len(served) < 0.3
    status = app["status"]
    assert (status["phase"], status["activeColor"], status["previewColor"]) == (
        "Degraded",
        old,
        other(str(old)),
    )
    assert "check error-rate failed" in status["message"], status["message"]
    check = the_check(app, "preview")
    assert (check["state"], check["failures"]) == ("Failed", 2), check
    assert 0.1 < float(check["value"]) < 0.3, check
    assert check["message"] == f"{check['value']} is not < 0.05", check
    assert not driver.events(namespace, "web", "Switched")


def test_a_healthy_version_passes_its_error_rate_check_and_is_promoted_and_verified(
    prometheus: str, checked_operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    checks = [error_rate_check(prometheus)]
    port = deploy_v1(driver, namespace, "web", checks=checks, scaleDownDelaySeconds=12)
    old = str(driver.selector_color(namespace, "web"))

    with (
        LoadGenerator("127.0.0.1", port, rate=RATE, max_seconds=150) as load,
        LoadGenerator("127.0.0.1", preview_port(driver, namespace), rate=PREVIEW_RATE),
    ):
        driver.patch_spec(namespace, "web", {"template": template("v2"), "promote": True})
        app = driver.wait_app(
            namespace, "web", timeout=120, phase="Healthy", activeColor=other(old)
        )
        passed = the_check(app, "preview")

        def scaled_down() -> Obj | None:
            dep = driver.deployment(namespace, f"web-{old}")
            return dep if dep is not None and dep["spec"]["replicas"] == 0 else None

        wait_for(scaled_down, timeout=60, what=f"web-{old} scaled to 0 after the window")
    run = load.run

    print(describe(run), passed)
    assert (passed["state"], passed["successes"]) == ("Passed", 3), passed
    assert float(passed["value"]) == 0.0, passed
    app = driver.app(namespace, "web")
    states = {(c["stage"], c["state"]) for c in app["status"]["checks"]}
    assert states == {("preview", "Passed"), ("prod", "Passed")}, app["status"]
    assert app["status"]["phase"] == "Healthy"
    assert len(driver.events(namespace, "web", "Switched")) == 1
    assert not run.failures, describe(run)


def test_a_version_failing_after_the_switch_is_switched_back_by_its_error_rate(
    prometheus: str, checked_operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    """v2 is healthy on the preview and promoted; right after the switch half its answers
    fail (the fault switch on its pods): the error-rate check against the new active color
    switches prod back while v1 still runs, and v2 is not promoted again, even healthy,
    until spec.retryChecks changes."""
    checks = [error_rate_check(prometheus)]
    port = deploy_v1(driver, namespace, "web", checks=checks)
    old = str(driver.selector_color(namespace, "web"))
    new = other(old)
    old_pods = {p["metadata"]["uid"] for p in driver.pods(namespace, f"bluegreen.dev/color={old}")}
    v2 = template("v2")
    switched = faulted = back = None

    with (
        LoadGenerator("127.0.0.1", port, rate=RATE, max_seconds=200) as load,
        LoadGenerator("127.0.0.1", preview_port(driver, namespace), rate=PREVIEW_RATE),
    ):
        time.sleep(2)
        driver.patch_spec(
            namespace, "web", {"template": v2, "promote": True, "scaleDownDelaySeconds": 90}
        )
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and back is None:
            color = driver.selector_color(namespace, "web")
            if switched is None and color == new:
                switched = load.elapsed()
                set_fault(driver, namespace, new, 0.5)
                faulted = load.elapsed()
            elif switched is not None and color == old:
                back = load.elapsed()
            time.sleep(0.1)
        time.sleep(5)  # and it stays back
    run = load.run

    print(describe(run), f"switched {switched} faulted {faulted} back {back}")
    assert switched is not None and faulted is not None and back is not None, (switched, back)
    print(f"switch to switch back: {back - switched:.1f}s (fault to back {back - faulted:.1f}s)")
    assert back - switched < 60, (switched, back)  # well within the 90 s window
    assert driver.selector_color(namespace, "web") == old
    app = wait_degraded(driver, namespace, "RolledBack", timeout=10)
    status = app["status"]
    assert (status["phase"], status["activeColor"]) == ("Degraded", old)
    assert status["rolledBackRevision"] == revision_of(v2)
    assert "check error-rate failed against prod" in status["message"], status["message"]
    failed = the_check(app, "prod")
    assert failed["state"] == "Failed" and float(failed["value"]) >= 0.05, failed
    # v1's pods were never scaled down nor replaced: the switch back needed no new pod
    still = {p["metadata"]["uid"] for p in driver.pods(namespace, f"bluegreen.dev/color={old}")}
    assert still == old_pods
    assert driver.deployment(namespace, f"web-{old}")["spec"]["replicas"] == 3  # type: ignore[index]
    assert len(driver.events(namespace, "web", "Switched")) == 2
    # before the switch nothing failed; the failures are v2's 500s while it served prod
    assert not prod_failures_before(run, switched), describe(run)
    assert {r.status for r in run.failures} <= {500}, describe(run)
    assert {r.version for r in run.results if r.ok and r.sent > back + 3} == {"v1"}

    # healthy again, and still not promoted: only a retry lets it through (after the 10 s
    # of the rate's window, so that the retry judges the healthy answers only)
    set_fault(driver, namespace, new, 0)
    time.sleep(12)
    assert driver.selector_color(namespace, "web") == old
    assert degraded_reason(driver.app(namespace, "web")) == "RolledBack"
    with (
        LoadGenerator("127.0.0.1", port, rate=RATE, max_seconds=120) as load,
        LoadGenerator("127.0.0.1", preview_port(driver, namespace), rate=PREVIEW_RATE),
    ):
        driver.patch_spec(namespace, "web", {"retryChecks": 1})
        driver.wait_app(namespace, "web", timeout=90, phase="Healthy", activeColor=new)
    assert not load.run.failures, describe(load.run)


def test_an_unreachable_prometheus_never_lets_a_version_pass(
    checked_operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    """Nothing listens at the address: under onError Wait the check waits (and says why),
    never passing; under Fail (the default) it fails."""
    nowhere = f"http://127.0.0.1:{closed_port()}"
    waits = error_rate_check(nowhere, onError="Wait")
    deploy_v1(driver, namespace, "web", replicas=1, checks=[waits])
    old = driver.selector_color(namespace, "web")

    driver.patch_spec(namespace, "web", {"template": template("v2"), "promote": True})

    def waiting() -> Obj | None:
        app = driver.app(namespace, "web")
        checks = [c for c in app["status"].get("checks") or [] if c["stage"] == "preview"]
        return app if checks and "(waiting)" in checks[0]["message"] else None

    app = wait_for(waiting, timeout=90, what="the check waiting on the unreachable server")
    time.sleep(8)  # several intervals: it goes on waiting, never passes
    app = driver.app(namespace, "web")
    check = the_check(app, "preview")
    print(check)
    assert driver.selector_color(namespace, "web") == old
    assert (check["state"], check["successes"], check["failures"]) == ("Running", 0, 0), check
    assert "no answer from " + nowhere in check["message"], check
    assert app["status"]["phase"] == "Progressing", app["status"]

    driver.patch_spec(namespace, "web", {"checks": [error_rate_check(nowhere)]})  # onError Fail
    app = wait_degraded(driver, namespace, "CheckFailed")
    check = the_check(app, "preview")
    assert (check["state"], check["failures"], check.get("value")) == ("Failed", 2, None), check
    assert "no answer from " + nowhere in check["message"], check
    assert driver.selector_color(namespace, "web") == old
    assert not driver.events(namespace, "web", "Switched")
