"""The operator as pods on the real node, installed as shipped: `kubectl apply -k` of an
overlay of deploy/ that sets only the image (the one `make image` built, imported into the
node's containerd) and, for this test cluster, places the pods on the real node. Two pods
run the image under containerd and runc, the kubelet probes them, they authenticate with
the projected ServiceAccount token through the `kubernetes` Service, elect a leader on the
Lease, serve metrics through the metrics Service, and hand over when the leader is deleted.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import incluster
import realnode
from driver import Driver
from image import Image
from incluster import NAME, SYSTEM, kubectl
from kubehelpers import wait_for
from specs import hello, template
from traffic import deploy_v1

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator_pod_logs")]

Obj = dict[str, Any]
# /var/run/secrets/kubernetes.io/serviceaccount, where the image's /var/run links to /run (an
# absolute link: through /proc/PID/root it would resolve on this host).
SA_MOUNT = "run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def installed(
    installable: Image, driver: Driver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[float]:
    """The install, up: two Ready pods and a Lease holder. Yields the seconds from
    `kubectl apply` to that; uninstalled (and waited for) afterwards."""
    directory = tmp_path_factory.mktemp("install") / "overlay"
    overlay = incluster.kustomize_overlay(directory, installable)
    start = time.monotonic()
    kubectl("apply", "-k", str(overlay), "--server-side")
    try:
        incluster.wait_leading(driver)
        yield time.monotonic() - start
    finally:
        incluster.uninstall()


def container_pid(pod: Obj) -> int:
    """The pid of the pod's operator process on this host, found by the pod's cgroup."""
    uid = pod["metadata"]["uid"]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroups = (proc / "cgroup").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"pod{uid}" in cgroups and any(b"bluegreen-operator" in a for a in cmdline[:2]):
            return int(proc.name)
    raise AssertionError(f"no process of pod {pod['metadata']['name']}")


def test_two_pods_run_the_built_image_as_its_user_on_a_read_only_root(
    installed: float, driver: Driver, image: Image
) -> None:
    print(f"kubectl apply -k to two Ready pods and a leader: {installed:.1f}s")
    for pod in incluster.running_the_image(driver, image):
        # What the kernel says of the process runc started.
        pid = container_pid(pod)
        proc_status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(r"^Uid:\s+65532\s+65532\s", proc_status, re.MULTILINE), proc_status
        assert re.search(r"^Gid:\s+65532\s", proc_status, re.MULTILINE), proc_status
        assert re.search(r"^CapEff:\s+0+$", proc_status, re.MULTILINE), proc_status
        assert re.search(r"^NoNewPrivs:\s+1$", proc_status, re.MULTILINE), proc_status
        (root_mount,) = [
            line.split()
            for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
            if line.split()[4] == "/"
        ]
        assert root_mount[5].split(",")[0] == "ro", root_mount
        # The image's interpreter, from the image's root (not this host's).
        root = Path(f"/proc/{pid}/root")
        assert (root / "opt/venv/bin/bluegreen-operator").is_file()
        assert not (root / "src").exists()


def test_the_kubelet_probes_pass_on_both_pods(installed: float, driver: Driver) -> None:
    """The kubelet's own counts: liveness probes (after their 10 s initial delay) all
    answered; readiness, once Ready, answered at every period since (the probes before the
    process listened fail, as they should: the pod is not ready then)."""
    pods = incluster.ready_pods(driver, 2)
    assert pods is not None
    names = [p["metadata"]["name"] for p in pods]

    def liveness_probed() -> bool:
        return all(incluster.probe_results(n).get(("Liveness", "successful"), 0) for n in names)

    wait_for(liveness_probed, timeout=60, interval=1, what="a liveness probe on each pod")
    before = {n: incluster.probe_results(n) for n in names}
    time.sleep(11)  # two readiness periods (5 s)
    for name in names:
        after = incluster.probe_results(name)
        assert after.get(("Liveness", "failed"), 0) == 0, after
        assert after.get(("Readiness", "failed"), 0) == before[name].get(("Readiness", "failed"), 0)
        ready_before = before[name].get(("Readiness", "successful"), 0)
        assert after.get(("Readiness", "successful"), 0) >= ready_before + 2, (before, after)


def jwt_claims(token: str) -> Obj:
    payload = token.split(".")[1]
    claims: Obj = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def test_the_pods_use_their_projected_token_and_release_an_app(
    installed: float, driver: Driver, namespace: str
) -> None:
    """In-cluster config: the token the kubelet projected into the pod, bound to it, and the
    API server reached through the `kubernetes` Service; the leader serves an app in a
    namespace of its choosing (the install watches every namespace)."""
    pods = incluster.ready_pods(driver, 2)
    assert pods is not None
    for pod in pods:
        (volume,) = pod["spec"]["volumes"]
        sources = [next(iter(s)) for s in volume["projected"]["sources"]]
        assert "serviceAccountToken" in sources, volume
        token = (Path(f"/proc/{container_pid(pod)}/root") / SA_MOUNT / "token").read_text()
        claims = jwt_claims(token)
        assert claims["sub"] == "system:serviceaccount:bluegreen-system:bluegreen-operator"
        assert claims["kubernetes.io"]["pod"]["name"] == pod["metadata"]["name"]
        env = {e["name"] for e in pod["spec"]["containers"][0].get("env") or []}
        assert "KUBECONFIG" not in env

    driver.create_app(namespace, "hello", hello())
    driver.wait_app(namespace, "hello", phase="Healthy", activeColor="blue")
    driver.patch_spec(namespace, "hello", {"template": template("v2"), "promote": True})
    driver.wait_app(namespace, "hello", phase="Healthy", activeColor="green")
    # The operator's Event, written after the switch.
    wait_for(
        lambda: len(driver.events(namespace, "hello", reason="Switched")) == 1,
        timeout=10,
        what="one Switched Event",
    )


SMOKE = {
    "name": "smoke",
    "http": {"path": "/api", "intervalSeconds": 1, "successThreshold": 2, "failureThreshold": 2},
}


def test_http_checks_reach_the_preview_by_its_cluster_dns_name(
    installed: float, driver: Driver, namespace: str
) -> None:
    """As in production: the operator pod sends its HTTP checks to
    `<app>-preview.<namespace>.svc` (no --checks-via-node-port), which the cluster DNS
    (CoreDNS) resolves and kube-proxy routes to the new pods. A version that answers 500 on
    the checked path fails with that answer (the request reached it); one that answers 200
    passes and is switched to."""
    deploy_v1(driver, namespace, "web", checks=[SMOKE])
    old = str(driver.selector_color(namespace, "web"))
    new = "green" if old == "blue" else "blue"
    broken = realnode.template("v2", FAIL_PATH="/api")
    driver.patch_spec(namespace, "web", {"template": broken, "promote": True})

    def check_failed() -> Obj | None:
        app = driver.app(namespace, "web")
        checks = app["status"].get("checks") or []
        return app if any(c["state"] == "Failed" for c in checks) else None

    app = wait_for(check_failed, timeout=90, what="the check of v2 to fail")
    (check,) = app["status"]["checks"]
    assert "HTTP 500" in check["message"] and "failing v2" in check["message"], check
    assert driver.selector_color(namespace, "web") == old

    driver.patch_spec(namespace, "web", {"template": realnode.template("v3")})
    app = driver.wait_app(namespace, "web", timeout=90, phase="Healthy", activeColor=new)
    stages = {(c["stage"], c["state"]) for c in app["status"]["checks"]}
    assert ("preview", "Passed") in stages, app["status"]


def leaders(driver: Driver) -> dict[str, float]:
    """bluegreen_leader of every endpoint of the metrics Service, by pod."""
    return {
        pod: incluster.gauge(text, "bluegreen_leader")
        for pod, text in incluster.scrape_through_the_service(driver).items()
    }


def test_one_pod_leads_and_both_serve_metrics_through_the_service(
    installed: float, driver: Driver
) -> None:
    pods = incluster.ready_pods(driver, 2)
    assert pods is not None
    names = {p["metadata"]["name"] for p in pods}
    holder = incluster.lease_holder(driver)
    assert holder in names
    seen = wait_for(lambda: (s := leaders(driver)) and set(s) == names and s, timeout=30)
    assert seen == {n: 1.0 if n == holder else 0.0 for n in names}


def test_deleting_the_leader_pod_hands_the_lease_to_the_other(
    installed: float, driver: Driver
) -> None:
    pods = incluster.ready_pods(driver, 2)
    assert pods is not None
    holder = incluster.lease_holder(driver)
    (standby,) = [p["metadata"]["name"] for p in pods if p["metadata"]["name"] != holder]
    start = time.monotonic()
    # As a drain or a rollout does: SIGTERM, the lease released, another pod takes it: the
    # standby, or the ReplicaSet's new pod when it starts before the standby's next try
    # (a free Lease goes to whoever asks first, as with client-go's election).
    kubectl("-n", SYSTEM, "delete", "pod", str(holder), "--wait=false")

    def new_holder() -> str | None:
        now = incluster.lease_holder(driver)
        return now if now not in (None, holder) else None

    try:
        leader = wait_for(new_holder, timeout=45, what="handover")
    except AssertionError as err:
        pods = [(p["metadata"]["name"], p["status"].get("phase")) for p in driver.pods(SYSTEM, "")]
        lease = driver.get("Lease", SYSTEM, NAME)
        raise AssertionError(f"{err}; the Lease: {lease}; the pods: {pods}") from err
    took = "the standby" if leader == standby else "the new pod"
    print(f"handover after the leader pod's deletion: {time.monotonic() - start:.1f}s to {took}")
    # The ReplicaSet's new pod joins: two Ready pods, the deleted one gone, one leader.
    pods = wait_for(lambda: incluster.ready_pods(driver, 2), timeout=120, what="two pods again")
    names = {p["metadata"]["name"] for p in pods}
    assert standby in names and holder not in names and leader in names
    assert incluster.lease_holder(driver) == leader
    seen = wait_for(lambda: (s := leaders(driver)) and set(s) == names and s, timeout=30)
    assert seen == {n: 1.0 if n == leader else 0.0 for n in names}
