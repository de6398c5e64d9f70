"""Gates on the real node: checks that need real HTTP (on kwok pods nothing answers).

The operator runs outside the cluster, so it sends its checks to the Services' node ports
on 127.0.0.1 (``--checks-via-node-port 127.0.0.1``), which the real node's kube-proxy
serves; the load goes to the prod Service's node port on 127.0.0.1 as in
test_real_traffic.py. The broken versions are the test server with FAIL_PATH (ready, but
500 on that path) and, for Job checks, EXIT_CODE (see hack/testserver).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from bluegreen.core.revision import revision_of

from driver import Driver
from kubehelpers import wait_for
from loadgen import LoadGenerator
from operator_process import OperatorProcess
from realnode import template
from traffic import deploy_v1, describe

Obj = dict[str, Any]

pytestmark = pytest.mark.e2e

RATE = 100
SMOKE = {
    "name": "smoke",
    "http": {
        "path": "/api",
        "intervalSeconds": 1,
        "successThreshold": 2,
        "failureThreshold": 2,
        "timeoutSeconds": 2,
    },
}


def degraded_reason(app: Obj) -> str | None:
    for cond in app["status"].get("conditions") or []:
        if cond["type"] == "Degraded" and cond["status"] == "True":
            return str(cond["reason"])
    return None


def wait_degraded(driver: Driver, namespace: str, reason: str, timeout: float = 90) -> Obj:
    def degraded() -> Obj | None:
        app = driver.app(namespace, "web")
        current = app["status"].get("observedGeneration") == app["metadata"]["generation"]
        return app if current and degraded_reason(app) == reason else None

    return wait_for(degraded, timeout=timeout, what=f"web Degraded ({reason})")


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def test_a_version_failing_a_checked_path_is_never_promoted_and_prod_loses_nothing(
    gated_operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    port = deploy_v1(driver, namespace, "web", checks=[SMOKE])
    old = driver.selector_color(namespace, "web")
    broken = template("v2", FAIL_PATH="/api")  # /healthz is fine: it gets ready

    with LoadGenerator("127.0.0.1", port, rate=RATE, max_seconds=120) as load:
        time.sleep(2)
        driver.patch_spec(namespace, "web", {"template": broken, "promote": True})
        app = wait_degraded(driver, namespace, "CheckFailed")
        time.sleep(3)  # and it stays so: no switch after the verdict either
    run = load.run

    print(describe(run), app["status"]["message"])
    assert driver.selector_color(namespace, "web") == old
    assert not run.failures, describe(run)
    assert set(run.versions()) == {"v1"}, describe(run)
    status = app["status"]
    assert (status["phase"], status["activeColor"], status["previewColor"]) == (
        "Degraded",
        old,
        other(str(old)),
    )
    assert "check smoke failed" in status["message"] and "HTTP 500" in status["message"]
    [check] = status["checks"]
    assert (check["name"], check["stage"], check["state"]) == ("smoke", "preview", "Failed")
    assert check["failures"] == 2 and "failing v2" in check["message"]
    warnings = driver.events(namespace, "web", "CheckFailed")
    assert warnings and warnings[0]["type"] == "Warning", warnings
    assert not driver.events(namespace, "web", "Switched")


def test_a_version_passing_its_checks_is_promoted_and_verified(
    gated_operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    deploy_v1(driver, namespace, "web", checks=[SMOKE], scaleDownDelaySeconds=8)
    old = str(driver.selector_color(namespace, "web"))

    driver.patch_spec(namespace, "web", {"template": template("v2"), "promote": True})
    app = driver.wait_app(namespace, "web", timeout=90, phase="Healthy", activeColor=other(old))
    stages = {(c["stage"], c["state"]) for c in app["status"]["checks"]}
    assert ("preview", "Passed") in stages, app["status"]

    # after the window: verified, and only then is the old color scaled down
    def scaled_down() -> Obj | None:
        dep = driver.deployment(namespace, f"web-{old}")
        return dep if dep is not None and dep["spec"]["replicas"] == 0 else None

    wait_for(scaled_down, timeout=60, what=f"web-{old} scaled to 0")
    app = driver.app(namespace, "web")
    states = {(c["stage"], c["state"]) for c in app["status"]["checks"]}
    assert states == {("preview", "Passed"), ("prod", "Passed")}, app["status"]
    assert app["status"]["phase"] == "Healthy"


def test_a_version_failing_after_the_switch_is_switched_back_before_the_old_color_goes(
    gated_operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    """Each v2 pod answers /api twice, then 500: the preview's checks (2 requests in all)
    pass whatever pods they reach; prod is verified after the switch and switched back while
    v1 still runs. Three pods per color, as in the real-traffic tests: with fewer, a
    request was refused now and then on this busy machine, also before any switch."""
    port = deploy_v1(driver, namespace, "web", checks=[SMOKE])
    old = str(driver.selector_color(namespace, "web"))
    old_pods = {p["metadata"]["uid"] for p in driver.pods(namespace, f"bluegreen.dev/color={old}")}
    v2 = template("v2", FAIL_PATH="/api", FAIL_AFTER="2")
    switched = back = None

    with LoadGenerator("127.0.0.1", port, rate=RATE, max_seconds=150) as load:
        time.sleep(2)
        driver.patch_spec(
            namespace, "web", {"template": v2, "promote": True, "scaleDownDelaySeconds": 60}
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and back is None:
            color = driver.selector_color(namespace, "web")
            if switched is None and color == other(old):
                switched = load.elapsed()
            elif switched is not None and color == old:
                back = load.elapsed()
            time.sleep(0.1)
        time.sleep(5)  # and it stays back: the failed revision is not promoted again
    run = load.run

    print(describe(run), f"switched {switched} back {back}")
    assert switched is not None and back is not None, (switched, back)
    assert back - switched < 15, (switched, back)
    assert driver.selector_color(namespace, "web") == old
    app = wait_degraded(driver, namespace, "RolledBack", timeout=10)
    status = app["status"]
    assert (status["phase"], status["activeColor"]) == ("Degraded", old)
    assert status["rolledBackRevision"] == revision_of(v2)
    assert revision_of(v2) in status["message"] and "failed after the switch" in status["message"]
    # v1's pods were never scaled down nor replaced: the switch back needed no new pod
    still = {p["metadata"]["uid"] for p in driver.pods(namespace, f"bluegreen.dev/color={old}")}
    assert still == old_pods
    assert driver.deployment(namespace, f"web-{old}")["spec"]["replicas"] == 3  # type: ignore[index]
    assert len(driver.events(namespace, "web", "Switched")) == 2
    assert driver.events(namespace, "web", "RolledBack")
    assert not run.failures, describe(run)  # "/" kept answering on both versions
    assert {r.version for r in run.results if r.sent > back + 3} == {"v1"}, describe(run)


def job_check(exit_code: str) -> Obj:
    pod = template("check", EXIT_CODE=exit_code)
    pod["spec"].pop("terminationGracePeriodSeconds")
    container = pod["spec"]["containers"][0]
    for key in ("readinessProbe", "ports"):
        container.pop(key)
    return {"name": "db", "job": {"template": pod, "activeDeadlineSeconds": 120}}


def test_a_failing_job_check_blocks_the_switch_and_a_retry_runs_it_again(
    gated_operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    deploy_v1(driver, namespace, "web", replicas=1)
    old = driver.selector_color(namespace, "web")

    driver.patch_spec(
        namespace,
        "web",
        {"template": template("v2"), "promote": True, "checks": [job_check("1")]},
    )
    app = wait_degraded(driver, namespace, "CheckFailed")
    assert driver.selector_color(namespace, "web") == old
    assert "check db failed" in app["status"]["message"], app["status"]
    [job] = driver.list("Job", namespace, "bluegreen.dev/check=db")
    assert job["metadata"]["ownerReferences"][0]["name"] == "web"
    assert job["metadata"]["labels"]["bluegreen.dev/app"] == "web"
    assert job["status"].get("failed") == 1, job["status"]

    # a passing check, and a retry to run it: the failed run's Job goes, the new one passes
    driver.patch_spec(namespace, "web", {"checks": [job_check("0")], "retryChecks": 1})
    driver.wait_app(namespace, "web", timeout=90, phase="Healthy", activeColor=other(str(old)))

    def only_the_new_job() -> list[Obj] | None:
        jobs = driver.list("Job", namespace, "bluegreen.dev/check=db")
        current = [j for j in jobs if j["metadata"]["labels"]["bluegreen.dev/check-retry"] == "1"]
        return jobs if len(jobs) == 1 and current else None

    wait_for(only_the_new_job, timeout=30, what="the failed run's Job deleted")
