"""kubectl-bluegreen end to end: the installed command against the real control plane.

Mostly without the operator: the test plays its part. Given hello 2.0.0 live on green and 1.0.0
still on blue (inside its scale-down delay), written the way the operator writes them
(status through the status subresource; Deployments with the revision label and the
pod-template annotation), the plugin must show them, promote, and roll back. The last
test runs the real operator once, to prove both sides agree on that interface.

(Named test_kubectl_plugin.py, not test_plugin.py: tests/unit/test_plugin.py exists, and
without __init__.py files pytest cannot import two test modules of the same name.)
"""

from __future__ import annotations

import copy
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from bluegreen.core.revision import revision_of

from driver import Driver
from kubehelpers import KubeCluster, wait_for
from operator_process import OperatorProcess

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "hello"
# Not resolved: the console script sits next to the venv's python.
PLUGIN = Path(sys.executable).parent / "kubectl-bluegreen"
APP = "hello"


def manifest(name: str) -> Obj:
    loaded: Obj = yaml.safe_load((EXAMPLES / name).read_text())
    return loaded


V1_TEMPLATE: Obj = manifest("bluegreenapp-v1.yaml")["spec"]["template"]
V2_TEMPLATE: Obj = manifest("bluegreenapp-v2.yaml")["spec"]["template"]
V1, V2 = revision_of(V1_TEMPLATE), revision_of(V2_TEMPLATE)


def plugin(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [str(PLUGIN), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def fake_deployment(color: str, template: Obj) -> Obj:
    """A Deployment of one color as the operator labels and annotates it."""
    labels = {
        "bluegreen.dev/app": APP,
        "bluegreen.dev/color": color,
        "bluegreen.dev/revision": revision_of(template),
    }
    pod_template = copy.deepcopy(template)
    pod_template["metadata"]["labels"] = {**pod_template["metadata"]["labels"], **labels}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{APP}-{color}",
            "labels": labels,
            "annotations": {"bluegreen.dev/pod-template": json.dumps(template, sort_keys=True)},
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"bluegreen.dev/app": APP, "bluegreen.dev/color": color}},
            "template": pod_template,
        },
    }


def write_status(kube_cluster: KubeCluster, namespace: str, status: Obj) -> None:
    """As the operator does: through the status subresource, for the current generation."""
    with kube_cluster.api_client() as api:
        objects = kubernetes.client.CustomObjectsApi(api)
        app: Any = objects.get_namespaced_custom_object(
            "bluegreen.dev", "v1alpha1", namespace, "bluegreenapps", APP
        )
        status = {"observedGeneration": app["metadata"]["generation"], **status}
        objects.patch_namespaced_custom_object_status(
            "bluegreen.dev",
            "v1alpha1",
            namespace,
            "bluegreenapps",
            APP,
            {"status": status},
            _content_type="application/merge-patch+json",
        )


def has_ready_pods(driver: Driver, namespace: str, name: str, count: int) -> bool:
    deployment = driver.deployment(namespace, name) or {}
    return (deployment.get("status") or {}).get("readyReplicas") == count


GREEN_LIVE: Obj = {
    "phase": "Healthy",
    "message": "green serves 2/2 ready pods",
    "activeColor": "green",
    "activeRevision": V2,
    "previousRevision": V1,
    "conditions": [
        {
            "type": "Available",
            "status": "True",
            "reason": "ActiveReady",
            "message": "green: 2/2 pods ready",
            "lastTransitionTime": "2025-06-01T11:01:00Z",
        }
    ],
}


@pytest.fixture
def green_live(
    bluegreen_crd: None, driver: Driver, kube_cluster: KubeCluster, namespace: str
) -> str:
    """hello 2.0.0 promoted and live on green; 1.0.0 still running on blue."""
    # The example manifest itself: the API server's schema accepts it.
    driver.create(namespace, manifest("bluegreenapp-v2-promoted.yaml"))
    driver.create(namespace, fake_deployment("blue", V1_TEMPLATE))
    driver.create(namespace, fake_deployment("green", V2_TEMPLATE))
    write_status(kube_cluster, namespace, GREEN_LIVE)
    for name in (f"{APP}-blue", f"{APP}-green"):
        wait_for(
            functools.partial(has_ready_pods, driver, namespace, name, 2),
            timeout=60,
            what=f"{name} to have 2 ready pods",
        )
    return namespace


def test_list_shows_each_app_with_its_colors(green_live: str) -> None:
    result = plugin("list", "-n", green_live)
    assert (result.returncode, result.stderr) == (0, "")
    header, row = result.stdout.splitlines()
    assert header.split() == ["NAME", "ACTIVE", "PREVIEW", "PHASE", "PROMOTE", "AGE"]
    assert row.split()[:5] == [APP, "green", "<none>", "Healthy", "true"]

    everywhere = plugin("list", "-A")
    assert everywhere.returncode == 0
    assert everywhere.stdout.splitlines()[0].split()[0] == "NAMESPACE"
    assert [green_live, APP, "green"] in [
        line.split()[:3] for line in everywhere.stdout.splitlines()
    ]


def test_status_shows_colors_revisions_readiness_and_conditions(green_live: str) -> None:
    result = plugin("status", APP, "-n", green_live)
    assert (result.returncode, result.stderr) == (0, "")
    lines = result.stdout.splitlines()
    assert "Phase:      Healthy" in lines
    assert "Message:    green serves 2/2 ready pods" in lines
    assert f"Active:     green (revision {V2})" in lines
    assert "Preview:    <none>" in lines
    rows = [line.split() for line in lines]
    assert ["blue", "previous", V1, "2/2", "registry.example.com/hello:1.0.0"] in rows
    assert ["green", "active", V2, "2/2", "registry.example.com/hello:2.0.0"] in rows
    assert [
        "Available",
        "True",
        "ActiveReady",
        "2025-06-01T11:01:00Z",
        "green:",
        "2/2",
        "pods",
        "ready",
    ] in rows


def test_promote_sets_spec_promote(green_live: str, driver: Driver) -> None:
    driver.patch_spec(green_live, APP, {"promote": False})

    result = plugin("promote", APP, "-n", green_live)

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f'bluegreenapp "{APP}" promoted')
    assert driver.app(green_live, APP)["spec"]["promote"] is True


def test_rollback_puts_the_previous_template_back_exactly(green_live: str, driver: Driver) -> None:
    driver.patch_spec(green_live, APP, {"promote": False})

    result = plugin("rollback", APP, "-n", green_live, "--promote")

    assert (result.returncode, result.stderr) == (0, "")
    assert f"rolled back to revision {V1} (still on blue)" in result.stdout
    spec = driver.app(green_live, APP)["spec"]
    assert spec["template"] == V1_TEMPLATE
    assert revision_of(spec["template"]) == V1
    assert spec["promote"] is True


def test_rollback_without_a_previous_revision_fails_clearly(
    green_live: str, kube_cluster: KubeCluster, driver: Driver
) -> None:
    # The operator put a new revision on blue as a preview: blue no longer holds 1.0.0.
    write_status(kube_cluster, green_live, {"phase": "Paused", "previewColor": "blue"})
    before = driver.app(green_live, APP)["spec"]

    result = plugin("rollback", APP, "-n", green_live)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f'error: no previous revision is known for bluegreenapp "{APP}"'
    )
    assert result.stderr.count("\n") == 1
    assert driver.app(green_live, APP)["spec"] == before


def test_promote_refuses_an_app_a_gitops_tool_manages_unless_forced(
    green_live: str, driver: Driver
) -> None:
    driver.merge_patch(
        "BlueGreenApp",
        green_live,
        APP,
        {"metadata": {"labels": {"app.kubernetes.io/instance": APP}}, "spec": {"promote": False}},
    )
    before = driver.app(green_live, APP)["spec"]

    refused = plugin("promote", APP, "-n", green_live)

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith(f'error: bluegreenapp "{APP}" is managed by GitOps')
    assert "commit promote: true to Git instead, or repeat with --force" in refused.stderr
    assert driver.app(green_live, APP)["spec"] == before

    forced = plugin("promote", APP, "-n", green_live, "--force")

    assert forced.returncode == 0
    assert forced.stderr.startswith(f'warning: bluegreenapp "{APP}" is managed by GitOps')
    assert "self-heal puts Git's spec.promote back" in forced.stderr
    assert driver.app(green_live, APP)["spec"]["promote"] is True


def test_status_watch_prints_each_change_and_ctrl_c_exits_0(
    green_live: str, kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    output = tmp_path / "watch.out"
    with output.open("w") as out:
        watcher = subprocess.Popen(
            [str(PLUGIN), "status", APP, "-n", green_live, "--watch"],
            stdout=out,
            stderr=subprocess.STDOUT,
            # A test runner started in the background may ignore SIGINT; a user's shell does not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        wait_for(
            lambda: "green serves 2/2" in output.read_text(), timeout=30, what="the first print"
        )
        write_status(
            kube_cluster, green_live, {"phase": "Degraded", "message": "green lost its pods"}
        )
        wait_for(lambda: "green lost its pods" in output.read_text(), timeout=30, what="a reprint")
        time.sleep(1)  # let the threads settle into their watches before the interrupt
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=15) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
    text = output.read_text()
    assert text.count("Phase:") == 2, text
    assert "Traceback" not in text


def test_missing_app_is_one_line_and_exit_1(bluegreen_crd: None, namespace: str) -> None:
    for command in (["status", "nope"], ["promote", "nope"], ["rollback", "nope"]):
        result = plugin(*command, "-n", namespace)
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == f'error: bluegreenapp "nope" not found in namespace "{namespace}"\n'


def test_unreachable_cluster_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "me", "user": {"token": "x"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "me"}}],
                "current-context": "gone",
            }
        )
    )

    result = plugin("list", kubeconfig=kubeconfig)

    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: cannot reach the Kubernetes API at https://127.0.0.1:{port}: Connection refused\n"
    )


def test_missing_kubeconfig_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = plugin("list", kubeconfig=tmp_path / "absent")

    assert (result.returncode, result.stdout) == (1, "")
    absent = tmp_path / "absent"
    assert result.stderr == (
        f"error: no kubeconfig found at {absent}: set KUBECONFIG or pass --kubeconfig\n"
    )


def test_the_plugin_drives_a_release_with_the_real_operator(
    operator: OperatorProcess, driver: Driver, namespace: str
) -> None:
    """The interface holds: what the operator writes is what the plugin reads and steers."""
    v1 = manifest("bluegreenapp-v1.yaml")
    v1["spec"]["scaleDownDelaySeconds"] = 2
    driver.create(namespace, v1)
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue", activeRevision=V1)

    driver.patch_spec(namespace, APP, {"template": V2_TEMPLATE, "promote": False})
    driver.wait_app(namespace, APP, phase="Paused", previewColor="green", previewRevision=V2)
    shown = plugin("status", APP, "-n", namespace)
    assert "Phase:      Paused" in shown.stdout
    assert ["green", "preview", V2, "2/2", "registry.example.com/hello:2.0.0"] in [
        line.split() for line in shown.stdout.splitlines()
    ]
    assert plugin("rollback", APP, "-n", namespace).returncode == 1  # nothing to go back to

    assert plugin("promote", APP, "-n", namespace).returncode == 0
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="green", activeRevision=V2)

    assert plugin("rollback", APP, "-n", namespace, "--promote").returncode == 0
    driver.wait_app(namespace, APP, phase="Healthy", activeColor="blue", activeRevision=V1)
    assert driver.app(namespace, APP)["spec"]["template"] == V1_TEMPLATE
