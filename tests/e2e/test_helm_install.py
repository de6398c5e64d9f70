"""The operator installed by its Helm chart, running only as pods from the image on the
real node: `helm install` (the time to a leader is printed), releases under real traffic
that a leader's deletion or a `kubectl rollout restart` interrupts (no request lost, one
switch each), `helm upgrade` with a changed value (rolled out, the Lease handed over without
a lapse), `helm uninstall` (nothing left but the CRD and the operator's own Lease).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import incluster
import realnode
from driver import Driver, SelectorHistory
from image import Image
from incluster import CHART, NAME, RELEASE, SYSTEM, kubectl, run_helm
from kubehelpers import Sampler, wait_for
from loadgen import LoadGenerator, Run
from traffic import deploy_v1, describe

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator_pod_logs")]

Obj = dict[str, Any]
RATE = 100
SMOKE = {
    "name": "smoke",
    "http": {"path": "/", "intervalSeconds": 1, "successThreshold": 3, "failureThreshold": 3},
}


@pytest.fixture(scope="module")
def values(image: Image, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The values a user on this cluster would set: the image built here, and the real node
    for the pods."""
    name, _, tag = image.tag.rpartition(":")
    path = tmp_path_factory.mktemp("helm") / "values.yaml"
    path.write_text(
        yaml.safe_dump({"image": {"repository": name, "tag": tag}, **incluster.ON_REAL_NODE})
    )
    return path


@pytest.fixture(scope="module")
def installed(installable: Image, driver: Driver, helm: Path, values: Path) -> Iterator[float]:
    """`helm install`; yields the seconds to two Ready pods and a Lease holder. Afterwards
    uninstalled (when a test has not) and the namespace deleted, waited for."""
    start = time.monotonic()
    install = ("install", RELEASE, str(CHART), "-n", SYSTEM, "--create-namespace")
    run_helm(helm, *install, "-f", str(values))
    try:
        incluster.wait_leading(driver)
        yield time.monotonic() - start
    finally:
        run_helm(helm, "uninstall", RELEASE, "-n", SYSTEM, "--wait", check=False)
        kubectl("delete", "namespace", SYSTEM, "--ignore-not-found", "--wait=false")
        wait_for(lambda: incluster.namespace_gone(SYSTEM), timeout=120, what=f"{SYSTEM} to go")


def test_helm_install_runs_the_image_as_two_pods_one_leading(
    installed: float, driver: Driver, image: Image
) -> None:
    print(f"helm install to two Ready pods and a leader: {installed:.1f}s")
    incluster.running_the_image(driver, image)


def checking(driver: Driver, namespace: str) -> bool:
    """The new version's preview check is under way: the switch has not happened yet."""
    app = driver.app(namespace, "web")
    checks = app["status"].get("checks") or []
    return any(c["stage"] == "preview" and c["state"] == "Running" for c in checks)


def release_under_load(
    driver: Driver, namespace: str, port: int, version: str, interrupt: Any
) -> tuple[Run, list[str | None]]:
    """Release ``version`` (promote, with the HTTP check) under load; ``interrupt()`` runs
    while its check runs, before the switch. Returns the load's run and prod's colors."""
    old = str(driver.selector_color(namespace, "web"))
    new = "green" if old == "blue" else "blue"
    with (
        SelectorHistory(driver, namespace, "web") as history,
        LoadGenerator("127.0.0.1", port, rate=RATE, max_seconds=150) as load,
    ):
        time.sleep(2)
        driver.patch_spec(namespace, "web", {"template": realnode.template(version)})
        wait_for(lambda: checking(driver, namespace), timeout=90, what="the check")
        interrupt()
        driver.wait_app(namespace, "web", timeout=120, phase="Healthy", activeColor=new)
        time.sleep(3)
    return load.run, history.colors


def assert_one_clean_switch(run: Run, colors: list[str | None], old_color: str) -> None:
    """Prod's selector moved once, from old_color to the other; no request failed; v1
    answered, then v2, never v1 again."""
    print(describe(run), colors)
    new_color = "green" if old_color == "blue" else "blue"
    assert colors == [old_color, new_color], f"prod's selector went {colors}"
    assert not run.failures, describe(run)
    versions = run.versions()
    assert versions["v1"] > 0 and versions["v2"] > 0, describe(run)
    assert not run.went_back("v1", "v2"), run.went_back("v1", "v2")[:5]


def test_a_release_survives_the_leader_pods_deletion_with_one_switch_and_no_failed_request(
    installed: float, driver: Driver, namespace: str
) -> None:
    port = deploy_v1(driver, namespace, "web", checks=[SMOKE], promote=True)
    old = str(driver.selector_color(namespace, "web"))
    leader = str(incluster.lease_holder(driver))

    def delete_leader() -> None:
        kubectl("-n", SYSTEM, "delete", "pod", leader, "--wait=false")
        wait_for(
            lambda: incluster.lease_holder(driver) not in (None, "", leader),
            timeout=45,
            what="another pod to take the Lease",
        )

    run, colors = release_under_load(driver, namespace, port, "v2", delete_leader)
    assert_one_clean_switch(run, colors, old)
    assert len(driver.events(namespace, "web", reason="Switched")) == 1


def test_a_release_survives_a_rollout_restart_of_the_operator(
    installed: float, driver: Driver, namespace: str
) -> None:
    port = deploy_v1(driver, namespace, "web", checks=[SMOKE], promote=True)
    old = str(driver.selector_color(namespace, "web"))

    def restart() -> None:
        kubectl("-n", SYSTEM, "rollout", "restart", f"deployment/{NAME}")

    run, colors = release_under_load(driver, namespace, port, "v2", restart)
    kubectl("-n", SYSTEM, "rollout", "status", f"deployment/{NAME}", "--timeout=120s")
    assert_one_clean_switch(run, colors, old)
    wait_for(
        lambda: len(driver.events(namespace, "web", reason="Switched")) == 1,
        timeout=10,
        what="one Switched Event",
    )


class LeaseSampler(Sampler[str | None]):
    """The Lease's holder every 0.2 s, in a thread: how long it ever went without one."""

    def __init__(self) -> None:
        # kubectl, each read on a connection of its own with a deadline: a read stuck in
        # a client shared with the test would end the sampling unseen.
        super().__init__(self.holder, interval=0.2)

    @staticmethod
    def holder() -> str | None:
        lease = f"lease/{NAME}"
        read = ("-n", SYSTEM, "get", lease, "-o", "jsonpath={.spec.holderIdentity}")
        return kubectl(*read, "--request-timeout=2s").strip() or None

    def longest_without_holder(self) -> float:
        longest, since = 0.0, None
        for at, holder in zip(self.times, self.values, strict=True):
            if not holder:
                since = at if since is None else since
            elif since is not None:
                longest, since = max(longest, at - since), None
        return longest

    def holders(self) -> list[str]:
        out: list[str] = []
        for holder in self.values:
            if holder and (not out or out[-1] != holder):
                out.append(holder)
        return out


def test_helm_upgrade_rolls_a_changed_value_out_and_the_lease_never_lapses(
    installed: float, driver: Driver, helm: Path, values: Path
) -> None:
    before = {p["metadata"]["name"] for p in incluster.operator_pods(driver)}
    with LeaseSampler() as lease:
        run_helm(
            helm,
            "upgrade",
            RELEASE,
            str(CHART),
            "-n",
            SYSTEM,
            "-f",
            str(values),
            "--set",
            "extraArgs={--verbose}",
        )
        kubectl("-n", SYSTEM, "rollout", "status", f"deployment/{NAME}", "--timeout=180s")
        pods = incluster.wait_leading(driver)
        names = {p["metadata"]["name"] for p in pods}
        # and the sampler has seen it too (its last read may predate the handover)
        wait_for(lambda: lease.values and lease.values[-1] in names, timeout=10, what="a read")
    for pod in pods:
        assert "--verbose" in pod["spec"]["containers"][0]["args"]
        assert pod["metadata"]["name"] not in before
    assert len(lease.errors) <= 2, lease.errors
    gap = lease.longest_without_holder()
    print(f"leaders during the upgrade: {lease.holders()}; longest without one: {gap:.1f}s")
    # A leader stopping cleanly releases the Lease; a standby takes it within its retry
    # period (2 s): far from the 15 s a dead leader would leave it unrenewed.
    assert gap < 5, list(zip(lease.times, lease.values, strict=True))
    assert lease.holders()[-1] in names


def test_helm_uninstall_leaves_only_the_crd_and_the_lease(
    installed: float, driver: Driver, helm: Path
) -> None:
    run_helm(helm, "uninstall", RELEASE, "-n", SYSTEM, "--wait")
    wait_for(lambda: not incluster.operator_pods(driver), timeout=90, what="the pods to go")
    for kind in ("clusterrole", "clusterrolebinding"):
        assert not kubectl("get", kind, NAME, "--ignore-not-found", "-o", "name"), kind
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        found = kubectl("get", kind, incluster.POLICY, "--ignore-not-found", "-o", "name")
        assert not found, kind
    left = kubectl(
        "-n",
        SYSTEM,
        "get",
        "deployment,replicaset,serviceaccount,role,rolebinding,service,poddisruptionbudget,lease",
        "-l",
        "app.kubernetes.io/part-of=bluegreen-operator",
        "-o",
        "name",
    ).split()
    assert left == [], left
    assert kubectl("-n", SYSTEM, "get", "serviceaccount", NAME, "--ignore-not-found") == ""
    # The operator's own Lease (no chart object) and the CRD, with every app, stay.
    lease = kubectl("-n", SYSTEM, "get", "lease", NAME, "-o", "name").strip()
    assert lease == f"lease.coordination.k8s.io/{NAME}"
    assert kubectl("get", "crd", "bluegreenapps.bluegreen.dev", "-o", "name").strip()
