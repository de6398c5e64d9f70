"""Two replicas with leader election, on the local control plane: one acts, the other
waits; a leader that dies, pauses or stops hands over, and a paused one that comes back
writes nothing (fencing)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bluegreen.core.revision import revision_of

from driver import Driver, SelectorHistory, pause
from kubehelpers import wait_for
from operator_process import OperatorProcess
from specs import hello, template

pytestmark = pytest.mark.e2e

APP = "hello"
LEASE = "bluegreen-operator"
# Short, so the tests are quick; the same ordering as the defaults (15 / 10 / 2).
LEASE_SECONDS, RENEW_DEADLINE, RETRY = 4.0, 3.0, 0.5
WRITES = "bluegreen.runtime.reconciler"  # the logger of every write the operator makes


@pytest.fixture
def replica(
    bluegreen_crd: None, namespace: str, tmp_path: Path, operators: list[OperatorProcess]
) -> Callable[..., OperatorProcess]:
    """Start one replica of the operator, named ``identity``, electing on a Lease in the
    test's namespace."""

    def start(identity: str, endpoints: bool = False) -> OperatorProcess:
        op = OperatorProcess(
            namespace,
            tmp_path / f"{identity}.log",
            endpoints=endpoints,
            args=(
                "--leader-elect",
                f"--lease-namespace={namespace}",
                f"--identity={identity}",
                f"--lease-duration={LEASE_SECONDS}",
                f"--renew-deadline={RENEW_DEADLINE}",
                f"--retry-period={RETRY}",
            ),
        )
        operators.append(op)
        op.start()
        return op

    return start


def holder(driver: Driver, namespace: str) -> str | None:
    lease = driver.get("Lease", namespace, LEASE)
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def wait_leader(driver: Driver, namespace: str, identity: str, timeout: float) -> float:
    """Seconds until ``identity`` holds the lease."""
    start = time.monotonic()
    wait_for(
        lambda: holder(driver, namespace) == identity,
        timeout=timeout,
        what=f"{identity} to hold the lease",
    )
    return time.monotonic() - start


def writes_in(op: OperatorProcess) -> list[str]:
    return [line for line in op.log_path.read_text().splitlines() if WRITES in line]


def two_replicas_a_leading(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> tuple[OperatorProcess, OperatorProcess]:
    a = replica("a")
    wait_leader(driver, namespace, "a", timeout=10)
    b = replica("b")
    return a, b


def test_one_replica_acts_and_the_standby_writes_nothing(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> None:
    a, b = two_replicas_a_leading(driver, namespace, replica)

    driver.create_app(namespace, APP, hello())
    driver.wait_app(namespace, APP, phase="Healthy")

    assert writes_in(a), "the leader made no write"
    assert writes_in(b) == []
    assert "waiting for lease" in b.log_path.read_text()
    assert holder(driver, namespace) == "a"


def test_the_leader_killed_before_the_switch_hands_over_and_the_switch_happens_once(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> None:
    a, _b = two_replicas_a_leading(driver, namespace, replica)
    driver.create_app(namespace, APP, hello())
    driver.wait_app(namespace, APP, phase="Healthy")
    driver.patch_spec(namespace, APP, {"template": template("v2")})
    driver.wait_app(namespace, APP, phase="Paused", previewColor="green")

    with SelectorHistory(driver, namespace, APP) as prod:
        a.kill()
        driver.patch_spec(namespace, APP, {"promote": True})
        took = wait_leader(driver, namespace, "b", timeout=LEASE_SECONDS + 5)
        app = driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
        pause(2)

    assert took <= LEASE_SECONDS + 2 * RETRY + 1
    assert prod.colors == ["blue", "green"]  # exactly one switch
    assert len(driver.events(namespace, APP, "Switched")) == 1
    assert app["status"]["activeRevision"] == revision_of(template("v2"))


def test_the_leader_killed_right_after_the_switch_is_not_switched_twice(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> None:
    a, _b = two_replicas_a_leading(driver, namespace, replica)
    driver.create_app(namespace, APP, hello(scaleDownDelaySeconds=2))
    driver.wait_app(namespace, APP, phase="Healthy")
    driver.patch_spec(namespace, APP, {"template": template("v2")})
    driver.wait_app(namespace, APP, phase="Paused", previewColor="green")

    with SelectorHistory(driver, namespace, APP) as prod:
        driver.patch_spec(namespace, APP, {"promote": True})
        wait_for(
            lambda: driver.selector_color(namespace, APP) == "green",
            timeout=30,
            what="the switch",
        )
        a.kill()
        wait_leader(driver, namespace, "b", timeout=LEASE_SECONDS + 5)
        driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
        driver.wait_replicas(namespace, "hello-blue", 0, timeout=30)  # b finished the release

    assert prod.colors == ["blue", "green"]
    assert len(driver.events(namespace, APP, "Switched")) <= 1  # a's Event may be lost


def test_a_paused_leader_is_replaced_and_writes_nothing_when_it_resumes(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> None:
    a, b = two_replicas_a_leading(driver, namespace, replica)
    driver.create_app(namespace, APP, hello())
    driver.wait_app(namespace, APP, phase="Healthy")
    assert a.proc is not None

    a.proc.send_signal(signal.SIGSTOP)
    try:
        wait_leader(driver, namespace, "b", timeout=LEASE_SECONDS + 5)
        before = len(writes_in(a))
        driver.patch_spec(namespace, APP, {"template": template("v2")})
        driver.wait_app(namespace, APP, phase="Paused", previewColor="green")
    finally:
        a.proc.send_signal(signal.SIGCONT)

    # Resumed, a must see it has lost the lease and stop without one write.
    code = a.proc.wait(timeout=RENEW_DEADLINE + 10)
    assert code == 75, a.tail()
    assert len(writes_in(a)) == before, writes_in(a)[before:]
    assert "lost the leader lease" in a.log_path.read_text()
    assert holder(driver, namespace) == "b"
    assert writes_in(b), "the new leader made no write"


def test_a_clean_shutdown_hands_over_at_once(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> None:
    a, _b = two_replicas_a_leading(driver, namespace, replica)
    driver.create_app(namespace, APP, hello())
    driver.wait_app(namespace, APP, phase="Healthy")

    a.stop()  # SIGTERM: Kopf stops, the lease is released
    took = wait_leader(driver, namespace, "b", timeout=LEASE_SECONDS + 5)

    assert took < LEASE_SECONDS, f"handover took {took:.1f}s: the lease was not released"
    assert "released lease" in a.log_path.read_text()
    driver.patch_spec(namespace, APP, {"template": template("v2")})
    driver.wait_app(namespace, APP, phase="Paused", previewColor="green")


def test_a_standby_stops_at_sigterm_and_never_takes_the_lease(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> None:
    """In a container the operator is PID 1, for which SIGTERM's default action does
    nothing: a standby that left SIGTERM to it went on trying, took the lease while
    terminating and was killed holding it (tests/e2e/test_helm_install.py saw the next
    leader wait the lease out). Handled, it exits at once, cleanly (0, not the -15 of the
    default action), having taken nothing."""
    _a, b = two_replicas_a_leading(driver, namespace, replica)
    assert b.proc is not None
    b.proc.terminate()
    assert b.proc.wait(timeout=RETRY + 5) == 0, b.tail()
    assert holder(driver, namespace) == "a"
    assert "leads" not in b.log_path.read_text().replace("waiting for lease", "")


def test_the_standby_serves_metrics_and_is_ready_and_takes_over_the_leader_gauge(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> None:
    a = replica("a", endpoints=True)
    wait_leader(driver, namespace, "a", timeout=10)
    b = replica("b", endpoints=True)
    lease = f"standby: waiting for lease {namespace}/{LEASE}\n"
    wait_for(lambda: b.readiness() == (200, lease), timeout=10, what="b ready as standby")
    wait_for(lambda: a.readiness()[0] == 200, timeout=30, what="a ready as leader")
    assert a.scrape()["bluegreen_leader"] == 1
    standby = b.scrape()
    assert standby["bluegreen_leader"] == 0
    # The standby asks for the lease every retry period, and writes nothing else.
    gets = 'bluegreen_api_requests_total{code="200",verb="GET"}'
    wait_for(lambda: b.scrape()[gets] > standby[gets], timeout=5, what="b to poll the lease")
    assert b.scrape().get('bluegreen_api_requests_total{code="200",verb="PUT"}', 0) == 0

    a.stop()
    wait_for(lambda: b.scrape()["bluegreen_leader"] == 1, timeout=LEASE_SECONDS, what="b leads")
    # Ready as a standby until then; as the leader once its watches have listed.
    wait_for(
        lambda: (answer := b.readiness())[0] == 200 and answer[1].startswith("leading: "),
        timeout=30,
        what="b ready as leader",
    )
    assert b.scrape()['bluegreen_api_requests_total{code="200",verb="PUT"}'] >= 1  # the lease


def test_sigterm_finishes_the_passes_under_way_before_it_releases_the_lease(
    driver: Driver, namespace: str, replica: Callable[..., OperatorProcess]
) -> None:
    """Many apps at once keep the leader's workers busy; SIGTERM in the middle: every pass
    under way ends with its writes done (none refused by fencing, none failed), then the
    lease goes, and only then does the standby write."""
    a, b = two_replicas_a_leading(driver, namespace, replica)
    for i in range(12):
        driver.create_app(namespace, f"app-{i}", hello())
    wait_for(lambda: len(writes_in(a)) >= 3, timeout=30, what="a to be writing")
    a.stop()

    assert a.proc is not None and a.proc.returncode == 0, a.tail()
    log = a.log_path.read_text()
    assert "released lease" in log
    assert "does not lead" not in log and "reconcile of" not in log, a.tail(60)
    released_at = next(line[:23] for line in log.splitlines() if "released lease" in line)
    assert all(line[:23] <= released_at for line in writes_in(a))
    for i in range(12):
        driver.wait_app(namespace, f"app-{i}", phase="Healthy")
    assert writes_in(b), "b finished nothing"
    assert all(line[:23] >= released_at for line in writes_in(b))
