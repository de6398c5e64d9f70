"""Fixtures for tests that need the local control plane (hack/cluster.sh).

Only tests that request ``kube_cluster`` or ``namespace`` touch a cluster; unit tests
run without one.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from kubehelpers import KubeCluster, dns_label, wait_for

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SH = REPO / "hack" / "cluster.sh"
BUILD_SH = REPO / "hack" / "build-control-plane.sh"
BUILD_ARGOCD_SH = REPO / "hack" / "build-argocd.sh"
CLUSTER_DIR = REPO / ".cluster"


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=REPO, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    """The `make cluster` control plane if it is up; otherwise one started for this session
    (and stopped at its end)."""
    started = False
    if _run(CLUSTER_SH, "status").returncode != 0:
        if _run(BUILD_SH, "--print-bin-dir").returncode != 0:
            pytest.fail("the control-plane binaries are not built: run `make binaries` first")
        # Only a session that found no control plane at all tears its own down again.
        started = not (CLUSTER_DIR / "kubeconfig").exists()
        up = _run(CLUSTER_SH, "up")
        if up.returncode != 0:
            if started:
                _run(CLUSTER_SH, "down")
            pytest.fail(f"hack/cluster.sh up failed:\n{up.stderr}")
    cluster = KubeCluster(
        kubeconfig=CLUSTER_DIR / "kubeconfig",
        bin_dir=Path((CLUSTER_DIR / "bin-dir").read_text().strip()),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(cluster.kubeconfig))
        mp.setenv("PATH", f"{cluster.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        yield cluster
    if started:
        _run(CLUSTER_SH, "down")


@pytest.fixture(scope="session")
def argocd_bin() -> Path:
    """The directory of the `argocd` binary built by hack/build-argocd.sh (`make argocd`,
    which `make test` runs first), with the CRDs and config of the same Argo CD version."""
    found = _run(BUILD_ARGOCD_SH, "--print-bin-dir")
    if found.returncode != 0:
        pytest.fail("Argo CD is not built: run `make argocd` first")
    return Path(found.stdout.strip())


@pytest.fixture
def namespace(kube_cluster: KubeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, with its default ServiceAccount ready;
    deleted afterwards (without waiting for it to terminate)."""
    name = dns_label(request.node.name)
    with kube_cluster.api_client() as api:
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name, "labels": {"bluegreen.test/e2e": "1"}}})
        wait_for(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=30,
            what=f"the default ServiceAccount of namespace {name}",
        )
        try:
            yield name
        finally:
            try:
                core.delete_namespace(name)
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:
                    raise
