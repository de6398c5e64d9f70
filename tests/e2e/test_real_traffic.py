"""Real pods, real traffic: the zero-error switch under load, as users test it.

Pods run on the real node (hack/real-node.sh: containerd, runc, CNI bridge, kubelet,
kube-proxy) beside the kwok nodes; an open-loop load generator on the host sends every
request through kube-proxy and the prod Service's selector, to the Service's NodePort on
127.0.0.1 (load only ever goes to this machine's loopback). Every request is recorded.

These tests need root and host features (bridges, overlayfs, cgroups); without them they
skip with the reason.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any

import pytest

import loadgen
from driver import Driver
from kubehelpers import wait_for
from operator_process import OperatorProcess
from realnode import answer, node_port, template
from traffic import (
    assert_rolled_back_instantly,
    deploy_v1,
    describe,
    rollback_under_load,
    switch_under_load,
    unready_version_under_load,
)

Obj = dict[str, Any]

pytestmark = pytest.mark.e2e

# Modest: the machine has 2 cores shared by the control plane, the node, the operator,
# the pods and the generator itself.
RATE = 150


def test_switch_under_load_loses_no_request(
    real_node: None, operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    port = deploy_v1(driver, namespace, "web")

    outcome = switch_under_load(driver, namespace, "web", port, rate=RATE, delay=30)

    run, tl = outcome.run, outcome.timeline
    print(describe(run), tl)
    assert tl.preview_ready is not None and tl.switched is not None, tl
    assert tl.scaled_down is not None and tl.old_pods_gone is not None, (
        f"the old color was not scaled down while the load ran: {tl}"
    )
    # the load covered the switch, the scale-down and the old pods' end
    assert run.results[-1].sent > tl.old_pods_gone, (run.results[-1], tl)
    assert not run.failures, describe(run)
    versions = run.versions()
    assert versions["v1"] > 0 and versions["v2"] > 0, describe(run)
    assert not run.went_back("v1", "v2"), (
        f"v1 answered after v2 had: {run.went_back('v1', 'v2')[:5]}"
    )
    # after the old pods are gone only v2 can answer
    assert {r.version for r in run.results if r.sent > tl.old_pods_gone} == {"v2"}


def test_rollback_within_the_delay_is_instant_and_loses_no_request(
    real_node: None, operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    port = deploy_v1(driver, namespace, "web")
    old_pods = {p["metadata"]["uid"] for p in driver.pods(namespace, "bluegreen.dev/app=web")}

    outcome, back = rollback_under_load(driver, namespace, "web", port, rate=RATE, delay=60)

    run = outcome.run
    assert back is not None, "prod never selected the old color again"
    assert_rolled_back_instantly(driver, namespace, outcome, back, old_pods)
    answered_after = {r.version for r in run.results if r.sent > back + 2}
    assert answered_after == {"v1"}, describe(run)
    assert run.versions()["v2"] > 0, describe(run)


def test_unready_version_never_gets_prod_traffic(
    real_node: None, operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    port = deploy_v1(driver, namespace, "web")
    old_color = driver.selector_color(namespace, "web")

    run = unready_version_under_load(driver, namespace, "web", port, rate=RATE, seconds=20)

    print(describe(run))
    assert not run.failures, describe(run)
    assert set(run.versions()) == {"v1"}, describe(run)
    assert len(run.results) > RATE * 15, describe(run)
    # the new pods really run (their readiness probe fails, they did not crash or stay pending)
    new_color = "green" if old_color == "blue" else "blue"
    selector = f"bluegreen.dev/app=web,bluegreen.dev/color={new_color}"

    def running_unready() -> list[Obj] | None:
        pods = driver.pods(namespace, selector)
        states = [(p["status"].get("containerStatuses") or [{}])[0] for p in pods]
        ok = len(pods) == 3 and all(s.get("state", {}).get("running") for s in states)
        return pods if ok else None

    # A busy machine may still be starting the last container: wait for it to run.
    for pod in wait_for(running_unready, timeout=60, what="3 new pods running"):
        assert pod["status"]["containerStatuses"][0]["ready"] is False, pod["status"]
    app = driver.app(namespace, "web")
    assert driver.selector_color(namespace, "web") == old_color
    assert app["status"]["phase"] == "Progressing", app["status"]
    assert "0/3 pods available" in app["status"]["message"], app["status"]


# ---------------------------------------------------------------- the generator's own address


def _http_from(source: tuple[str, int], port: int) -> str:
    """One GET to 127.0.0.1:port from exactly ``source`` (address, port): the status line,
    or the error's name."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(5)
    try:
        sock.bind(source)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return sock.recv(64).split(b"\r\n", 1)[0].decode()
    except OSError as exc:
        return type(exc).__name__
    finally:
        sock.close()


def _conntrack_state(source_port: int, port: int) -> str:
    listed = subprocess.run(
        [
            "conntrack",
            "-L",
            "-p",
            "tcp",
            "--src",
            "127.0.0.1",
            "--sport",
            str(source_port),
            "--dport",
            str(port),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return listed.stdout


def test_a_poll_refused_before_the_endpoints_cannot_refuse_the_load(
    real_node: None, driver: Driver, namespace: str
) -> None:
    """A request to a NodePort whose Service has no endpoints yet is rejected without NAT,
    and its conntrack entry outlives it (SYN_SENT, 120 s): a later SYN from the same
    address and port is taken for its retransmission and refused, though the Service now
    answers. Readiness polls leave such entries on 127.0.0.1; the load generator sends from
    an address of its own (loadgen.SOURCE), so none of its requests can meet one."""
    labels = {"app": "probe"}
    pod = template("v1")
    pod["metadata"]["labels"] = labels
    driver.create(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "probe"},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels}, "template": pod},
        },
    )
    svc = driver.create(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "probe"},
            "spec": {
                "type": "NodePort",
                "selector": labels,
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
    )
    port = node_port(svc)

    # A poll while there is no endpoint, once kube-proxy rejects it (before its rules are
    # written, the attempt is refused by the host instead and its entry closes at once).
    def rejected_poll() -> int | None:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            source_port = free.getsockname()[1]
        assert _http_from(("127.0.0.1", source_port), port) == "ConnectionRefusedError"
        return source_port if "SYN_SENT" in _conntrack_state(source_port, port) else None

    source_port = wait_for(rejected_poll, timeout=30, what=f"a rejected poll of :{port}")

    driver.merge_patch("Deployment", namespace, "probe", {"spec": {"replicas": 1}})
    wait_for(lambda: answer(port) == "v1", timeout=60, what=f"v1 answering on :{port}")

    # The generator's address never shares the tuple the poll left behind...
    assert _http_from((loadgen.SOURCE, source_port), port) == "HTTP/1.1 200 OK"
    # ...and the hazard is real: from the poll's own address the same port, though the
    # Service answers, is still refused (which also ends the stale entry).
    assert _http_from(("127.0.0.1", source_port), port) == "ConnectionRefusedError", (
        _conntrack_state(source_port, port)
    )
