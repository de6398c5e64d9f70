"""`make run`, as the README tells a new user: the operator in the foreground takes an app
through create → preview → promote → rollback."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from driver import Driver
from kubehelpers import KubeCluster, wait_for
from specs import hello, template

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


CRD = "customresourcedefinition/bluegreenapps.bluegreen.dev"


@pytest.fixture
def make_run(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    yield from _make_run(kube_cluster, namespace, tmp_path / "make-run.log")


@pytest.fixture
def first_make_run(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`make run` as a new user's first one: the CRD not installed yet (this deletes it, and
    with it every BlueGreenApp in the cluster: the e2e tests run one at a time)."""
    subprocess.run(["kubectl", "delete", CRD, "--ignore-not-found", "--wait=true"], check=True)
    log = tmp_path / "make-run.log"
    for proc in _make_run(kube_cluster, namespace, log):
        yield proc, log


def _make_run(
    kube_cluster: KubeCluster, namespace: str, log: Path
) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"ARGS=--namespace {namespace}"],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "KUBECONFIG": str(kube_cluster.kubeconfig)},
            start_new_session=True,  # its own process group: make, the script, the operator
        )
    try:
        wait_for(
            lambda: "watching BlueGreenApps in" in log.read_text(),
            timeout=120,
            what=f"make run to start the operator; its output:\n{log.read_text()}",
        )
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        print(f"--- make run ---\n{log.read_text()[-3000:]}")


def test_make_run_serves_a_release_on_the_current_cluster(
    make_run: subprocess.Popen[str], driver: Driver, namespace: str
) -> None:
    driver.create_app(namespace, "hello", hello())
    driver.wait_app(namespace, "hello", phase="Healthy", activeColor="blue")

    driver.patch_spec(namespace, "hello", {"template": template("v2")})
    driver.wait_app(namespace, "hello", phase="Paused", previewColor="green")

    driver.patch_spec(namespace, "hello", {"promote": True})
    driver.wait_app(namespace, "hello", phase="Healthy", activeColor="green")

    driver.patch_spec(namespace, "hello", {"template": template("v1")})  # rollback
    driver.wait_app(namespace, "hello", phase="Healthy", activeColor="blue")
    assert make_run.poll() is None  # still serving in the foreground


def test_a_first_make_run_logs_no_error(
    first_make_run: tuple[subprocess.Popen[str], Path], driver: Driver, namespace: str
) -> None:
    """The first thing a new user sees: the CRD installed by `make run` itself, and the
    operator starting while the API server still initialises its storage."""
    proc, log = first_make_run
    driver.create_app(namespace, "hello", hello())
    driver.wait_app(namespace, "hello", phase="Healthy", activeColor="blue")
    errors = [line for line in log.read_text().splitlines() if " ERROR " in line]
    assert not errors
    assert proc.poll() is None
