"""GitOps with a real Argo CD: a release driven only by Git commits.

Argo CD (built by hack/build-argocd.sh, run by hack/argocd.sh beside the local control
plane) syncs the Application of deploy/argocd/application.yaml from a Git repository on
this machine, with the health check of deploy/argocd/argocd-cm-patch.yaml; the operator
runs as users run it. Each commit is followed by a refresh, as a Git webhook would do.
A background poll records every state the Application shows, and the tests assert on that
history: what a user watching Argo CD would have seen.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from argocdhealth import argocd_health

import realnode
from driver import Driver
from gitops import Application, GitRepo, Observed, StatusHistory
from kubehelpers import KubeCluster, wait_for
from operator_process import OperatorProcess

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
ARGOCD_SH = REPO / "hack" / "argocd.sh"
EXAMPLES = REPO / "examples" / "hello"
APPLICATION = REPO / "deploy" / "argocd" / "application.yaml"
PLUGIN = Path(sys.executable).parent / "kubectl-bluegreen"
APP = "hello"
# Short, so the old color's scale-down happens within the test.
SCALE_DOWN_DELAY = 5
# Where the test repository keeps the app's manifest; the file name is the one the shipped
# Application picks (directory.include).
APP_PATH = "apps/hello"


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=REPO, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def argocd(kube_cluster: KubeCluster, argocd_bin: Path) -> Iterator[Path]:
    """The local Argo CD (hack/argocd.sh) if it is up; otherwise one started for these
    tests and stopped after them (its controller watches the whole cluster: the other
    tests run without that load)."""
    started = _run(ARGOCD_SH, "status").returncode != 0
    if started:
        up = _run(ARGOCD_SH, "up")
        if up.returncode != 0:
            _run(ARGOCD_SH, "down")
            pytest.fail(f"hack/argocd.sh up failed:\n{up.stderr}")
    yield argocd_bin
    if started:
        _run(ARGOCD_SH, "down")


def manifest(name: str) -> str:
    """An example manifest as a user would commit it, with a short scale-down delay."""
    text = (EXAMPLES / name).read_text()
    assert "scaleDownDelaySeconds: 30\n" in text
    return text.replace(
        "scaleDownDelaySeconds: 30\n", f"scaleDownDelaySeconds: {SCALE_DOWN_DELAY}\n"
    )


def application_for(repo: GitRepo, namespace: str) -> Obj:
    """deploy/argocd/application.yaml with what a user changes: the repository, the path,
    and (for the test) the Application's name and destination namespace."""
    body: Obj = yaml.safe_load(APPLICATION.read_text())
    body["metadata"]["name"] = namespace
    body["spec"]["source"]["repoURL"] = repo.url
    body["spec"]["source"]["path"] = APP_PATH
    body["spec"]["destination"]["namespace"] = namespace
    return body


@dataclass
class GitOpsApp:
    """The hello app as a user releases it: one manifest in Git, one Argo CD Application."""

    repo: GitRepo
    application: Application
    namespace: str
    file: str  # the manifest's path in the repository

    def commit(self, message: str, text: str | None) -> str:
        """Commit the manifest (None: delete it), push, refresh; return the commit."""
        sha = self.repo.commit(message, {self.file: text})
        self.application.refresh()
        return sha


@pytest.fixture
def gitops(
    argocd: Path, driver: Driver, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> Iterator[GitOpsApp]:
    """hello 1.0.0 committed and synced by Argo CD: Synced/Healthy, prod serving 1.0.0."""
    repo = GitRepo(tmp_path)
    body = application_for(repo, namespace)
    include = body["spec"]["source"]["directory"]["include"]
    file = f"{APP_PATH}/{include}"
    sha = repo.commit("hello 1.0.0", {file: manifest("bluegreenapp-v1.yaml")})
    application = Application(driver, body)
    try:
        application.wait(sha, "Synced", "Healthy")
        assert prod_version(driver, namespace) == "1.0.0"
        yield GitOpsApp(repo, application, namespace, file)
    finally:
        # The shipped Application has no resources finalizer: deleting it leaves the app,
        # which goes with the test's namespace.
        application.delete()


# ---------------------------------------------------------------- what the cluster serves


def version_of(driver: Driver, namespace: str, service: str) -> str | None:
    """The VERSION the Deployment behind ``service`` runs, once all its pods are ready."""
    color = driver.selector_color(namespace, service)
    deployment = driver.deployment(namespace, f"{APP}-{color}") if color else None
    if deployment is None:
        return None
    ready = (deployment.get("status") or {}).get("readyReplicas") or 0
    if ready < deployment["spec"]["replicas"] or deployment["spec"]["replicas"] == 0:
        return None
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    return env.get("VERSION")


def prod_version(driver: Driver, namespace: str) -> str | None:
    return version_of(driver, namespace, APP)


def preview_version(driver: Driver, namespace: str) -> str | None:
    return version_of(driver, namespace, f"{APP}-preview")


def child_uids(driver: Driver, namespace: str) -> dict[tuple[str, str], str]:
    """(kind, name) → uid of each of the operator's children that exists."""
    found = {}
    for kind in ("Deployment", "Service", "Ingress"):
        for child in driver.list(kind, namespace, f"bluegreen.dev/app={APP}"):
            found[(kind, child["metadata"]["name"])] = child["metadata"]["uid"]
    return found


def plugin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PLUGIN), *args], capture_output=True, text=True, timeout=60, check=False
    )


def assert_never_unknown_nor_drifted(history: StatusHistory) -> None:
    assert history.errors == []
    assert history.watched_to_the_end(), f"the watch ended early ({history.reads} reads)"
    unknown = [s for s in history.states if "Unknown" in (s.sync, s.health)]
    assert unknown == [], f"Argo CD showed Unknown: {history.statuses()}"
    assert history.drift() == [], f"OutOfSync with Git unchanged (drift): {history.states}"


# ---------------------------------------------------------------- the release, through Git


def test_release_promote_and_rollback_through_git(gitops: GitOpsApp, driver: Driver) -> None:
    ns = gitops.namespace
    old_color = driver.selector_color(ns, APP)
    with StatusHistory(gitops.application) as history:
        # 2.0.0 with promote: false waits on the preview; Argo CD: Suspended.
        v2 = gitops.commit("hello 2.0.0 on the preview", manifest("bluegreenapp-v2.yaml"))
        gitops.application.wait(v2, "Synced", "Suspended")
        assert driver.app(ns, APP)["status"]["phase"] == "Paused"
        assert prod_version(driver, ns) == "1.0.0"
        wait_for(lambda: preview_version(driver, ns) == "2.0.0", timeout=30, what="preview 2.0.0")
        children = child_uids(driver, ns)
        assert set(children) == {
            ("Deployment", f"{APP}-blue"),
            ("Deployment", f"{APP}-green"),
            ("Service", APP),
            ("Service", f"{APP}-preview"),
            ("Ingress", APP),
            ("Ingress", f"{APP}-preview"),
        }
        assert gitops.application.tracked() == [("BlueGreenApp", APP)]

        # promote: true switches prod; the old color goes to 0 after the delay.
        promoted = gitops.commit("promote hello 2.0.0", manifest("bluegreenapp-v2-promoted.yaml"))
        gitops.application.wait(promoted, "Synced", "Healthy")
        assert prod_version(driver, ns) == "2.0.0"
        driver.wait_replicas(ns, f"{APP}-{old_color}", 0, timeout=SCALE_DOWN_DELAY + 30)

        # A revert of both commits in Git: prod back on 1.0.0 (its color scales up again).
        gitops.repo.git("revert", "--no-commit", "HEAD~2..HEAD")
        gitops.repo.git("commit", "--quiet", "-m", "roll back to hello 1.0.0")
        rollback = gitops.repo.push()
        gitops.application.refresh()
        assert (gitops.repo.work / gitops.file).read_text() == manifest("bluegreenapp-v1.yaml")
        gitops.application.wait(rollback, "Synced", "Healthy")
        assert prod_version(driver, ns) == "1.0.0"
        assert driver.selector_color(ns, APP) == old_color

        # Then the operator settles (status writes, the other color's scale-down): no drift.
        time.sleep(SCALE_DOWN_DELAY + 5)
        assert gitops.application.observed() == Observed(
            "Synced", "Healthy", rollback, rollback, "Succeeded"
        )

    assert_never_unknown_nor_drifted(history)
    # What a user saw, in order (OutOfSync only in the moment between a push and its sync).
    seen = [pair for pair in history.statuses() if pair[0] == "Synced"]
    assert ("Synced", "Suspended") in seen and seen[-1] == ("Synced", "Healthy")
    print(f"\nArgo CD through the release:\n{history.timeline()}")
    # Argo CD neither tracks nor prunes the operator's children.
    assert gitops.application.tracked() == [("BlueGreenApp", APP)]
    now = child_uids(driver, ns)
    assert {key: now.get(key) for key in children} == children


# ---------------------------------------------------------------- kubectl promote vs self-heal


def test_kubectl_promote_under_self_heal_switches_prod_and_git_gets_promote_back(
    gitops: GitOpsApp, driver: Driver
) -> None:
    ns = gitops.namespace
    v2 = gitops.commit("hello 2.0.0 on the preview", manifest("bluegreenapp-v2.yaml"))
    gitops.application.wait(v2, "Synced", "Suspended")

    refused = plugin("promote", APP, "-n", ns)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f'error: bluegreenapp "{APP}" is managed by GitOps')
    assert driver.app(ns, APP)["spec"]["promote"] is False

    forced = plugin("promote", APP, "-n", ns, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "self-heal puts Git's spec.promote back within seconds" in forced.stderr

    # Exactly what the warning says: prod switches and stays switched ...
    wait_for(lambda: prod_version(driver, ns) == "2.0.0", timeout=60, what="prod on 2.0.0")
    # ... while self-heal puts Git's promote: false back.
    wait_for(
        lambda: driver.app(ns, APP)["spec"]["promote"] is False,
        timeout=60,
        what="Argo CD to put promote: false back",
    )
    time.sleep(SCALE_DOWN_DELAY + 5)
    assert prod_version(driver, ns) == "2.0.0"
    assert gitops.application.observed().sync == "Synced"


# ---------------------------------------------------------------- the manifest deleted from Git


def test_deleting_the_manifest_from_git_needs_allow_empty_then_removes_every_child(
    gitops: GitOpsApp, driver: Driver
) -> None:
    ns = gitops.namespace
    automated = gitops.application.get()["spec"]["syncPolicy"]["automated"]
    assert automated.get("allowEmpty") is True and automated.get("prune") is True
    assert child_uids(driver, ns)
    # The folder must outlive the manifest: Git keeps no empty folder, and Argo CD shows a
    # path that is gone as a ComparisonError (sync Unknown) and prunes nothing.
    readme = gitops.repo.commit("keep the folder", {f"{APP_PATH}/README.md": "hello's manifest\n"})
    gitops.application.refresh()
    # Nothing to apply: Argo CD compares with the new commit and needs no sync.
    wait_for(
        lambda: gitops.application.observed()[:3] == ("Synced", "Healthy", readme),
        timeout=60,
        what="Argo CD to compare with the commit that adds the README",
    )

    # Without allowEmpty, Argo CD refuses to sync Git's empty set: nothing is pruned.
    gitops.application.merge_patch({"spec": {"syncPolicy": {"automated": {"allowEmpty": False}}}})
    gitops.commit("retire hello", None)

    def refused() -> bool:
        conditions = (gitops.application.get().get("status") or {}).get("conditions") or []
        return any("auto-sync will wipe out all resources" in c["message"] for c in conditions)

    wait_for(refused, timeout=60, what="Argo CD to refuse the empty sync")
    assert gitops.application.observed().sync == "OutOfSync"
    assert driver.get("BlueGreenApp", ns, APP) is not None

    # With allowEmpty (as shipped): the BlueGreenApp is pruned, and Kubernetes' garbage
    # collector removes every child through their ownerReferences.
    gitops.application.merge_patch({"spec": {"syncPolicy": {"automated": {"allowEmpty": True}}}})
    gitops.application.refresh()
    wait_for(lambda: driver.get("BlueGreenApp", ns, APP) is None, timeout=60, what="the app pruned")
    wait_for(lambda: child_uids(driver, ns) == {}, timeout=60, what="every child removed")


# ---------------------------------------------------------------- a failing gate


def with_failing_job_check(text: str) -> str:
    """The manifest with a Job check whose container fails (the test server exiting 1, on
    the real node: kwok nodes run no container)."""
    body = yaml.safe_load(text)
    pod = realnode.template("check", EXIT_CODE="1")
    container = pod["spec"]["containers"][0]
    for key in ("readinessProbe", "ports"):
        container.pop(key)
    body["spec"]["checks"] = [{"name": "smoke-test", "job": {"template": pod}}]
    return str(yaml.safe_dump(body, sort_keys=False))


def test_a_release_with_a_failing_gate_is_degraded_in_argocd_with_the_gates_message(
    real_node: None, argocd: Path, gitops: GitOpsApp, driver: Driver, tmp_path: Path
) -> None:
    ns = gitops.namespace
    old_color = driver.selector_color(ns, APP)
    with StatusHistory(gitops.application) as history:
        gated = with_failing_job_check(manifest("bluegreenapp-v2-promoted.yaml"))
        sha = gitops.commit("hello 2.0.0, promoted behind a smoke test", gated)
        application = gitops.application.wait(sha, "Synced", "Degraded", timeout=180)
        time.sleep(5)  # it stays so, and the operator's status writes make no drift
        assert gitops.application.observed().health == "Degraded"

    assert application["status"]["health"]["status"] == "Degraded"
    # The resource's health message as the controller computes it (it keeps resource health
    # in its cache, not in the Application): Argo CD's own CLI, on the live object.
    output = argocd_health(argocd, driver.app(ns, APP), tmp_path)
    status, message = (line.split(": ", 1)[1] for line in output.splitlines())
    print(f"\nArgo CD: {status}: {message}\n{history.timeline()}")
    assert status == "Degraded"
    assert message.startswith("check smoke-test failed on the preview of revision"), message
    assert "BackoffLimitExceeded" in message or "backoff limit" in message, message
    assert driver.selector_color(ns, APP) == old_color
    assert prod_version(driver, ns) == "1.0.0"
    # Argo CD went Progressing (the check ran), then Degraded; the Job is the operator's,
    # not Argo CD's: not tracked, no drift.
    assert ("Synced", "Progressing") in history.statuses()
    assert gitops.application.tracked() == [("BlueGreenApp", APP)]
    assert_never_unknown_nor_drifted(history)
