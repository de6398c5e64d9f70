"""Faults and load the operator must ride out, on the real control plane: the API server
unreachable for a while, a flood of apps in another namespace, children deleted or edited
by hand. Each test prints the time it measured (run with ``-s`` to see it)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes
import pytest
import yaml

from driver import Driver, pause
from kubehelpers import KubeCluster, dns_label, wait_for
from operator_process import OperatorProcess
from specs import hello, template
from tcp_proxy import TcpProxy

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("bluegreen_crd")]

APP = "hello"
# Long enough for the retry delays (the queue's, Kopf's, urllib3's) to have grown well past
# the bound below, and for every connection of the operator to have died in a blackhole.
FAULT_SECONDS = 40
# The promise: a fault's end is noticed, and the release done, within seconds.
RECOVERY_SECONDS = 10
FLOOD = 500
# A one-app release takes 2-4 s on an idle machine (pods of the new color included); the
# flood without fair queueing delayed it by minutes.
RELEASE_DURING_FLOOD_SECONDS = 20
# Longer than any of these tests: only watch events can make the operator act in time.
NO_RESYNC = {"BLUEGREEN_RESYNC_SECONDS": "3600"}


def start(operators: list[OperatorProcess], op: OperatorProcess) -> OperatorProcess:
    operators.append(op)
    op.start()
    return op


# ---------------------------------------------------------------- the API server unreachable


def api_server_address(kubeconfig: Path) -> tuple[str, int]:
    (cluster,) = yaml.safe_load(kubeconfig.read_text())["clusters"]
    server = urlsplit(cluster["cluster"]["server"])
    assert server.hostname is not None and server.port is not None
    return server.hostname, server.port


def proxied_kubeconfig(kubeconfig: Path, port: int, path: Path) -> Path:
    """A copy of the kubeconfig that reaches the API server through 127.0.0.1:port."""
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("fault", ["refuse", "blackhole"])
def test_a_release_completes_within_seconds_of_the_api_server_coming_back(
    fault: str,
    kube_cluster: KubeCluster,
    driver: Driver,
    namespace: str,
    tmp_path: Path,
    operators: list[OperatorProcess],
) -> None:
    """Only the operator's connections fail (a proxy between it and the API server): the
    cluster goes on. A release is under way when the fault starts, and the user promotes it
    during the fault; once the API server answers again the switch follows within seconds.
    After a blackhole the connections it caught stay dead: only timeouts notice."""
    with TcpProxy(api_server_address(kube_cluster.kubeconfig)) as proxy:
        kubeconfig = proxied_kubeconfig(
            kube_cluster.kubeconfig, proxy.port, tmp_path / "proxied.kubeconfig"
        )
        env = {"KUBECONFIG": str(kubeconfig), **NO_RESYNC}
        start(operators, OperatorProcess(namespace, tmp_path / "operator.log", env=env))
        driver.create_app(namespace, APP, hello())
        driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")

        driver.patch_spec(namespace, APP, {"template": template("v2")})
        getattr(proxy, fault)()  # the fault starts while the operator works on the release
        pause(FAULT_SECONDS / 2)
        driver.patch_spec(namespace, APP, {"promote": True})
        pause(FAULT_SECONDS / 2)

        proxy.restore()
        restored = time.monotonic()
        driver.wait_app(
            namespace, APP, timeout=RECOVERY_SECONDS * 6, phase="Healthy", activeColor="green"
        )
        took = time.monotonic() - restored
        print(f"\n{fault}: released {took:.1f}s after the API server came back")
        assert driver.selector_color(namespace, APP) == "green"
        assert took < RECOVERY_SECONDS


# ---------------------------------------------------------------- a flood in another namespace


@pytest.fixture
def flood_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = dns_label("flood")
    with kube_cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name, "labels": {"bluegreen.test/e2e": "1"}}})
        try:
            yield name
        finally:
            core.delete_namespace(name)


def flood_manifest(count: int, path: Path) -> Path:
    """``count`` apps of another team at 0 replicas: all of the operator's work (children,
    status, Events) and none of the scheduler's or kubelet's."""
    apps = [
        {
            "apiVersion": "bluegreen.dev/v1alpha1",
            "kind": "BlueGreenApp",
            "metadata": {"name": f"bulk-{i}"},
            "spec": hello(replicas=0),
        }
        for i in range(count)
    ]
    path.write_text(yaml.safe_dump_all(apps))
    return path


def healthy_count(driver: Driver, namespace: str) -> int:
    apps = driver.list("BlueGreenApp", namespace)
    return sum(1 for a in apps if (a.get("status") or {}).get("phase") == "Healthy")


def test_a_release_is_not_held_up_by_a_flood_of_apps_in_another_namespace(
    driver: Driver,
    namespace: str,
    flood_namespace: str,
    tmp_path: Path,
    operators: list[OperatorProcess],
) -> None:
    op = OperatorProcess(
        namespace, tmp_path / "operator.log", env=NO_RESYNC, more_namespaces=(flood_namespace,)
    )
    start(operators, op)
    driver.create_app(namespace, APP, hello(promote=True))
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")

    manifest = flood_manifest(FLOOD, tmp_path / "flood.yaml")
    flood = subprocess.Popen(
        ["kubectl", "create", "-f", str(manifest), "-n", flood_namespace, "-o", "name"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The operator is busy with the flood: some of it served, most of it waiting.
        wait_for(
            lambda: healthy_count(driver, flood_namespace) >= 10,
            timeout=120,
            what="the operator to work on the flood",
        )
        started = time.monotonic()
        driver.patch_spec(namespace, APP, {"template": template("v2")})
        driver.wait_app(namespace, APP, timeout=200, phase="Healthy", activeColor="green")
        took = time.monotonic() - started
        served = healthy_count(driver, flood_namespace)
    finally:
        _, errors = flood.communicate(timeout=300)
    print(f"\nreleased in {took:.1f}s during a flood of {FLOOD} apps ({served} served by then)")
    assert flood.returncode == 0, errors
    assert served < FLOOD, "the flood was over before the release: nothing was measured"
    assert took < RELEASE_DURING_FLOOD_SECONDS


# ---------------------------------------------------------------- children changed by hand


def service_type(driver: Driver, namespace: str, name: str) -> Any:
    svc = driver.get("Service", namespace, name)
    return None if svc is None else svc["spec"]["type"]


def test_services_and_ingresses_deleted_or_edited_by_hand_are_healed_within_seconds(
    driver: Driver, namespace: str, tmp_path: Path, operators: list[OperatorProcess]
) -> None:
    """With no resync for an hour, only watching the Services and Ingresses heals them."""
    start(operators, OperatorProcess(namespace, tmp_path / "operator.log", env=NO_RESYNC))
    ingress = {"host": "hello.example.com", "previewHost": "hello-preview.example.com"}
    driver.create_app(namespace, APP, hello(ingress=ingress))
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")
    preview = driver.get("Service", namespace, f"{APP}-preview")
    assert preview is not None

    driver.delete("Service", namespace, f"{APP}-preview")
    wait_for(
        lambda: (
            (driver.get("Service", namespace, f"{APP}-preview") or preview)["metadata"]["uid"]
            != preview["metadata"]["uid"]
        ),
        timeout=RECOVERY_SECONDS,
        what="the deleted preview Service to be recreated",
    )
    assert driver.selector_color(namespace, f"{APP}-preview") == "blue"

    driver.merge_patch("Service", namespace, APP, {"spec": {"type": "NodePort"}})
    wait_for(
        lambda: service_type(driver, namespace, APP) == "ClusterIP",
        timeout=RECOVERY_SECONDS,
        what="the prod Service's type edited by hand to be put back",
    )

    driver.delete("Ingress", namespace, f"{APP}-preview")
    wait_for(
        lambda: driver.get("Ingress", namespace, f"{APP}-preview"),
        timeout=RECOVERY_SECONDS,
        what="the deleted preview Ingress to be recreated",
    )
