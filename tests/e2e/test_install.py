"""The install in deploy/, end to end, on the local control plane with RBAC on.

Given the manifests a cluster admin applies (`kubectl apply -k deploy/`), the operator
runs as its ServiceAccount, with a token that ServiceAccount gets from the API server,
and takes an app through create, preview and promote without one request refused; the
ServiceAccount can do exactly that and no more; and the namespaced overlay confines it to
its own namespace.

The operator's image cannot run here (no container runtime: kwok only pretends to run the
Deployment's pod), so the operator runs as a local process with the ServiceAccount's
credentials: the same code, the same rights.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driver import Driver, pause
from incluster import DEPLOY, METRICS_SERVICE, POLICY, SYSTEM, UNINSTALL
from kubehelpers import KubeCluster, wait_for
from operator_process import OperatorProcess
from specs import hello, template

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
NAMESPACED_OVERLAY = DEPLOY / "overlays" / "namespaced"
SA = "bluegreen-operator"
MONITORING = DEPLOY / "monitoring"
APP = "hello"
INGRESS = {"host": "hello.example.com", "previewHost": "hello-preview.example.com"}
# What the API server answers a request RBAC refuses: "403 Forbidden: ... is forbidden: ...".
# (Not a bare 403: log timestamps end in milliseconds like ",403".)
REFUSED = re.compile(r"forbidden|\s403\s", re.IGNORECASE)


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kubectl", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
    return result


def sa_user(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{SA}"


def service_account_kubeconfig(cluster: KubeCluster, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount: a TokenRequest
    token (what the kubelet mounts into the pod), the cluster's server URL and CA."""
    token = kubectl("create", "token", SA, "-n", namespace, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": server}],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [{"name": SA, "context": {"cluster": "cluster", "user": SA}}],
        "current-context": SA,
    }
    path.write_text(yaml.safe_dump(config))
    whoami = kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", f"--kubeconfig={path}"
    )
    assert whoami.stdout == sa_user(namespace)
    return path


def can_i(verb: str, resource: str, namespace: str | None, user: str) -> bool:
    """`kubectl auth can-i` as the user (impersonated by the admin); None: all namespaces.
    ``resource`` may name a subresource (``x/status``) or one object (``secrets@name``)."""
    where = ["--all-namespaces"] if namespace is None else ["-n", namespace]
    resource, _, sub = resource.partition("/")
    subresource = [f"--subresource={sub}"] if sub else []
    resource = resource.replace("@", "/")
    result = kubectl(
        "auth", "can-i", verb, resource, *subresource, *where, f"--as={user}", check=False
    )
    assert result.stdout.strip() in ("yes", "no"), result.stdout + result.stderr
    return result.returncode == 0


def namespace_gone_or_active(name: str) -> bool:
    found = kubectl("get", "namespace", name, "-o", "jsonpath={.status.phase}", check=False)
    return found.returncode != 0 or found.stdout == "Active"


def assert_never_refused(op: OperatorProcess) -> None:
    log = op.log_path.read_text(errors="replace")
    refused = [line for line in log.splitlines() if REFUSED.search(line)]
    assert not refused, "\n".join(line[:400] for line in refused[:10])


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def installed(kube_cluster: KubeCluster, driver: Driver, gateway_api: None) -> Iterator[str]:
    """`kubectl apply -k deploy/` for real; afterwards the namespace, the ClusterRole and
    its binding are deleted again. Not the CRD: deleting it would delete every
    BlueGreenApp in the cluster, other tests' too. In a cluster with the Gateway API (the
    rights on HTTPRoutes and Gateways resolve only for kinds the API server serves)."""
    # A previous run's namespace may still be terminating.
    wait_for(lambda: namespace_gone_or_active(SYSTEM), timeout=120, what=f"{SYSTEM} to go")
    applied = kubectl("apply", "-k", str(DEPLOY), "--server-side").stdout
    try:
        wait_for(driver.crd_established, timeout=30, what="the CRD to be established")
        yield applied
    finally:
        kubectl("delete", *UNINSTALL, "--ignore-not-found", "--wait=false")


@pytest.fixture
def run_operator(
    kube_cluster: KubeCluster, tmp_path: Path, operators: list[OperatorProcess]
) -> Callable[[str, str], OperatorProcess]:
    """Starts the operator as a local process, authenticated as the ServiceAccount of
    one namespace and serving another (or the same); stops it afterwards."""

    def run(sa_namespace: str, watch_namespace: str) -> OperatorProcess:
        kubeconfig = service_account_kubeconfig(
            kube_cluster, sa_namespace, tmp_path / f"{sa_namespace}.kubeconfig"
        )
        op = OperatorProcess(
            watch_namespace, tmp_path / "operator.log", env={"KUBECONFIG": str(kubeconfig)}
        )
        operators.append(op)
        op.start()
        return op

    return run


# ---------------------------------------------------------------- the cluster-wide install


def test_install_applies_and_reapplies_as_a_no_op(installed: str, driver: Driver) -> None:
    for line in [
        f"namespace/{SYSTEM} serverside-applied",
        "customresourcedefinition.apiextensions.k8s.io/bluegreenapps.bluegreen.dev",
        f"serviceaccount/{SA} serverside-applied",
        f"clusterrole.rbac.authorization.k8s.io/{SA} serverside-applied",
        f"clusterrolebinding.rbac.authorization.k8s.io/{SA} serverside-applied",
        f"deployment.apps/{SA} serverside-applied",
        f"service/{METRICS_SERVICE} serverside-applied",
    ]:
        assert line in installed
    # Applying again changes nothing (exit code 0: no differences).
    diff = kubectl("diff", "-k", str(DEPLOY), "--server-side", check=False)
    assert (diff.returncode, diff.stdout) == (0, ""), diff.stdout + diff.stderr


def test_operator_pod_is_admitted_under_the_restricted_pod_security_level(
    installed: str, driver: Driver
) -> None:
    """The namespace enforces Pod Security `restricted`: the pod exists at all only if its
    security context is hardened (non-root, no privilege escalation, no capabilities,
    seccomp RuntimeDefault). kwok then marks it running (it runs nothing)."""
    found = kubectl("get", "namespace", SYSTEM, "-o", "jsonpath={.metadata.labels}").stdout
    assert yaml.safe_load(found)["pod-security.kubernetes.io/enforce"] == "restricted"

    def available() -> Obj | None:
        dep = driver.deployment(SYSTEM, SA)
        return dep if dep and (dep.get("status") or {}).get("availableReplicas") == 2 else None

    dep = wait_for(available, timeout=60, what="the operator Deployment's pod")
    pod_spec = dep["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod_spec["securityContext"]["runAsUser"] == 65532
    assert dep["spec"]["replicas"] == 2  # one leads, one stands by
    assert "--leader-elect" in container["args"]
    # The liveness probe asks the port the operator serves its liveness endpoint on.
    probe_port = container["livenessProbe"]["httpGet"]["port"]
    (port,) = [p for p in container["ports"] if probe_port in (p["name"], p["containerPort"])]
    assert f"--liveness=http://0.0.0.0:{port['containerPort']}/healthz" in container["args"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    readiness = container["readinessProbe"]["httpGet"]
    ready_port = ports.get(readiness["port"], readiness["port"])
    assert f"--readiness=http://0.0.0.0:{ready_port}{readiness['path']}" in container["args"]
    assert f"--metrics-address=0.0.0.0:{ports['metrics']}" in container["args"]


def test_the_metrics_service_lists_both_replicas(installed: str, driver: Driver) -> None:
    """The Service Prometheus scrapes through selects the operator's pods (the leader's and
    the standby's, ready or not) on the port /metrics is served on."""
    service = driver.get("Service", SYSTEM, METRICS_SERVICE)
    assert service is not None
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["targetPort"]) == ("metrics", "metrics")
    assert service["spec"]["publishNotReadyAddresses"] is True

    def listed() -> set[str]:
        pods = set()
        selector = f"kubernetes.io/service-name={METRICS_SERVICE}"
        for s in driver.list("EndpointSlice", SYSTEM, selector):
            assert [p["port"] for p in s.get("ports") or []] in ([], [8081])
            pods |= {(e.get("targetRef") or {}).get("name") for e in s.get("endpoints") or []}
        return pods

    pods = wait_for(lambda: len(listed()) == 2 and listed(), timeout=60, what="two endpoints")
    assert all(name.startswith(f"{SA}-") for name in pods)


def test_the_service_monitor_is_optional_and_selects_the_metrics_service() -> None:
    """Not in deploy/ (its CRD exists only with the Prometheus Operator); when applied, it
    selects the metrics Service by its labels and scrapes its named port."""
    installed = list(yaml.safe_load_all(kubectl("kustomize", str(DEPLOY)).stdout))
    assert not [o for o in installed if o["kind"] == "ServiceMonitor"]
    (service,) = [o for o in installed if o["metadata"]["name"] == METRICS_SERVICE]
    (monitor,) = yaml.safe_load_all(kubectl("kustomize", str(MONITORING)).stdout)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"


def test_operator_as_its_service_account_releases_an_app_without_a_refusal(
    installed: str,
    driver: Driver,
    namespace: str,
    run_operator: Callable[[str, str], OperatorProcess],
) -> None:
    """Every verb of the ClusterRole in use: create (Deployment, Services, Ingresses,
    Events), update (the preview, the selector switch, the scale-down, an Ingress), delete
    (the Ingresses, with spec.ingress), the status patch, and Kopf's lists and watches.

    The operator serves this test's namespace only (--namespace): a cluster-wide one would
    also reconcile the apps of tests running beside this one. The ClusterRoleBinding is
    what grants it the namespace; that it could list and watch cluster-wide is checked
    with `auth can-i` below."""
    op = run_operator(SYSTEM, namespace)
    driver.create_app(namespace, APP, hello(ingress=INGRESS))
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")

    new_ingress = {**INGRESS, "className": "nginx"}
    driver.patch_spec(namespace, APP, {"template": template("v2"), "ingress": new_ingress})
    driver.wait_app(namespace, APP, phase="Paused", activeColor="blue", previewColor="green")
    assert driver.selector_color(namespace, "hello-preview") == "green"

    driver.patch_spec(namespace, APP, {"promote": True})
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
    assert driver.selector_color(namespace, APP) == "green"
    assert driver.events(namespace, APP, "Switched"), "the operator posted no Switched Event"
    driver.wait_replicas(namespace, "hello-blue", 0, timeout=30)  # after scaleDownDelaySeconds
    prod_ingress = driver.get("Ingress", namespace, APP)
    assert prod_ingress is not None and prod_ingress["spec"]["ingressClassName"] == "nginx"

    driver.patch_spec(namespace, APP, {"ingress": None})
    wait_for(
        lambda: not driver.list("Ingress", namespace),
        timeout=30,
        what="the Ingresses to be deleted with spec.ingress",
    )
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")
    assert_never_refused(op)


@pytest.mark.parametrize(
    "verb, lease, namespace, allowed",
    [
        ("get", "bluegreen-operator", SYSTEM, True),
        ("update", "bluegreen-operator", SYSTEM, True),
        ("create", "", SYSTEM, True),
        ("delete", "bluegreen-operator", SYSTEM, False),
        ("update", "someone-elses-lease", SYSTEM, False),
        ("update", "bluegreen-operator", "some-team", False),
        ("create", "", "some-team", False),
    ],
)
def test_leader_election_needs_one_lease_in_the_operators_namespace_only(
    installed: str, verb: str, lease: str, namespace: str, allowed: bool
) -> None:
    resource = f"leases.coordination.k8s.io/{lease}" if lease else "leases.coordination.k8s.io"
    result = kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, f"--as={sa_user(SYSTEM)}", check=False
    )
    assert (result.returncode == 0) is allowed, result.stdout + result.stderr


def _rights(*rows: tuple[str, str, bool], where: str = "ns") -> list[Any]:
    return [
        pytest.param(verb, resource, where, allowed, id=f"{verb}-{resource}-{where}")
        for verb, resource, allowed in rows
    ]


# What the operator needs, and neighbours of it that it must not have.
RIGHTS = _rights(
    ("get", "bluegreenapps.bluegreen.dev", True),
    ("list", "bluegreenapps.bluegreen.dev", True),
    ("watch", "bluegreenapps.bluegreen.dev", True),
    ("patch", "bluegreenapps.bluegreen.dev/status", True),
    ("update", "bluegreenapps.bluegreen.dev/finalizers", True),
    ("create", "bluegreenapps.bluegreen.dev", False),
    ("update", "bluegreenapps.bluegreen.dev", False),
    ("patch", "bluegreenapps.bluegreen.dev", False),
    ("delete", "bluegreenapps.bluegreen.dev", False),
    ("get", "deployments.apps", True),
    ("list", "deployments.apps", True),
    ("watch", "deployments.apps", True),
    ("create", "deployments.apps", True),
    ("update", "deployments.apps", True),
    ("patch", "deployments.apps", False),
    ("delete", "deployments.apps", False),
    ("update", "deployments.apps/scale", False),
    ("list", "replicasets.apps", True),
    ("watch", "replicasets.apps", True),
    ("get", "replicasets.apps", False),
    ("update", "replicasets.apps", False),
    ("get", "services", True),
    ("create", "services", True),
    ("update", "services", True),
    ("list", "services", True),
    ("watch", "services", True),
    ("patch", "services", False),
    ("delete", "services", False),
    ("get", "ingresses.networking.k8s.io", True),
    ("create", "ingresses.networking.k8s.io", True),
    ("update", "ingresses.networking.k8s.io", True),
    ("delete", "ingresses.networking.k8s.io", True),
    ("list", "ingresses.networking.k8s.io", True),
    ("watch", "ingresses.networking.k8s.io", True),
    ("patch", "ingresses.networking.k8s.io", False),
    ("get", "httproutes.gateway.networking.k8s.io", True),
    ("create", "httproutes.gateway.networking.k8s.io", True),
    ("update", "httproutes.gateway.networking.k8s.io", True),
    ("delete", "httproutes.gateway.networking.k8s.io", True),
    ("list", "httproutes.gateway.networking.k8s.io", True),
    ("watch", "httproutes.gateway.networking.k8s.io", True),
    ("patch", "httproutes.gateway.networking.k8s.io", False),
    ("update", "httproutes.gateway.networking.k8s.io/status", False),
    ("list", "gateways.gateway.networking.k8s.io", True),
    ("watch", "gateways.gateway.networking.k8s.io", True),
    ("get", "gateways.gateway.networking.k8s.io", False),
    ("create", "gateways.gateway.networking.k8s.io", False),
    ("update", "gateways.gateway.networking.k8s.io/status", False),
    ("list", "endpointslices.discovery.k8s.io", True),
    ("watch", "endpointslices.discovery.k8s.io", True),
    ("create", "endpointslices.discovery.k8s.io", False),
    ("list", "jobs.batch", True),
    ("watch", "jobs.batch", True),
    ("create", "jobs.batch", True),
    ("delete", "jobs.batch", True),
    ("get", "jobs.batch", False),
    ("update", "jobs.batch", False),
    ("patch", "jobs.batch", False),
    ("create", "cronjobs.batch", False),
    ("create", "events", True),
    ("list", "events", False),
    ("create", "events.events.k8s.io", False),
    ("get", "secrets", False),
    ("list", "secrets", False),
    ("watch", "secrets", False),
    ("get", "configmaps", False),
    ("create", "configmaps", False),
    # Notifications: the one ConfigMap and the one Secret named bluegreen-notifications.
    ("get", "configmaps@bluegreen-notifications", True),
    ("get", "secrets@bluegreen-notifications", True),
    ("update", "secrets@bluegreen-notifications", False),
    ("get", "secrets@default-token", False),
    ("get", "configmaps@kube-root-ca.crt", False),
    ("get", "pods", False),
    ("list", "pods", False),
    ("create", "pods/exec", False),
    ("create", "serviceaccounts/token", False),
    ("get", "customresourcedefinitions.apiextensions.k8s.io", False),
    ("list", "namespaces", False),
    ("create", "leases.coordination.k8s.io", False),
    ("update", "clusterroles.rbac.authorization.k8s.io", False),
    ("create", "rolebindings.rbac.authorization.k8s.io", False),
    ("*", "*", False),
    ("get", "*", False),
    ("*", "deployments.apps", False),
)
# Cluster-wide, as the Deployment runs (no --namespace): Kopf lists and watches across all
# namespaces.
CLUSTER_WIDE_RIGHTS = _rights(
    ("list", "bluegreenapps.bluegreen.dev", True),
    ("watch", "bluegreenapps.bluegreen.dev", True),
    ("list", "deployments.apps", True),
    ("watch", "deployments.apps", True),
    ("list", "endpointslices.discovery.k8s.io", True),
    ("watch", "endpointslices.discovery.k8s.io", True),
    ("list", "services", True),
    ("watch", "services", True),
    ("list", "ingresses.networking.k8s.io", True),
    ("watch", "ingresses.networking.k8s.io", True),
    ("list", "httproutes.gateway.networking.k8s.io", True),
    ("watch", "httproutes.gateway.networking.k8s.io", True),
    ("list", "gateways.gateway.networking.k8s.io", True),
    ("watch", "gateways.gateway.networking.k8s.io", True),
    ("list", "jobs.batch", True),
    ("watch", "jobs.batch", True),
    ("list", "secrets", False),
    ("list", "pods", False),
    where="all",
)


@pytest.mark.parametrize("verb, resource, where, allowed", RIGHTS + CLUSTER_WIDE_RIGHTS)
def test_service_account_can_do_what_the_operator_does_and_nothing_else(
    installed: str, verb: str, resource: str, where: str, allowed: bool
) -> None:
    namespace = None if where == "all" else "some-team"  # any namespace: a ClusterRole
    assert can_i(verb, resource, namespace, sa_user(SYSTEM)) is allowed


# ---------------------------------------------------------------- the namespaced overlay


@pytest.fixture
def namespaced_install(kube_cluster: KubeCluster, namespace: str, tmp_path: Path) -> str:
    """deploy/overlays/namespaced, installed into this test's namespace the way a user
    would: an overlay of their own that sets `namespace:`."""
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        # kustomize takes relative paths only.
        "resources": [os.path.relpath(NAMESPACED_OVERLAY, overlay)],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    kubectl("apply", "-k", str(overlay), "--server-side")
    wait_for(
        lambda: kubectl("get", "serviceaccount", SA, "-n", namespace, check=False).returncode == 0,
        timeout=30,
        what="the ServiceAccount",
    )
    return namespace


# (verb, resource, where, allowed): "own" is the install's namespace, "other" any other
# one, "all" cluster-wide.
NAMESPACED_RIGHTS = [
    ("create", "deployments.apps", "own", True),
    ("watch", "bluegreenapps.bluegreen.dev", "own", True),
    ("patch", "bluegreenapps.bluegreen.dev/status", "own", True),
    ("update", "services", "own", True),
    ("watch", "services", "own", True),
    ("watch", "ingresses.networking.k8s.io", "own", True),
    ("create", "events", "own", True),
    ("create", "jobs.batch", "own", True),
    ("watch", "jobs.batch", "own", True),
    ("create", "jobs.batch", "other", False),
    ("get", "secrets", "own", False),
    ("delete", "deployments.apps", "own", False),
    ("create", "deployments.apps", "other", False),
    ("watch", "bluegreenapps.bluegreen.dev", "other", False),
    ("update", "services", "other", False),
    ("watch", "services", "other", False),
    ("create", "events", "other", False),
    ("list", "deployments.apps", "all", False),
    ("list", "services", "all", False),
    ("list", "bluegreenapps.bluegreen.dev", "all", False),
]


def test_namespaced_overlay_grants_its_namespace_only(namespaced_install: str) -> None:
    """One install for the whole table: each row is a quick `auth can-i`."""
    places = {"own": namespaced_install, "other": "default", "all": None}
    user = sa_user(namespaced_install)
    wrong = [
        f"{verb} {resource} in {where}: expected {'yes' if allowed else 'no'}"
        for verb, resource, where, allowed in NAMESPACED_RIGHTS
        if can_i(verb, resource, places[where], user) is not allowed
    ]
    assert not wrong


def test_namespaced_operator_serves_an_app_in_its_namespace(
    namespaced_install: str,
    driver: Driver,
    run_operator: Callable[[str, str], OperatorProcess],
) -> None:
    """As the pod would run it: its own ServiceAccount, --namespace its own namespace."""
    ns = namespaced_install
    dep = driver.deployment(ns, SA)
    assert dep is not None
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert "--namespace=$(POD_NAMESPACE)" in container["args"]
    (pod_namespace,) = [e for e in container["env"] if e["name"] == "POD_NAMESPACE"]
    assert pod_namespace["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"

    op = run_operator(ns, ns)
    driver.create_app(ns, APP, hello(promote=True))
    driver.wait_app(ns, APP, phase="Healthy", activeColor="blue")
    driver.patch_spec(ns, APP, {"template": template("v2")})
    driver.wait_app(ns, APP, phase="Healthy", activeColor="green")
    assert_never_refused(op)


# Short, so the handover tests are quick; the same ordering as the defaults (15 / 10 / 2).
LEASE_FLAGS = ("--lease-duration=4", "--renew-deadline=3", "--retry-period=0.5")
LOCAL_FLAGS = ("--liveness=", "--readiness=", "--metrics-address=")


def lease_holder(driver: Driver, namespace: str) -> str | None:
    lease = driver.get("Lease", namespace, SA)
    return None if lease is None else (lease.get("spec") or {}).get("holderIdentity")


def test_namespaced_overlay_elects_one_leader_and_hands_over_on_kill_and_sigterm(
    namespaced_install: str,
    driver: Driver,
    kube_cluster: KubeCluster,
    tmp_path: Path,
    operators: list[OperatorProcess],
) -> None:
    """Replicas as the overlay's Deployment runs them (its args, POD_NAME and POD_NAMESPACE
    from the downward API, its ServiceAccount): one leads on the Lease in its namespace;
    killed, the standby takes over within the lease duration and finishes the release;
    stopped with SIGTERM, it releases the lease and the next one takes over at once."""
    ns = namespaced_install
    dep = driver.deployment(ns, SA)
    assert dep is not None and dep["spec"]["replicas"] == 2
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    # Ports are this machine's to choose: OperatorProcess binds its own on 127.0.0.1.
    args = [
        a.replace("$(POD_NAMESPACE)", ns)
        for a in container["args"]
        if not a.startswith(LOCAL_FLAGS)
    ]
    assert "--leader-elect" in args and f"--namespace={ns}" in args
    kubeconfig = service_account_kubeconfig(kube_cluster, ns, tmp_path / "sa.kubeconfig")

    def replica(name: str) -> OperatorProcess:
        env = {"KUBECONFIG": str(kubeconfig), "POD_NAME": name, "POD_NAMESPACE": ns}
        op = OperatorProcess(
            ns, tmp_path / f"{name}.log", env=env, args=(*args, *LEASE_FLAGS), endpoints=True
        )
        operators.append(op)
        op.start()
        return op

    a = replica("a")
    wait_for(lambda: lease_holder(driver, ns) == "a", timeout=10, what="a to lead")
    b = replica("b")
    driver.create_app(ns, APP, hello())
    driver.wait_app(ns, APP, phase="Healthy", activeColor="blue")
    assert (a.scrape()["bluegreen_leader"], b.scrape()["bluegreen_leader"]) == (1, 0)
    assert b.readiness()[0] == 200  # a standby is ready

    a.kill()
    driver.patch_spec(ns, APP, {"template": template("v2"), "promote": True})
    started = time.monotonic()
    wait_for(lambda: lease_holder(driver, ns) == "b", timeout=10, what="b to take over")
    assert time.monotonic() - started <= 4 + 2  # the lease duration, plus a retry or two
    driver.wait_app(ns, APP, phase="Healthy", activeColor="green")
    assert len(driver.events(ns, APP, "Switched")) == 1

    c = replica("c")
    b.stop()  # SIGTERM
    started = time.monotonic()
    wait_for(lambda: lease_holder(driver, ns) == "c", timeout=10, what="c to take over")
    assert time.monotonic() - started < 4, "the lease was not released"
    assert "released lease" in b.log_path.read_text()
    driver.patch_spec(ns, APP, {"template": template("v3")})
    driver.wait_app(ns, APP, phase="Healthy", activeColor="blue")
    for op in (a, b, c):
        assert_never_refused(op)


def test_a_leader_whose_watch_cannot_list_is_not_ready_and_says_which(
    namespaced_install: str,
    kube_cluster: KubeCluster,
    tmp_path: Path,
    operators: list[OperatorProcess],
) -> None:
    """Readiness means the watches work: without the right to list Ingresses, the leader
    stays unready and names that watch; granting the right makes it ready."""
    ns = namespaced_install
    role = yaml.safe_load(kubectl("get", "role", SA, "-n", ns, "-o", "yaml").stdout)
    narrowed = {"rules": without_ingress_verbs(role["rules"], {"list", "watch"})}
    kubectl("patch", "role", SA, "-n", ns, "--type=merge", "-p", yaml.safe_dump(narrowed))
    kubeconfig = service_account_kubeconfig(kube_cluster, ns, tmp_path / "sa.kubeconfig")
    op = OperatorProcess(
        ns, tmp_path / "operator.log", env={"KUBECONFIG": str(kubeconfig)}, endpoints=True
    )
    operators.append(op)
    op.start()

    unlisted = (503, f"leading: waiting for the initial listing of ingresses in {ns}\n")
    wait_for(lambda: op.readiness() == unlisted, timeout=30, what="the leader to wait")
    pause(5)  # Kopf retries the listing meanwhile: still not ready
    assert op.readiness() == unlisted

    restored = {"rules": role["rules"]}
    kubectl("patch", "role", SA, "-n", ns, "--type=merge", "-p", yaml.safe_dump(restored))
    wait_for(lambda: op.readiness()[0] == 200, timeout=60, what="readiness once granted")


def without_ingress_verbs(rules: list[Any], verbs: set[str]) -> list[Any]:
    """The rules less some verbs on ingresses (the rule goes when no verb is left)."""
    out = []
    for rule in rules:
        if "ingresses" in rule.get("resources", []):
            rule = {**rule, "verbs": [v for v in rule["verbs"] if v not in verbs]}
        if rule["verbs"]:
            out.append(rule)
    return out


@pytest.mark.parametrize(
    ("missing", "complaint"),
    [
        pytest.param({"create"}, "Ingress hello was refused by the API server", id="a-write"),
        pytest.param(
            {"list", "watch"},
            "the operator may not read its children",
            id="a-read",
        ),
    ],
)
def test_a_missing_right_is_reported_in_status_and_heals_once_granted(
    namespaced_install: str,
    driver: Driver,
    run_operator: Callable[[str, str], OperatorProcess],
    missing: set[str],
    complaint: str,
) -> None:
    """RBAC that lacks a right the operator needs: the app says so (Degraded, naming what
    was refused), and granting the right heals it."""
    ns = namespaced_install
    role = yaml.safe_load(kubectl("get", "role", SA, "-n", ns, "-o", "yaml").stdout)
    narrowed = {"rules": without_ingress_verbs(role["rules"], missing)}
    kubectl("patch", "role", SA, "-n", ns, "--type=merge", "-p", yaml.safe_dump(narrowed))
    run_operator(ns, ns)

    driver.create_app(ns, APP, hello(ingress=INGRESS))
    app = driver.wait_app(ns, APP, phase="Degraded")

    assert complaint in app["status"]["message"]
    assert "forbidden" in app["status"]["message"]
    wait_for(lambda: driver.events(ns, APP), timeout=10, what="a Warning Event")

    restored = {"rules": role["rules"]}
    kubectl("patch", "role", SA, "-n", ns, "--type=merge", "-p", yaml.safe_dump(restored))
    driver.merge_patch("BlueGreenApp", ns, APP, {"metadata": {"annotations": {"touch": "1"}}})
    driver.wait_app(ns, APP, phase="Healthy", timeout=60)
    assert driver.get("Ingress", ns, "hello") is not None


# ---------------------------------------------------------------- who may make the operator act


def grant(namespace: str, user: str, name: str, verbs: str, resources: str) -> None:
    kubectl("create", "role", name, f"--verb={verbs}", f"--resource={resources}", "-n", namespace)
    kubectl("create", "rolebinding", name, f"--role={name}", f"--user={user}", "-n", namespace)


def apply_as(user: str, namespace: str, name: str, spec: Obj) -> subprocess.CompletedProcess[str]:
    """`kubectl apply` of a BlueGreenApp, as that user (impersonated by the admin)."""
    manifest = {
        "apiVersion": "bluegreen.dev/v1alpha1",
        "kind": "BlueGreenApp",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    return subprocess.run(
        ["kubectl", "apply", "-f", "-", f"--as={user}"],
        input=yaml.safe_dump(manifest),
        capture_output=True,
        text=True,
        check=False,
    )


APP_EDITOR = "get,list,watch,create,update,patch"


def test_a_user_who_may_only_edit_apps_is_refused_with_the_missing_right(
    installed: str, namespace: str
) -> None:
    """The operator would create the Deployments with its own rights: editing an app needs
    the rights it exercises."""
    grant(namespace, "app-editor", "apps-only", APP_EDITOR, "bluegreenapps.bluegreen.dev")

    refused = apply_as("app-editor", namespace, APP, hello())

    assert refused.returncode != 0
    assert (
        "user app-editor may not create and update Deployments in namespace "
        f"{namespace}" in refused.stderr
    ), refused.stderr


def test_a_user_with_the_workload_rights_releases_and_ingress_needs_its_own(
    installed: str,
    driver: Driver,
    namespace: str,
    run_operator: Callable[[str, str], OperatorProcess],
) -> None:
    grant(namespace, "dev", "apps", APP_EDITOR, "bluegreenapps.bluegreen.dev")
    grant(namespace, "dev", "workloads", "create,update", "deployments.apps,services")
    op = run_operator(SYSTEM, namespace)  # as its ServiceAccount: status writes admitted

    created = apply_as("dev", namespace, APP, hello())
    assert created.returncode == 0, created.stderr
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue")
    promoted = apply_as("dev", namespace, APP, hello("v2", promote=True))
    assert promoted.returncode == 0, promoted.stderr
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="green")

    with_ingress = apply_as("dev", namespace, APP, hello("v2", promote=True, ingress=INGRESS))
    assert with_ingress.returncode != 0
    assert "may not create and update Ingresses" in with_ingress.stderr, with_ingress.stderr
    # Labels and annotations do not make the operator act: no workload right is checked.
    labelled = kubectl("label", "bga", APP, "team=web", "-n", namespace, "--as=dev", check=False)
    assert labelled.returncode == 0, labelled.stderr
    assert_never_refused(op)


def test_a_job_check_needs_the_right_to_create_jobs(installed: str, namespace: str) -> None:
    """A Job check makes the operator run a pod template as a Job: declaring one needs the
    right to create Jobs; an HTTP check needs nothing more."""
    grant(namespace, "dev", "apps", APP_EDITOR, "bluegreenapps.bluegreen.dev")
    grant(namespace, "dev", "workloads", "create,update", "deployments.apps,services")
    job = {"template": {"spec": {"containers": [{"name": "t", "image": "busybox"}]}}}

    refused = apply_as("dev", namespace, APP, hello(checks=[{"name": "db", "job": job}]))
    assert refused.returncode != 0
    assert f"user dev may not create Jobs in namespace {namespace}" in refused.stderr, (
        refused.stderr
    )
    http = apply_as("dev", namespace, APP, hello(checks=[{"name": "smoke", "http": {}}]))
    assert http.returncode == 0, http.stderr
    grant(namespace, "dev", "jobs", "create", "jobs.batch")
    allowed = apply_as("dev", namespace, APP, hello(checks=[{"name": "db", "job": job}]))
    assert allowed.returncode == 0, allowed.stderr


def test_routes_need_the_right_to_create_and_update_httproutes(
    installed: str, namespace: str
) -> None:
    """spec.gateway makes the operator write HTTPRoutes (claiming hostnames on a shared
    Gateway): setting it needs those rights; the policy asks RBAC, so no Gateway API CRD
    is needed for the refusal."""
    grant(namespace, "dev", "apps", APP_EDITOR, "bluegreenapps.bluegreen.dev")
    grant(namespace, "dev", "workloads", "create,update", "deployments.apps,services")
    gateway = {"parentRefs": [{"name": "edge"}], "hostnames": ["web.example.com"]}

    refused = apply_as("dev", namespace, APP, hello(gateway=gateway))
    assert refused.returncode != 0
    assert f"user dev may not create and update HTTPRoutes in namespace {namespace}" in (
        refused.stderr
    ), refused.stderr
    grant(namespace, "dev", "routes", "create,update", "httproutes.gateway.networking.k8s.io")
    allowed = apply_as("dev", namespace, APP, hello(gateway=gateway))
    assert allowed.returncode == 0, allowed.stderr


def test_a_restricted_namespace_refuses_a_privileged_template_and_the_app_says_so(
    installed: str, driver: Driver, namespace: str, operator: OperatorProcess
) -> None:
    """Pod Security admission, not this operator, judges pod templates; what it refuses
    shows on the app instead of a rollout that waits forever."""
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    spec = hello()
    spec["template"]["spec"]["hostNetwork"] = True
    spec["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}

    driver.create_app(namespace, APP, spec)

    app = driver.wait_app(namespace, APP, phase="Degraded")
    assert "violates PodSecurity" in app["status"]["message"]
    degraded = next(c for c in app["status"]["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "RolloutFailed"


# ------------------------------------------------ uninstall (last: it removes the install)


def test_the_documented_uninstall_is_what_this_runs() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for obj in UNINSTALL:
        assert obj in readme, f"deploy/README.md's uninstall does not name {obj}"


def test_uninstall_removes_the_operator_and_its_policy_and_keeps_the_apps(
    installed: str, driver: Driver, namespace: str
) -> None:
    driver.create_app(namespace, APP, hello())
    kubectl("delete", *UNINSTALL, "--wait=false")
    for kind in ("validatingadmissionpolicy", "validatingadmissionpolicybinding"):
        assert kubectl("get", kind, POLICY, check=False).returncode != 0, f"{kind} is left"
    assert kubectl("get", "clusterrole", SA, check=False).returncode != 0
    assert driver.get("BlueGreenApp", namespace, APP) is not None  # the CRD and apps stay
