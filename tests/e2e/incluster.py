"""The operator installed the way users install it, running as pods on the real node: the
image `make image` built, imported into the node's containerd, and an install (kustomize
overlay of deploy/, or the Helm chart) whose pods are placed on the real node. What the
tests read of it: its pods, the Lease, the kubelet's probe results, its metrics scraped
through the metrics Service's endpoints."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml

import realnode
from driver import Driver
from image import Image
from kubehelpers import wait_for

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = REPO / "charts" / "bluegreen-operator"
RELEASE = "bluegreen-operator"
SYSTEM = "bluegreen-system"
NAME = "bluegreen-operator"
METRICS_SERVICE = "bluegreen-operator-metrics"
PUBLIC_IMAGE = "ghcr.io/bluegreen-operator/bluegreen-operator"
POLICY = "bluegreenapps.bluegreen.dev-workload-rights"
# What deploy/README.md tells users to delete to uninstall (every object but the CRD).
UNINSTALL = (
    f"clusterrolebinding/{NAME}",
    f"clusterrole/{NAME}",
    f"validatingadmissionpolicybinding/{POLICY}",
    f"validatingadmissionpolicy/{POLICY}",
    f"namespace/{SYSTEM}",
)
# Where a pod lands on the real node: its label and taint (hack/real-node.sh). Every other
# pod lands on the kwok nodes, which run nothing.
ON_REAL_NODE: Obj = {
    "nodeSelector": {realnode.NODE_LABEL: "true"},
    "tolerations": [{"key": realnode.NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}


def kubectl(*args: str, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", *args], input=stdin, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def namespace_gone_or_active(name: str) -> bool:
    found = subprocess.run(
        ["kubectl", "get", "namespace", name, "-o", "jsonpath={.status.phase}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.returncode != 0 or found.stdout == "Active"


def namespace_gone(name: str) -> bool:
    found = subprocess.run(
        ["kubectl", "get", "namespace", name], capture_output=True, text=True, check=False
    )
    return found.returncode != 0 and "NotFound" in found.stderr


def prepare(image: Image) -> None:
    """Before an install: a previous one's namespace gone, and what other tests' `kubectl
    apply` of deploy/ left cluster-wide (Helm refuses to adopt objects it did not make);
    the image on the real node."""
    kubectl("delete", *UNINSTALL, "--ignore-not-found", "--wait=false")
    wait_for(lambda: namespace_gone(SYSTEM), timeout=120, what=f"namespace {SYSTEM} to go")
    load_image(image)


def wait_leading(driver: Driver) -> list[Obj]:
    """Two Ready operator pods, one of them holding the Lease; returns them."""
    pods = wait_for(lambda: ready_pods(driver, 2), timeout=120, what="two Ready operator pods")
    wait_for(
        lambda: lease_holder(driver) in {p["metadata"]["name"] for p in pods},
        timeout=60,
        what="one of them to hold the Lease",
    )
    return pods


def running_the_image(driver: Driver, image: Image) -> list[Obj]:
    """The two operator pods, asserted to run the image on the real node, never restarted,
    one of them leading; returns them."""
    pods = ready_pods(driver, 2)
    assert pods is not None
    for pod in pods:
        assert pod["spec"]["nodeName"] == "real-node"
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == NAME
        (status,) = pod["status"]["containerStatuses"]
        assert status["image"] == image.tag and status["imageID"], status
        assert status["restartCount"] == 0, status
    assert lease_holder(driver) in {p["metadata"]["name"] for p in pods}
    return pods


def load_image(image: Image) -> None:
    """The image into the real node's containerd (no registry to pull it from)."""
    result = subprocess.run(
        [str(realnode.REAL_NODE_SH), "import-image", str(image.archive)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def kustomize_overlay(directory: Path, image: Image) -> Path:
    """An overlay of deploy/ as a user writes one: the image set to the one built here.
    And what only this test cluster needs: the pods placed on the real node."""
    directory.mkdir(parents=True, exist_ok=True)
    name, _, tag = image.tag.rpartition(":")
    placement = [
        {"op": "add", "path": f"/spec/template/spec/{key}", "value": value}
        for key, value in ON_REAL_NODE.items()
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes relative paths only.
        "resources": [os.path.relpath(DEPLOY, directory)],
        "images": [{"name": PUBLIC_IMAGE, "newName": name, "newTag": tag}],
        "patches": [
            {
                "target": {"kind": "Deployment", "name": NAME},
                "patch": yaml.safe_dump(placement),
            }
        ],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def uninstall() -> None:
    """The documented uninstall, waited for: the pods stopped by the kubelet, the namespace
    gone (the next install, or the node's `down`, finds nothing running)."""
    kubectl("delete", *UNINSTALL, "--ignore-not-found", "--wait=false")
    wait_for(lambda: namespace_gone(SYSTEM), timeout=120, what=f"namespace {SYSTEM} to go")


def operator_pods(driver: Driver) -> list[Obj]:
    """The operator's pods that are not being deleted, by name."""
    pods = driver.pods(SYSTEM, f"app.kubernetes.io/name={NAME}")
    return sorted(
        (p for p in pods if not p["metadata"].get("deletionTimestamp")),
        key=lambda p: str(p["metadata"]["name"]),
    )


def is_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_pods(driver: Driver, count: int) -> list[Obj] | None:
    """The operator's pods once exactly ``count`` are Running and Ready."""
    pods = operator_pods(driver)
    ok = len(pods) == count and all(
        p["status"].get("phase") == "Running" and is_ready(p) for p in pods
    )
    return pods if ok else None


def lease_holder(driver: Driver) -> str | None:
    lease = driver.get("Lease", SYSTEM, NAME)
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def scrape_through_the_service(driver: Driver) -> dict[str, str]:
    """/metrics of every endpoint of the metrics Service, as Prometheus discovers them
    (its EndpointSlices, ready or not), fetched through the API server's proxy to each
    endpoint's pod and port; by pod name."""
    out = {}
    selector = f"kubernetes.io/service-name={METRICS_SERVICE}"
    for endpoint_slice in driver.list("EndpointSlice", SYSTEM, selector):
        (port,) = endpoint_slice.get("ports") or []
        for endpoint in endpoint_slice.get("endpoints") or []:
            pod = endpoint["targetRef"]["name"]
            path = f"/api/v1/namespaces/{SYSTEM}/pods/{pod}:{port['port']}/proxy/metrics"
            out[pod] = kubectl("get", "--raw", path)
    return out


def gauge(exposition: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", exposition, re.MULTILINE)
    assert match, f"no {name} in the metrics"
    return float(match.group(1))


def probe_results(pod: str) -> dict[tuple[str, str], float]:
    """The kubelet's own count of the probes it ran on the pod's container, from its
    /metrics/probes endpoint: {(probe type, result): count}. Asked with the admin's client
    certificate, which the kubelet accepts (it trusts the cluster CA)."""
    kubelet = yaml.safe_load((realnode.NODE_DIR / "kubelet.yaml").read_text())
    pki = REPO / ".cluster" / "pki"
    context = ssl.create_default_context()
    context.check_hostname = False
    # The kubelet's serving certificate is self-signed: what is asserted is what it counts.
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    url = f"https://127.0.0.1:{kubelet['port']}/metrics/probes"
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        text = response.read().decode()
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("prober_probe_total{") and f'pod="{pod}"' in line:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (labels["probe_type"], labels["result"])
            counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def pod_logs(namespace: str) -> str:
    """The containers' logs the kubelet wrote on the real node (`kubectl logs` cannot reach
    this kubelet by the node's name), for a failed test's report."""
    logs_dir = realnode.NODE_DIR / "pod-logs"
    parts = []
    for log in sorted(logs_dir.glob(f"{namespace}_*/*/*.log")):
        text = log.read_text(errors="replace")
        parts.append(f"--- {log.relative_to(logs_dir)} ---\n{text[-6000:]}")
    return "\n".join(parts)


def helm_binary() -> Path:
    """The helm binary (built when missing: a few minutes, cached after)."""
    result = subprocess.run(
        [str(REPO / "hack" / "build-go-tool.sh"), "helm"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1]) / "helm"


def run_helm(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stderr}")
    return result
