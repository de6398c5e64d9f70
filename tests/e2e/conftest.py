"""Fixtures for end-to-end tests of the operator on the local control plane."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import edge as proxy
import image as built_image
import incluster
import realnode
from driver import Driver
from image import Image
from kubehelpers import KubeCluster, wait_for
from operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"


@pytest.fixture(scope="session")
def driver(kube_cluster: KubeCluster) -> Iterator[Driver]:
    """Reads and writes objects the way a user (or a GitOps tool) would."""
    with kube_cluster.api_client() as api:
        yield Driver(api)


@pytest.fixture(scope="session")
def bluegreen_crd(kube_cluster: KubeCluster, driver: Driver) -> None:
    """The BlueGreenApp CRD from crds/, applied and established (idempotent)."""
    subprocess.run(
        ["kubectl", "apply", "--server-side", "-f", str(CRDS)], check=True, capture_output=True
    )
    wait_for(driver.crd_established, timeout=30, what="the BlueGreenApp CRD to be established")


@pytest.fixture(scope="session")
def real_node(kube_cluster: KubeCluster) -> Iterator[None]:
    """The real node, started for this session (and removed at its end) unless it was up."""
    reason = realnode.unsupported_reason()
    if reason:
        pytest.skip(f"this host cannot run a real node: {reason}")
    started = realnode.up()
    yield
    if started:
        realnode.down()


@pytest.fixture(scope="session")
def gateway_api(kube_cluster: KubeCluster) -> None:
    """The Gateway API CRDs installed (they stay: the proxy's tests install them too)."""
    proxy.install_crds()


@pytest.fixture(scope="session")
def edge(real_node: None) -> Iterator[proxy.Edge]:
    """The proxy (Traefik, hack/edge.sh) in front of the real node's pods, started for this
    session (and stopped at its end) unless it was up."""
    started_edge, started = proxy.up()
    yield started_edge
    if started:
        proxy.down()


@pytest.fixture(scope="session")
def image() -> Image:
    """The operator's image as `make image` builds it (built here when missing)."""
    reason = built_image.unbuildable_reason()
    if reason:
        pytest.skip(reason)
    return built_image.built()


@pytest.fixture(scope="session")
def helm() -> Path:
    """Helm, from its pinned module (hack/build-go-tool.sh helm)."""
    return incluster.helm_binary()


@pytest.fixture(scope="module")
def installable(kube_cluster: KubeCluster, real_node: None, image: Image) -> Image:
    """What an install of the operator in the cluster needs: the real node, the image on it,
    no previous install's namespace left. Returns the image."""
    incluster.prepare(image)
    return image


@pytest.fixture
def operator_pod_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """The operator pods' logs (of an install in-cluster), printed when the test failed."""
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(incluster.pod_logs(incluster.SYSTEM))


@pytest.fixture
def operators(request: pytest.FixtureRequest) -> Iterator[list[OperatorProcess]]:
    """Operators the test starts (append them): stopped afterwards, each log printed when
    the test failed."""
    started: list[OperatorProcess] = []
    yield started
    for op in started:
        op.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(f"--- operator log ({op.log_path}) ---\n{op.tail(200)}")


@pytest.fixture
def operator(
    bluegreen_crd: None, namespace: str, tmp_path: Path, operators: list[OperatorProcess]
) -> OperatorProcess:
    """The operator, watching only this test's namespace."""
    op = OperatorProcess(namespace, tmp_path / "operator.log")
    operators.append(op)
    op.start()
    return op


@pytest.fixture
def gated_operator(
    real_node: None,
    bluegreen_crd: None,
    namespace: str,
    tmp_path: Path,
    operators: list[OperatorProcess],
) -> OperatorProcess:
    """The operator, sending its checks through the node ports on 127.0.0.1."""
    args = ("--checks-via-node-port", "127.0.0.1")
    op = OperatorProcess(namespace, tmp_path / "operator.log", args=args)
    operators.append(op)
    op.start()
    return op


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
